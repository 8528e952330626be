//! [`Publication`]: how a once-cell ([`LeakOnce`](super::LeakOnce) or a [`leak_once!`](crate::leak_once) call site)
//! publishes its one value. It does not depend on the value's type, so it is compiled once rather than once per `T`.
//!
//! # Protocol and memory orderings
//!
//! Both kinds of cell are a [`Publication`]: a pointer that is null until a value is published and never changes after, an
//! *owner* (the thread running an initialiser, if any) guarded by a mutex, and a condition variable.
//!
//! - **Publication.** The owner runs the initialiser with no lock held, leaks the value into the budget (which writes
//!   it), then stores its address with `Release`. [`LeakOnce::get`](super::LeakOnce::get) loads the address with `Acquire`, so a thread that
//!   sees the address also sees every write that built the value (and, for a call site, the value's recorded type).
//!   That load is the whole fast path: no lock, no write, as in `OnceLock::get`.
//! - **Exclusion.** The owner is claimed and released under the mutex, and the address is stored *before* the owner
//!   is released. A thread that holds the mutex and finds neither an owner nor an address therefore knows that no
//!   value was published and that nobody is initialising, and becomes the owner. At most one initialiser runs at a
//!   time and none runs once a value is published: exactly one value is ever published, and it is charged once.
//!   Under the mutex the address is still loaded with `Acquire`: an owner may have stored it and not yet released the
//!   role, and only the `Release`/`Acquire` pair orders the value's contents then.
//! - **Waiting.** Other callers wait on the condition variable while there is an owner, and re-check under the mutex
//!   after every wake-up (spurious ones are harmless). The owner releases the role in a drop guard, which also runs
//!   when the initialiser panics or the budget refuses the value, and wakes every waiter; the next one to take the
//!   mutex becomes the owner and runs its own initialiser.
//! - **Re-entrancy.** The owner is recorded by its thread token. A thread that finds itself recorded as the owner is calling
//!   back into the cell from its own initialiser and would wait for itself forever, so it panics instead.

use core::fmt;
use core::ptr::{self, NonNull};

use crate::sync::{
    AtomicPtr, Condvar, Mutex,
    Ordering::{Acquire, Relaxed, Release},
    loom_const_fn, thread_token,
};

/// The publication protocol shared by [`LeakOnce`](super::LeakOnce) and [`LeakOnceSite`](super::LeakOnceSite) (see the
/// module notes).
pub(super) struct Publication {
    /// Null until a value is published, then its address forever. The value is fully written before its address is
    /// stored (with `Release`, by [`Owner::publish`]), and is never written, moved or freed after. Stored only by the
    /// owner, so at most once.
    value: AtomicPtr<()>,
    /// The [`thread_token`] of the thread running an initialiser, or 0 if none. Set only while `value` is null;
    /// cleared (by [`Owner`]'s drop) only after the owner stored `value`, if it did.
    owner: Mutex<usize>,
    /// Notified (all waiters) whenever the owner is cleared.
    released: Condvar,
}

impl Publication {
    loom_const_fn! {
        pub(super) fn new() -> Self {
            Self { value: AtomicPtr::new(ptr::null_mut()), owner: Mutex::new(0), released: Condvar::new() }
        }
    }

    /// The published address, or null. `Acquire`: pairs with the `Release` store in [`Owner::publish`].
    #[inline]
    pub(super) fn load(&self) -> *mut () {
        self.value.load(Acquire)
    }

    /// Waits until a value is published (`Err` with its address, loaded with `Acquire`) or the calling thread becomes
    /// the owner (`Ok`).
    ///
    /// # Panics
    ///
    /// If the calling thread already is the owner: `cell`'s initialiser called back into it.
    #[cold]
    #[track_caller]
    pub(super) fn claim(&self, cell: CellName) -> Result<Owner<'_>, NonNull<()>> {
        let me = thread_token();
        let mut owner = self.owner.lock();
        loop {
            // `Acquire` even under the mutex: an owner may have stored the address and not yet cleared the role.
            if let Some(published) = NonNull::new(self.value.load(Acquire)) {
                return Err(published);
            }
            match *owner {
                0 => {
                    *owner = me;
                    return Ok(Owner { publication: self });
                }
                id if id == me => {
                    drop(owner);
                    panic!(
                        "re-entrant initialisation of {cell}: its initialiser called back into the same cell on the \
                         same thread, which would wait for itself forever; compute what the initialiser needs first, \
                         or keep it in another cell"
                    );
                }
                _ => owner = self.released.wait(owner),
            }
        }
    }
}

/// The owner role of a [`Publication`], held by the thread running an initialiser. Dropping it (after publishing, after a
/// refusal or while unwinding from a panicking initialiser) clears the role and wakes every waiter.
pub(super) struct Owner<'a> {
    publication: &'a Publication,
}

impl Owner<'_> {
    /// Publishes `value` (`Release`: everything written to build it is visible to whoever loads the address with
    /// `Acquire`), then clears the role.
    pub(super) fn publish<T>(self, value: &'static T) {
        debug_assert!(self.publication.value.load(Relaxed).is_null(), "a value is published at most once");
        self.publication.value.store(ptr::from_ref(value).cast_mut().cast(), Release);
    }
}

impl Drop for Owner<'_> {
    fn drop(&mut self) {
        let mut owner = self.publication.owner.lock();
        *owner = 0;
        self.publication.released.notify_all();
    }
}

/// Names a cell in panic messages.
#[derive(Clone, Copy)]
pub(super) enum CellName {
    /// A `LeakOnce<T>`, with `T`'s name.
    Typed(&'static str),
    /// A `leak_once!` call site, with its location.
    Site(&'static str),
    /// A `LeakLazy<T>`, with `T`'s name.
    Lazy(&'static str),
}

impl fmt::Display for CellName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Typed(type_name) => write!(f, "a `LeakOnce<{type_name}>`"),
            Self::Site(location) => write!(f, "the `leak_once!` at {location}"),
            Self::Lazy(type_name) => write!(f, "a `LeakLazy<{type_name}>`"),
        }
    }
}
