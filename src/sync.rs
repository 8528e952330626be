//! The one place that names atomics, cells, locks and thread-locals.
//!
//! Under `cfg(loom)` every primitive comes from [loom] so that the model checker sees (and permutes) every access;
//! otherwise they come from `core`, [`parking_lot`] and [`crossbeam_utils`]. No other module imports
//! `core::sync::atomic`, `parking_lot` or `loom` directly, so a loom build models exactly what a normal build runs.
//!
//! Two differences are papered over here:
//! - loom's constructors are not `const`, so [`loom_const_fn!`] emits a `const fn` outside loom and a plain `fn` under it;
//! - loom's `Mutex::lock` returns a `LockResult` and its `Condvar::wait` takes the guard by value: the [`Mutex`] and
//!   [`Condvar`] wrappers below give both builds one signature (the same trick as tokio's `loom/mocked.rs`).
//!
//! Under Miri the lock and condition variable are std's rather than `parking_lot`'s, whose parking code casts integers
//! to pointers and so cannot run under `-Zmiri-strict-provenance`.
//!
//! Process-wide registries (the list of budgets a report walks, the global budget) live in `static`s that loom cannot
//! model, because loom resets its objects between executions; they use the plain atomics in [`process`] in both builds.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};

pub(crate) use crossbeam_utils::CachePadded;

/// Atomics for process-wide `static`s that outlive any one loom execution.
pub(crate) mod process {
    pub(crate) use core::sync::atomic::AtomicPtr;
    pub(crate) use std::sync::OnceLock;
}

/// Emits `const fn` outside loom and a plain `fn` under it, where the atomics' constructors are not `const`.
macro_rules! loom_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $name $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $name $($rest)*
    };
}
pub(crate) use loom_const_fn;

/// A thread-local with a `const` initialiser outside loom (no lazy-init check on access); loom's macro has no `const`
/// form, so under loom the initialiser runs lazily.
macro_rules! thread_local_const {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        #[cfg(not(loom))]
        std::thread_local! { $(#[$attr])* static $name: $t = const { $init }; }
        #[cfg(loom)]
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
    };
}
pub(crate) use thread_local_const;

/// Identifies a live thread (loom's model thread under loom), to tell the thread that holds a role from the others.
#[cfg(not(loom))]
pub(crate) type ThreadId = std::thread::ThreadId;
#[cfg(loom)]
pub(crate) type ThreadId = loom::thread::ThreadId;

/// The calling thread's [`ThreadId`].
pub(crate) fn current_thread_id() -> ThreadId {
    #[cfg(not(loom))]
    {
        std::thread::current().id()
    }
    #[cfg(loom)]
    {
        loom::thread::current().id()
    }
}

/// `UnsafeCell` with loom's closure-based access API, so both builds read the same.
#[cfg(not(loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Calls `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a unique raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Where the lock and condition variable come from when they are not `parking_lot`'s: loom's under loom, and std's
/// under Miri, because `parking_lot`'s parking code casts integers to pointers, which `-Zmiri-strict-provenance`
/// rejects. Both have std's API (`lock` returns a `LockResult`, `wait` takes the guard by value), handled alike below.
#[cfg(loom)]
use loom::sync as std_like;
#[cfg(all(miri, not(loom)))]
use std::sync as std_like;

/// A mutex whose `lock` returns the guard directly in both builds.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(not(any(loom, miri)))] parking_lot::Mutex<T>,
    #[cfg(any(loom, miri))] std_like::Mutex<T>,
);

#[cfg(not(any(loom, miri)))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(any(loom, miri))]
pub(crate) type MutexGuard<'a, T> = std_like::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    loom_const_fn! {
        pub(crate) fn new(value: T) -> Self {
            #[cfg(not(any(loom, miri)))]
            {
                Self(parking_lot::Mutex::new(value))
            }
            #[cfg(any(loom, miri))]
            {
                Self(std_like::Mutex::new(value))
            }
        }
    }

    /// Locks the mutex. A panic while the lock was held does not poison it: callers keep their state consistent
    /// across unwinding themselves (`parking_lot` semantics in both builds).
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(any(loom, miri)))]
        {
            self.0.lock()
        }
        #[cfg(any(loom, miri))]
        {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

/// A condition variable whose `wait` takes and returns the guard in both builds.
#[derive(Debug, Default)]
pub(crate) struct Condvar(#[cfg(not(any(loom, miri)))] parking_lot::Condvar, #[cfg(any(loom, miri))] std_like::Condvar);

impl Condvar {
    loom_const_fn! {
        pub(crate) fn new() -> Self {
            #[cfg(not(any(loom, miri)))]
            {
                Self(parking_lot::Condvar::new())
            }
            #[cfg(any(loom, miri))]
            {
                Self(std_like::Condvar::new())
            }
        }
    }

    /// Blocks until notified (spurious wake-ups are possible; callers re-check their condition in a loop).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(not(any(loom, miri)))]
        {
            let mut guard = guard;
            self.0.wait(&mut guard);
            guard
        }
        #[cfg(any(loom, miri))]
        {
            self.0.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// A fresh hasher state for an interner or cache: randomly seeded (so that inputs cannot be crafted to collide), except
/// under loom, which replays executions and needs every one to hash alike.
pub(crate) fn hash_state() -> foldhash::fast::SeedableRandomState {
    #[cfg(not(loom))]
    {
        foldhash::fast::SeedableRandomState::random()
    }
    #[cfg(loom)]
    {
        foldhash::fast::SeedableRandomState::fixed()
    }
}

/// Exponential back-off for the few short spin loops (waiting for another thread to finish publishing a pointer).
///
/// `crossbeam_utils::Backoff` yields with `std::thread::yield_now`, which loom cannot see; under loom every step
/// yields to loom's scheduler instead, so a spinning thread lets the thread it waits for make progress.
#[derive(Debug)]
pub(crate) struct Backoff(#[cfg(not(loom))] crossbeam_utils::Backoff);

impl Backoff {
    pub(crate) fn new() -> Self {
        #[cfg(not(loom))]
        {
            Self(crossbeam_utils::Backoff::new())
        }
        #[cfg(loom)]
        {
            Self()
        }
    }

    #[cfg_attr(loom, allow(clippy::unused_self))] // loom's yield needs no state
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.0.snooze();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}
