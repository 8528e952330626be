//! Keys being computed: each computing thread's [`Pending`] record lives on its own stack and is linked, for as long
//! as its [`Registration`] exists, into the list of the [`Stripe`] its key's hash picks. Waiters for a key sleep on the
//! stripe's condition variable; the registration's drop (normal or while unwinding) unlinks the record and wakes them.
//! Nothing here allocates.

use core::cell::Cell;
use core::ptr::NonNull;

use crate::sync::{Condvar, Mutex, MutexGuard, UnsafeCell, UserCode};

/// One thread's record that it is computing a key: lives on that thread's stack, linked into a stripe's list for
/// as long as its [`Registration`] exists.
pub(super) struct Pending<K> {
    /// The hash of the key being computed.
    hash: u64,
    /// The [`thread_token`](crate::sync::thread_token) of the computing thread.
    owner: usize,
    /// The key being computed, while the owner's initialiser runs (`None` once it has returned and the key may move).
    ///
    /// Invariant: only the owner thread reads or writes it (to recognise a call from inside its own initialiser for
    /// the same key), so it needs no lock; while it is `Some`, it points to the owner's key, borrowed by the running
    /// initialiser.
    key: Cell<Option<NonNull<K>>>,
    /// The next record of the stripe's list.
    ///
    /// Invariant: read and written only under the stripe's lock.
    next: UnsafeCell<Option<NonNull<Pending<K>>>>,
}

impl<K> Pending<K> {
    /// The record of the calling thread (`owner`) computing `key`, whose hash is `hash`.
    pub(super) fn new(hash: u64, owner: usize, key: &K) -> Self {
        Self { hash, owner, key: Cell::new(Some(NonNull::from(key))), next: UnsafeCell::new(None) }
    }

    /// Called by the owner once its initialiser has returned: the key may move from now on, so the record no longer
    /// points to it.
    pub(super) fn key_moves(&self) {
        self.key.set(None);
    }
}

/// The records of the keys being computed whose hashes pick one stripe.
pub(super) struct PendingList<K> {
    /// First record, or `None`.
    ///
    /// Invariant: every record reachable from `head` is alive: its owner unlinks it (under this list's lock) before
    /// the frame holding it returns or unwinds.
    head: Option<NonNull<Pending<K>>>,
}

impl<K: Eq> PendingList<K> {
    /// The record after `node`.
    fn next_of(node: NonNull<Pending<K>>) -> Option<NonNull<Pending<K>>> {
        // SAFETY: `node` is linked, so alive (the `head` invariant), and we hold the stripe's lock (`&self` or
        // `&mut self` comes from its guard), which `next` requires.
        unsafe { node.as_ref().next.with(|next| *next) }
    }

    /// Whether another thread is computing a key with this `hash`, so that a thread missing `key` must wait for it.
    ///
    /// # Panics
    /// If the calling thread is itself computing `key`: it called the cache for that key from inside its own
    /// initialiser and would otherwise wait for itself forever. `K`'s `Eq` runs under the stripe's lock here,
    /// described by `user` (a call back into the crate for a lock panics, see [`UserCode`]).
    #[track_caller]
    pub(super) fn is_computing(&self, user: UserCode, hash: u64, key: &K, me: usize) -> bool {
        let mut cursor = self.head;
        while let Some(node) = cursor {
            // SAFETY: linked records are alive (the `head` invariant); `hash` and `owner` are immutable.
            let record = unsafe { node.as_ref() };
            if record.hash == hash {
                if record.owner != me {
                    return true;
                }
                // This thread's own computation, from a call inside its initialiser. Only this thread reads `key`.
                // SAFETY: while `key` is `Some`, it points to the key borrowed by the running initialiser (the
                // field's invariant), and this call runs inside that initialiser.
                let own_key = record.key.get().is_some_and(|own| user.run(|| unsafe { own.as_ref() } == key));
                assert!(
                    !own_key,
                    "StaticCache: the initialiser for a key asked the same cache for that key; it would wait for \
                     itself forever"
                );
            }
            cursor = Self::next_of(node);
        }
        false
    }

    /// Links `node` at the front.
    fn link(&mut self, node: &Pending<K>) {
        // SAFETY: we hold the stripe's lock (`&mut self` comes from its guard).
        unsafe { node.next.with_mut(|next| *next = self.head) };
        self.head = Some(NonNull::from(node));
    }

    /// Unlinks `node`, which is linked.
    fn unlink(&mut self, node: &Pending<K>) {
        let target = NonNull::from(node);
        if self.head == Some(target) {
            self.head = Self::next_of(target);
            return;
        }
        let mut cursor = self.head;
        while let Some(current) = cursor {
            let next = Self::next_of(current);
            if next == Some(target) {
                // SAFETY: `current` is linked, so alive, and we hold the stripe's lock.
                unsafe { current.as_ref().next.with_mut(|link| *link = Self::next_of(target)) };
                return;
            }
            cursor = next;
        }
        debug_assert!(false, "a registered record is always linked");
    }
}

impl<K> Stripe<K> {
    pub(super) fn new() -> Self {
        Self { pending: Mutex::new(PendingList { head: None }), settled: Condvar::new() }
    }
}

/// A pending list, its lock, and the condition variable its waiters sleep on.
pub(super) struct Stripe<K> {
    pub(super) pending: Mutex<PendingList<K>>,
    /// Notified (all waiters) whenever a record of this stripe is unlinked: its key was cached, or its computation
    /// ended without a value (error, panic, refusal).
    pub(super) settled: Condvar,
}

/// Unlinks its record and wakes the stripe's waiters when dropped: after the entry is inserted, after an error or
/// a refusal, and while unwinding from a panicking initialiser, so that waiters never wait for a computation that
/// has ended.
pub(super) struct Registration<'a, K: Eq> {
    stripe: &'a Stripe<K>,
    node: &'a Pending<K>,
}

impl<'a, K: Eq> Registration<'a, K> {
    /// Links `node` into `stripe` (whose lock `pending` is) and unlocks.
    pub(super) fn new(
        stripe: &'a Stripe<K>,
        mut pending: MutexGuard<'a, PendingList<K>>,
        node: &'a Pending<K>,
    ) -> Self {
        pending.link(node);
        Self { stripe, node }
    }
}

impl<K: Eq> Drop for Registration<'_, K> {
    fn drop(&mut self) {
        let mut pending = self.stripe.pending.lock();
        pending.unlink(self.node);
        self.stripe.settled.notify_all();
    }
}
