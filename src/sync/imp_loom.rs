//! The primitives under `cfg(loom)`: loom's atomics, cell and thread-locals, so the model checker sees (and permutes)
//! every access.

pub(crate) use loom::cell::UnsafeCell;
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};

/// A plain `fn`: loom's constructors are not `const` (the ordinary build's twin emits a `const fn`).
macro_rules! loom_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        $(#[$attr])* $vis fn $name $($rest)*
    };
}
pub(crate) use loom_const_fn;

/// loom's thread-local, which has no `const` form: the initialiser runs lazily.
macro_rules! thread_local_const {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
    };
}
pub(crate) use thread_local_const;

/// Back-off that yields to loom's scheduler at every step, so a spinning thread lets the thread it waits for make
/// progress (`crossbeam_utils::Backoff` yields with `std::thread::yield_now`, which loom cannot see).
#[derive(Debug)]
pub(crate) struct Backoff;

impl Backoff {
    pub(crate) fn new() -> Self {
        Self
    }

    #[allow(clippy::unused_self)] // loom's yield needs no state
    pub(crate) fn snooze(&self) {
        loom::thread::yield_now();
    }
}
