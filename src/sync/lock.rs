//! [`Mutex`] and [`Condvar`]: one API over the lock backend chosen once per build, and the re-entry check.
//!
//! - ordinary builds: `parking_lot` (no poisoning, small, fast uncontended);
//! - Miri: std's, because `parking_lot`'s parking code casts integers to pointers, which `-Zmiri-strict-provenance`
//!   rejects;
//! - loom: loom's, so the model checker sees every lock.
//!
//! std's and loom's share an API (`lock` returns a `LockResult`, `wait` takes the guard by value), so one backend
//! module serves both; poisoning is ignored in both, as `parking_lot` has none: callers keep their state consistent
//! across unwinding themselves.

use super::user_code::UserCode;

#[cfg(not(any(loom, miri)))]
mod backend {
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
    pub(crate) type Condvar = parking_lot::Condvar;

    #[inline]
    pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock()
    }

    pub(crate) fn wait<'a, T>(condvar: &Condvar, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        condvar.wait(&mut guard);
        guard
    }
}

#[cfg(any(loom, miri))]
mod backend {
    #[cfg(loom)]
    use loom::sync as std_like;
    #[cfg(not(loom))]
    use std::sync as std_like;
    use std::sync::PoisonError;

    pub(crate) type Mutex<T> = std_like::Mutex<T>;
    pub(crate) type MutexGuard<'a, T> = std_like::MutexGuard<'a, T>;
    pub(crate) type Condvar = std_like::Condvar;

    pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) use backend::MutexGuard;

/// A mutex whose `lock` returns the guard directly in every build, and refuses re-entry from user code.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(backend::Mutex<T>);

impl<T> Mutex<T> {
    super::loom_const_fn! {
        pub(crate) fn new(value: T) -> Self {
            Self(backend::Mutex::new(value))
        }
    }

    /// Locks the mutex. A panic while the lock was held does not poison it.
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
        backend::lock(&self.0)
    }
}

/// A condition variable whose `wait` takes and returns the guard in every build.
#[derive(Debug, Default)]
pub(crate) struct Condvar(backend::Condvar);

impl Condvar {
    super::loom_const_fn! {
        pub(crate) fn new() -> Self {
            Self(backend::Condvar::new())
        }
    }

    /// Blocks until notified (spurious wake-ups are possible; callers re-check their condition in a loop).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        backend::wait(&self.0, guard)
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
