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
    ///
    /// # Panics
    ///
    /// If the calling thread is running user code under one of the crate's locks ([`UserCode::run`]): taking a lock
    /// then could wait for the lock this thread holds (the same one, or another in the opposite order on another
    /// thread), so it is refused with a panic naming the user code instead.
    #[inline]
    #[track_caller]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        UserCode::refuse_reentry();
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

/// User code (a `Hash`, `Eq`, `Clone` or `Drop` of a type parameter) that must run while this thread holds one of the
/// crate's locks, described for the panic that refuses re-entry.
///
/// Some user code cannot run outside a lock: the table compares a value with the entries of its bucket under the
/// shard lock (a value compared outside it could be inserted twice), and an interner clones a value under that lock
/// (so it is cloned and charged at most once). If that code calls back into the crate and needs a lock, it could wait
/// forever: for the lock its own thread holds, or for one held by a thread that waits for ours. [`UserCode::run`]
/// marks the calling thread for the duration of the call, and [`Mutex::lock`] refuses to lock on a marked thread with
/// a panic that names the type and the code, so the only outcome is a panic that unwinds (releasing every lock), never
/// a deadlock. Lock-free paths (a look-up of a value already present) are not refused: they cannot wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserCode {
    /// The container running the code, e.g. `"Interner"`.
    pub(crate) container: &'static str,
    /// The type parameter's name (`core::any::type_name`).
    pub(crate) type_name: &'static str,
    /// What runs, e.g. `"Eq or Clone"`.
    pub(crate) what: &'static str,
}

thread_local_const! {
    /// The user code this thread is running under one of the crate's locks, if any.
    static RUNNING: core::cell::Cell<Option<UserCode>> = core::cell::Cell::new(None);
}

impl UserCode {
    /// Runs `f` (user code called under one of the crate's locks) with the calling thread marked, so that a lock the
    /// code asks for is refused with a panic rather than a deadlock. Restores the previous mark on return and while
    /// unwinding.
    #[inline]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        /// Puts the previous mark back when dropped (normally or while unwinding).
        struct Restore(Option<UserCode>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0;
                // A thread-local being destroyed has no mark to restore.
                let _ = RUNNING.try_with(|running| running.set(previous));
            }
        }
        let previous = RUNNING.try_with(|running| running.replace(Some(self))).unwrap_or(None);
        let _restore = Restore(previous);
        f()
    }

    /// Panics if the calling thread is inside [`UserCode::run`].
    #[inline]
    #[track_caller]
    fn refuse_reentry() {
        if let Some(running) = RUNNING.try_with(core::cell::Cell::get).unwrap_or(None) {
            running.reentered();
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn reentered(self) -> ! {
        let Self { container, type_name, what } = self;
        panic!(
            "leak-budget: `{container}<{type_name}>` runs the `{what}` of `{type_name}` under one of its locks, and that \
             code called back into leak-budget in a way that needs a lock (an insert into an interner or cache, or \
             the first initialisation of a once-cell); this could deadlock, so it is refused. Do not call into \
             interners, caches or once-cells from `Eq`, `Clone` or `Drop` of a type they store."
        );
    }
}
