//! Layer 0: the one place that names atomics, cells, locks, thread-locals and thread identity.
//!
//! Each backend is picked once per build: `imp_std.rs` (`core`, `crossbeam-utils`) or `imp_loom.rs` under
//! `cfg(loom)`, so the model checker sees (and permutes) every access; the lock backend (`parking_lot`, std's under
//! Miri, loom's) once in `lock.rs`. No other module names `core::sync::atomic`, `parking_lot` or `loom`, so a loom
//! build models exactly what an ordinary build runs. loom's constructors are not `const`: [`loom_const_fn!`] emits a
//! `const fn` outside loom and a plain `fn` under it.
//!
//! Process-wide registries (the list of budgets a report walks, the global budget) live in `static`s that loom cannot
//! model, because loom resets its objects between executions: they use [`StaticList`] and [`process`] in every build.

#[cfg(not(loom))]
mod imp_std;
#[cfg(not(loom))]
pub(crate) use imp_std::*;

#[cfg(loom)]
mod imp_loom;
#[cfg(loom)]
pub(crate) use imp_loom::*;

mod list;
mod lock;
mod user_code;

pub(crate) use crossbeam_utils::CachePadded;
pub(crate) use list::{AppendList, Linked, ListHead, StaticList};
pub(crate) use lock::{Condvar, Mutex, MutexGuard};
pub(crate) use user_code::UserCode;

/// Primitives for process-wide `static`s that outlive any one loom execution.
pub(crate) mod process {
    pub(crate) use std::sync::OnceLock;
}

thread_local_const! {
    /// One byte per thread, whose address identifies the thread while it lives (see [`thread_token`]).
    static THREAD_TOKEN: u8 = 0;
}

/// The calling thread's identity: the address of a thread-local byte, never 0, and distinct from every other live
/// thread's. Cheap (no lazy initialisation, no destructor) and it never allocates, unlike `std::thread::current()`
/// on a thread's first call, so it is safe to call from a global allocator and from thread-local destructors.
#[inline]
pub(crate) fn thread_token() -> usize {
    THREAD_TOKEN.with(|token| core::ptr::from_ref(token).addr())
}
