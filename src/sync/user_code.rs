//! [`UserCode`]: user code run under one of the crate's locks, and the re-entry check that turns a deadlock into a
//! panic.

use super::thread_local_const;

/// User code (a `Hash`, `Eq`, `Clone` or `Drop` of a type parameter) that must run while this thread holds one of the
/// crate's locks, described for the panic that refuses re-entry.
///
/// Some user code cannot run outside a lock: the table compares a value with the entries of its bucket under the
/// shard lock (a value compared outside it could be inserted twice), and an interner clones a value under that lock
/// (so it is cloned and charged at most once). If that code calls back into the crate and needs a lock, it could wait
/// forever: for the lock its own thread holds, or for one held by a thread that waits for ours. [`UserCode::run`]
/// marks the calling thread for the duration of the call, and [`Mutex::lock`](super::Mutex::lock) refuses to lock on a marked thread with
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
    pub(super) fn refuse_reentry() {
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
