//! Layer 3: [`LazyState<S>`], a component's state created in its budget on first use, and the one rule that a
//! component without a budget uses the global one.
//!
//! # Memory orderings
//! The state is written by [`LeakBudget::leak_with`] and its address stored with `Release`, under the creation lock,
//! at most once; readers load the address with `Acquire`, so a reader that sees it sees the state fully written.
//! The lock only serialises creation, so that the state is created (and charged) once.

use core::alloc::Layout;
use core::fmt;
use core::ptr;

use crate::budget::LeakBudget;
use crate::error::LeakError;
use crate::sync::{
    AtomicPtr, Mutex,
    Ordering::{Acquire, Release},
    loom_const_fn,
};

/// The state `S` of an interner or a cache: null until the first call that needs it, then created in the budget and
/// never changed, moved or freed.
pub(crate) struct LazyState<S: 'static> {
    /// The budget everything is charged to; `None` for the global budget. Immutable.
    budget: Option<&'static LeakBudget>,
    /// Null, or an `S` leaked into the budget, fully written before its address was stored (`Release`, under
    /// `init`), and never changed again.
    state: AtomicPtr<S>,
    /// Serialises creating `state`.
    init: Mutex<()>,
}

impl<S: 'static> LazyState<S> {
    loom_const_fn! {
        /// No state yet; it will be charged to `budget`, or to the global budget for `None`.
        pub(crate) fn new(budget: Option<&'static LeakBudget>) -> Self {
            Self { budget, state: AtomicPtr::new(ptr::null_mut()), init: Mutex::new(()) }
        }
    }

    /// The budget given to [`new`](Self::new): `None` for the global budget.
    pub(crate) fn budget(&self) -> Option<&'static LeakBudget> {
        self.budget
    }

    /// The budget to charge: the one given, or the global budget (an error if `LEAK_BUDGET` is invalid).
    pub(crate) fn resolve_budget(&self) -> Result<&'static LeakBudget, LeakError> {
        self.budget.map_or_else(LeakBudget::try_global, Ok)
    }

    /// The state, if it was created.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<&'static S> {
        // SAFETY: the `state` invariant: null, or an `S` leaked into a budget (never freed) and fully written before
        // its address was stored with `Release`, which this `Acquire` load pairs with.
        unsafe { self.state.load(Acquire).as_ref() }
    }

    /// The state, created by `make` (given the budget, in which it may leak parts of itself: at most `parts(budget)`
    /// bytes' worth of requests) and leaked into the budget if there is none yet. Under the creation lock, `refused`
    /// is asked first: an error it gives is returned and nothing is created. Then the budget must have room for the
    /// state and its parts, or nothing is created either.
    ///
    /// # Errors
    ///
    /// `refused`'s error, the global budget's if `LEAK_BUDGET` is invalid, or the budget's refusal of the state.
    #[cold]
    #[track_caller]
    pub(crate) fn get_or_create(
        &self,
        refused: impl FnOnce() -> Option<LeakError>,
        parts: impl FnOnce(&LeakBudget) -> usize,
        make: impl FnOnce(&'static LeakBudget) -> Result<S, LeakError>,
    ) -> Result<&'static S, LeakError> {
        let _creating = self.init.lock();
        if let Some(state) = self.get() {
            return Ok(state);
        }
        if let Some(error) = refused() {
            return Err(error);
        }
        let budget = self.resolve_budget()?;
        // Room for the state and its parts first, so that a refusal leaves nothing charged.
        let room = LeakBudget::max_charge_for(Layout::new::<S>()).saturating_add(parts(budget));
        budget.check_room(room).map_err(|error| budget.refuse(error))?;
        let state: &'static S = budget.leak(make(budget)?).map_err(|refused| refused.into_parts().1)?;
        self.state.store(ptr::from_ref(state).cast_mut(), Release);
        Ok(state)
    }
}

impl<S: 'static> fmt::Debug for LazyState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyState")
            .field("budget", &self.budget.map_or("global", LeakBudget::name))
            .field("created", &self.get().is_some())
            .finish_non_exhaustive()
    }
}
