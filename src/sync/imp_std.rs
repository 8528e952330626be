//! The primitives of an ordinary build (and of Miri): `core`'s atomics and cell, `crossbeam-utils`' back-off, std's
//! thread-locals with `const` initialisers.

pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};

/// A `const fn` in this build (loom's twin emits a plain `fn`, its constructors not being `const`).
macro_rules! loom_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        $(#[$attr])* $vis const fn $name $($rest)*
    };
}
pub(crate) use loom_const_fn;

/// A thread-local with a `const` initialiser: no lazy-initialisation check on access.
macro_rules! thread_local_const {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        std::thread_local! { $(#[$attr])* static $name: $t = const { $init }; }
    };
}
pub(crate) use thread_local_const;

/// `core::cell::UnsafeCell` with loom's closure-based access API, so both builds read the same.
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }
}

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

/// Exponential back-off for the few short spin loops (waiting for another thread to finish publishing a pointer).
#[derive(Debug)]
pub(crate) struct Backoff(crossbeam_utils::Backoff);

impl Backoff {
    pub(crate) fn new() -> Self {
        Self(crossbeam_utils::Backoff::new())
    }

    pub(crate) fn snooze(&self) {
        self.0.snooze();
    }
}
