//! Layer 0: the hasher of interners and caches.

use core::hash::{BuildHasher, Hasher};

/// The hasher state of one interner or cache.
pub(crate) type HashState = foldhash::fast::SeedableRandomState;

/// A fresh hasher state: randomly seeded (so that inputs cannot be crafted to collide), except under loom, which
/// replays executions and needs every one to hash alike.
pub(crate) fn hash_state() -> HashState {
    #[cfg(not(loom))]
    {
        HashState::random()
    }
    #[cfg(loom)]
    {
        HashState::fixed()
    }
}

/// Hashes raw bytes: no user code, so it cannot panic.
#[inline]
pub(crate) fn hash_bytes(state: &HashState, bytes: &[u8]) -> u64 {
    let mut hasher = state.build_hasher();
    hasher.write(bytes);
    hasher.finish()
}
