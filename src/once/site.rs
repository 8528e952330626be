//! [`leak_once!`](crate::leak_once) and the cell behind each of its call sites, [`LeakOnceSite`].

use core::any::{TypeId, type_name};
use core::fmt;
use core::ptr::NonNull;

use super::publication::{CellName, Publication};
use crate::budget::LeakBudget;
use crate::error::{LeakError, Rejected};
use crate::sync::{UnsafeCell, loom_const_fn};

#[cfg(doc)]
use super::LeakOnce;

/// Evaluates an expression at most once per call site, leaks its value, and returns the same `&'static` reference in
/// a `Result` to every caller, from any thread.
///
/// - `leak_once!(expr)` leaks into the [global budget](LeakBudget::global);
/// - `leak_once!(in budget, expr)` leaks into `budget`, a `&'static LeakBudget` (such as `&BUDGET` for a `static`),
///   evaluated only when `expr` is.
///
/// Each call site has its own hidden `static` cell with the semantics of [`LeakOnce::get_or_init`]: callers racing
/// the first evaluation wait for it; if the value cannot be stored it is returned in the `Err` and the next call
/// evaluates `expr` again. `expr` is evaluated inside a closure, so `?` and `return` in it do not leave the enclosing
/// function. Its type must be `Sync + 'static`.
///
/// As for any `static`, a call site inside a generic function is one cell for every instantiation of the function:
/// the first value stored is the one every instantiation gets. Use a [`LeakOnce`] per type for values that depend on
/// type parameters.
///
/// # Errors
///
/// `Err(`[`Rejected`]`)` holding the value of `expr` if it cannot be stored, as [`LeakOnce::get_or_init`].
///
/// # Panics
///
/// If `expr` panics (the panic propagates and a later call evaluates `expr` again), if `expr` reaches the same call
/// site again on the same thread, or if a call site in a generic function is reached with a value of another type
/// than the one it stored.
///
/// # Examples
///
/// ```
/// use leak_budget::{LeakBudget, leak_once};
///
/// fn banner() -> &'static str {
///     leak_once!(format!("{} v{}", "demo", 1)).expect("the banner fits in the global budget")
/// }
/// assert!(std::ptr::eq(banner(), banner())); // evaluated once
/// assert_eq!(banner(), "demo v1");
///
/// static TABLES: LeakBudget = LeakBudget::named("tables", 1 << 20);
/// fn squares() -> &'static [u64] {
///     leak_once!(in &TABLES, (0..256u64).map(|i| i * i).collect::<Vec<_>>()).unwrap()
/// }
/// let from_threads: Vec<&'static [u64]> =
///     (0..4).map(|_| std::thread::spawn(squares)).map(|h| h.join().unwrap()).collect();
/// assert!(from_threads.iter().all(|s| std::ptr::eq(*s, squares())));
/// assert_eq!(TABLES.stats().allocations, 1);
/// ```
///
/// The value must be shareable across threads:
///
/// ```compile_fail,E0277
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use std::cell::Cell;
///
/// let hits: &'static Cell<u32> = leak_budget::leak_once!(Cell::new(0)).unwrap(); // error: `Cell<u32>` is not `Sync`
/// ```
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// let hits: &'static AtomicU32 = leak_budget::leak_once!(AtomicU32::new(0)).unwrap();
/// hits.fetch_add(1, Ordering::Relaxed);
/// ```
#[macro_export]
macro_rules! leak_once {
    // The one expansion both forms share: a hidden `static` cell for this call site, named in panics by its location.
    (@site $budget:expr, $value:expr) => {{
        static SITE: $crate::__private::LeakOnceSite = $crate::__private::LeakOnceSite::new(::core::concat!(
            ::core::file!(),
            ":",
            ::core::line!(),
            ":",
            ::core::column!()
        ));
        SITE.get_or_init($budget, || $value)
    }};
    (in $budget:expr, $value:expr $(,)?) => {
        $crate::leak_once!(@site || ::core::result::Result::Ok($budget), $value)
    };
    ($value:expr $(,)?) => {
        $crate::leak_once!(@site $crate::LeakBudget::try_global, $value)
    };
}

/// The cell behind one [`leak_once!`](crate::leak_once) call site: a [`LeakOnce`] whose value's type is checked when
/// it is read rather than fixed by the cell's type, because a macro cannot name the type of its expression in a
/// `static`. Used by the macro; not part of the public API.
#[doc(hidden)]
pub struct LeakOnceSite {
    /// The publication protocol. Invariant: a non-null `publication.value` is the address of a value leaked with
    /// [`LeakBudget::leak`], whose `TypeId` is in `published_type`.
    publication: Publication,
    /// The `TypeId` and name of the published value's type. Written only by the publication's owner just before it publishes
    /// (so never once `publication.value` is non-null), and read only after a non-null `publication.value` was loaded with
    /// `Acquire`, which orders the write before the read.
    published_type: UnsafeCell<Option<(TypeId, &'static str)>>,
    /// `file:line:column` of the call site, for panic messages.
    location: &'static str,
}

// SAFETY: `published_type` is written and read only as its invariant says, so no read races a write. The values the
// site hands out are `Sync` (`get_or_init` requires it), as they are shared with every thread that reaches the site;
// as for `LeakOnce`, they need not be `Send`. The other fields are `Sync`.
unsafe impl Sync for LeakOnceSite {}

impl LeakOnceSite {
    loom_const_fn! {
        /// An empty call-site cell; `location` appears in panic messages.
        #[must_use]
        pub fn new(location: &'static str) -> Self {
            Self { publication: Publication::new(), published_type: UnsafeCell::new(None), location }
        }
    }

    /// The value, initialised with `f` and leaked into `budget()` if the site is empty, as
    /// [`LeakOnce::get_or_init`].
    ///
    /// # Errors
    ///
    /// As [`LeakOnce::get_or_init`]; and `budget()`'s error, with `f`'s value.
    ///
    /// # Panics
    ///
    /// As [`LeakOnce::get_or_init`], and if the site already holds a value of another type than `T` (a call site in a
    /// generic function reached by two instantiations).
    #[inline]
    #[track_caller]
    pub fn get_or_init<T: Sync + 'static>(
        &self,
        budget: impl FnOnce() -> Result<&'static LeakBudget, LeakError>,
        f: impl FnOnce() -> T,
    ) -> Result<&'static T, Rejected<T>> {
        match NonNull::new(self.publication.load()) {
            Some(published) => Ok(self.published(published)),
            None => self.initialize(budget, f),
        }
    }

    #[cold]
    #[track_caller]
    fn initialize<T: Sync + 'static>(
        &self,
        budget: impl FnOnce() -> Result<&'static LeakBudget, LeakError>,
        f: impl FnOnce() -> T,
    ) -> Result<&'static T, Rejected<T>> {
        let owner = match self.publication.claim(CellName::Site(self.location)) {
            Ok(owner) => owner,
            Err(published) => return Ok(self.published(published)),
        };
        let value = f();
        let value: &'static T = match budget() {
            Ok(budget) => budget.leak(value)?,
            Err(error) => return Err(Rejected::new(value, error)),
        };
        // SAFETY: the `published_type` invariant: this thread is the owner and has not published, so `publication.value` is
        // null and no other thread reads or writes the field.
        self.published_type.with_mut(|published_type| unsafe {
            *published_type = Some((TypeId::of::<T>(), type_name::<T>()));
        });
        // The `LeakOnceSite::publication` invariant holds: `value` was leaked with `LeakBudget::leak` and its `TypeId` is
        // recorded.
        owner.publish(value);
        Ok(value)
    }

    /// The published value as a `&'static T`.
    ///
    /// # Panics
    ///
    /// If the published value is not a `T`.
    #[inline]
    #[track_caller]
    fn published<T: 'static>(&self, published: NonNull<()>) -> &'static T {
        // SAFETY: the `published_type` invariant: `published` was loaded non-null with `Acquire` (by `Publication::load` or
        // `Publication::claim`), so the write is visible and no write follows.
        let type_id = self.published_type.with(|published_type| unsafe { (*published_type).map(|(id, _)| id) });
        if type_id != Some(TypeId::of::<T>()) {
            self.wrong_type(type_name::<T>());
        }
        // SAFETY: by the `LeakOnceSite::publication` invariant `published` is the address of a value leaked into a budget
        // (never freed, moved or borrowed mutably), whose type was just checked to be `T`.
        unsafe { published.cast::<T>().as_ref() }
    }

    /// Panics: the site was reached for a `requested` but holds a value of another type.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn wrong_type(&self, requested: &'static str) -> ! {
        // SAFETY: as in `published`, whose caller loaded a non-null address before calling this.
        let stored = self.published_type.with(|published_type| unsafe { (*published_type).map(|(_, name)| name) });
        panic!(
            "`leak_once!` at {} holds a value of type `{}` and was reached for a `{requested}`: a call site in a \
             generic function is shared by all its instantiations; use a `LeakOnce<T>` per type instead",
            self.location,
            stored.unwrap_or("?"),
        )
    }
}

impl fmt::Debug for LeakOnceSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeakOnceSite")
            .field("location", &self.location)
            .field("set", &!self.publication.load().is_null())
            .finish_non_exhaustive()
    }
}
