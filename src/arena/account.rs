//! [`Account`]: one budget's hard cap and the counters that enforce and report it. The leaf of the arena: it knows
//! nothing of blocks, lanes or records, only the levels a charge goes up through.
//!
//! # Memory orderings
//! - `reserved` is only read-modified-written with `fetch_update` (a CAS loop) whose closure refuses to go above
//!   `limit`; single-location RMW atomicity alone makes the cap hard. The counter guards no other memory (the bytes
//!   are allocated after the charge, by the thread that made it).
//! - The report's figures (`own_charged`, `own_refunded`) and every change of `reserved` are `SeqCst`, so that all of
//!   them sit in one total order that respects each thread's program order: a charge raises `reserved` at every level
//!   *before* it counts the bytes in `own_charged`, and a refund counts them in `own_refunded` *before* it lowers
//!   `reserved`. So at every point of that order, each budget's `reserved` is at least the sum of the own bytes below
//!   it, and the report (`src/report/collect.rs`), which reads the own counters twice and keeps a reading only if
//!   nothing changed in between, reads figures that held together at one point, where they added up to at most
//!   `limit`. This costs nothing on the fast path: all of it happens when a chunk, lane, dedicated block, record or
//!   table is taken or given back (on x86 a `SeqCst` read-modify-write is the same instruction as a `Relaxed` one).
//! - `peak` and `rejections` are `Relaxed` statistics: each exact on its own.

use crate::error::LeakError;
use crate::sync::{
    AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};

/// The accounting of one budget: its cap, its place in the tree, and its counters. Part of the budget's record
/// (`record.rs`), never freed.
#[derive(Debug)]
pub(crate) struct Account {
    /// The budget's limit: raised or lowered by [`set_limit`](Self::set_limit), read by every charge.
    limit: AtomicUsize,
    /// The budget's name. Immutable.
    pub(crate) name: &'static str,
    /// The parent's account, charged alongside this one unless `prepaid`. Immutable.
    pub(crate) parent: Option<&'static Account>,
    /// The budget is the global one (for the advice in its errors). Immutable.
    global: bool,
    /// The whole `limit` was charged to `parent` when this account was created, so this account's own charges stop
    /// here instead of going up the tree. Immutable.
    pub(crate) prepaid: bool,
    /// Bytes taken from the global allocator on this budget's behalf (this record, lanes, chunks, dedicated blocks,
    /// tables) plus its children's, or its prepaid children's whole limits.
    ///
    /// Invariant: no charge takes `reserved` above `limit`: only `try_add` raises it, with a CAS that checks the limit
    /// it read in the same attempt; refunds lower it. So `reserved <= limit` at every instant, unless `set_limit`
    /// lowered the limit below `reserved`: then every charge is refused until refunds bring `reserved` back under it.
    /// Invariant: `reserved >= own + Σ children's share` (own = `own_charged - own_refunded`; a child's share is its
    /// `reserved`, or its `limit` if prepaid) at every point of the `SeqCst` order (see the module note).
    reserved: AtomicUsize,
    /// Bytes this budget has ever charged for itself (its record, lanes, chunks, dedicated blocks, tables), not for
    /// its children. Only grows (wrapping), so two equal readings mean it did not change in between. Raised after
    /// every level of the charge succeeded.
    own_charged: AtomicUsize,
    /// Bytes of `own_charged` given back: refunds, and creation charges handed over to the child they were made for
    /// (see [`hand_over`](Self::hand_over)). Only grows (wrapping). Raised before the levels' `reserved` are lowered.
    own_refunded: AtomicUsize,
    /// The highest value `reserved` has had.
    peak: AtomicUsize,
    /// Requests refused by this budget's allocation API (saturating).
    rejections: AtomicUsize,
}

/// What a budget declares about itself, fixed when its record is created (but the limit, which `set_limit` changes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Terms {
    /// The limit, in bytes.
    pub(crate) limit: usize,
    /// The name, for errors, statistics and reports.
    pub(crate) name: &'static str,
    /// Whether the whole limit is charged to the parent up front.
    pub(crate) prepaid: bool,
    /// Whether this is the global budget.
    pub(crate) global: bool,
}

/// Levels of a charge (counted from the account charged, upwards) whose `peak` is raised only once every level
/// accepted, from what the charge made their `reserved` reach: a charge that is rolled back never shows in their peak.
///
/// A charge keeps those figures in a fixed buffer on the stack (no allocation, whatever the depth of the tree). A
/// level further up than that, in a tree deeper than any that occurs in practice, raises its peak as soon as it
/// accepts: its peak then may include a charge a level above it refused (rolled back at once), as it includes one the
/// allocator refused (`LeakError::AllocFailed`). Still a value its `reserved` held, never above its limit.
pub(crate) const EXACT_PEAK_LEVELS: usize = 32;

impl Account {
    /// A fresh account on `terms`, under `parent`, whose record's own size, `self_cost`, is already charged to it.
    pub(crate) fn new(terms: Terms, parent: Option<&'static Account>, self_cost: usize) -> Self {
        let Terms { limit, name, prepaid, global } = terms;
        Self {
            limit: AtomicUsize::new(limit),
            name,
            parent,
            prepaid,
            global,
            reserved: AtomicUsize::new(self_cost),
            own_charged: AtomicUsize::new(self_cost),
            own_refunded: AtomicUsize::new(0),
            peak: AtomicUsize::new(self_cost),
            rejections: AtomicUsize::new(0),
        }
    }

    /// The accounts a charge made here goes through: this one, then each ancestor up to the root or to the first
    /// prepaid child (whose limit its parent paid in full when it was created).
    pub(crate) fn levels(&'static self) -> impl Iterator<Item = &'static Account> + Clone {
        core::iter::successors(Some(self), |account| if account.prepaid { None } else { account.parent })
    }

    /// Adds `bytes` to `reserved` if the result stays within `limit`, in one atomic step, and returns the new value.
    ///
    /// The limit is read in each attempt of the CAS loop (`SeqCst`, in one order with `set_limit`'s store): a charge
    /// racing a change of the limit completes under the limit its successful attempt read, old or new; a charge that
    /// starts after `set_limit` returned reads the new one.
    fn try_add(&self, bytes: usize) -> Result<usize, LeakError> {
        let mut limit = 0;
        let attempt = |reserved: usize| {
            limit = self.limit.load(SeqCst);
            reserved.checked_add(bytes).filter(|&n| n <= limit)
        };
        match self.reserved.fetch_update(SeqCst, SeqCst, attempt) {
            // `previous + bytes <= limit` was just checked, so this cannot overflow.
            Ok(previous) => Ok(previous + bytes),
            Err(current) => Err(self.exceeded(bytes, limit, current)),
        }
    }

    /// The error of a request for `requested` bytes refused here, with `limit` and `reserved` as they were read.
    fn exceeded(&self, requested: usize, limit: usize, reserved: usize) -> LeakError {
        LeakError::exceeded(self.name, self.global, requested, limit.saturating_sub(reserved), limit)
    }

    /// The limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(SeqCst)
    }

    /// Sets the limit. Nothing already charged is given back: a limit below `reserved` refuses every charge until
    /// `reserved` is under it again. (A prepaid account's limit was paid to its parent in full: its budget refuses
    /// the change before it reaches here.)
    pub(crate) fn set_limit(&self, limit: usize) {
        debug_assert!(!self.prepaid);
        self.limit.store(limit, SeqCst);
    }

    /// Charges `bytes` to every level (see [`levels`](Self::levels)), all or nothing: if any level refuses, the
    /// levels already charged are refunded and the refusing level's error is returned.
    ///
    /// Levels are charged child first, so two children racing for their parent's last bytes only contend on the
    /// parent's counter, where exactly one CAS wins. A charge that is rolled back was briefly visible in the lower
    /// levels' `reserved`; a concurrent request on those levels may be refused during that window. `peak` is only
    /// raised once every level accepted, so a rolled-back charge never shows in it (in the first
    /// [`EXACT_PEAK_LEVELS`] levels of the charge: see there).
    ///
    /// Once every level accepted, the bytes are counted as this account's own (`own_charged`), last.
    ///
    /// Iterative, in constant stack space, whatever the depth of the tree.
    pub(crate) fn charge(&'static self, bytes: usize) -> Result<(), LeakError> {
        // What each level's `reserved` reached with this charge, for its `peak` once every level accepted.
        let mut reached = [0_usize; EXACT_PEAK_LEVELS];
        let mut charged = 0_usize;
        for account in self.levels() {
            match account.try_add(bytes) {
                Ok(value) => {
                    match reached.get_mut(charged) {
                        Some(slot) => *slot = value,
                        // Deeper than the buffer: raised now, so the peak never misses the charge (see
                        // `EXACT_PEAK_LEVELS`).
                        None => {
                            account.peak.fetch_max(value, Relaxed);
                        }
                    }
                    charged += 1;
                }
                Err(refused) => {
                    // Undo the levels below the one that refused: the first `charged` levels of the path.
                    for account in self.levels().take(charged) {
                        account.reserved.fetch_sub(bytes, SeqCst);
                    }
                    return Err(refused);
                }
            }
        }
        for (account, &value) in self.levels().zip(&reached[..charged.min(EXACT_PEAK_LEVELS)]) {
            account.peak.fetch_max(value, Relaxed);
        }
        self.own_charged.fetch_add(bytes, SeqCst);
        Ok(())
    }

    /// Gives back a charge made with [`charge`](Self::charge) (memory freed, or never obtained). The bytes leave this
    /// account's own figure first, then every level's `reserved`.
    pub(crate) fn refund(&'static self, bytes: usize) {
        self.own_refunded.fetch_add(bytes, SeqCst);
        for account in self.levels() {
            account.reserved.fetch_sub(bytes, SeqCst);
        }
    }

    /// Bytes that could still be charged here right now: the smallest `limit - reserved` along the charge path.
    /// A hint for sizing only; [`charge`](Self::charge) is what decides.
    pub(crate) fn room(&'static self) -> usize {
        self.levels().map(Account::remaining).min().unwrap_or(usize::MAX)
    }

    /// `limit - reserved` of this level alone.
    fn remaining(&self) -> usize {
        self.limit().saturating_sub(self.reserved.load(Relaxed))
    }

    /// Refuses, with the error a charge would give, if `bytes` cannot be charged right now. A check before creating
    /// bookkeeping (a lane) for a request that could not be served anyway; [`charge`](Self::charge) still decides.
    pub(crate) fn check_room(&'static self, bytes: usize) -> Result<(), LeakError> {
        for account in self.levels() {
            let (limit, reserved) = (account.limit(), account.reserved.load(Relaxed));
            if limit.saturating_sub(reserved) < bytes {
                return Err(account.exceeded(bytes, limit, reserved));
            }
        }
        Ok(())
    }

    /// Charges between `min` and `want` bytes (`min <= want`), preferring `want` but never more than `1/share` of the
    /// room left, so that lanes racing for the last bytes each get a slice instead of one lane taking them all.
    /// Returns the amount charged, a multiple of `granule` (a power of two; `min` and `want` must be multiples too).
    pub(crate) fn charge_between(
        &'static self,
        min: usize,
        want: usize,
        share: usize,
        granule: usize,
    ) -> Result<usize, LeakError> {
        debug_assert!(min <= want && min % granule == 0 && want % granule == 0);
        // A few sized attempts, then `min` alone: each failed attempt means another thread charged in between, so
        // the room shrank; the last attempt's error is exact for `min`.
        for _ in 0..3 {
            let size = want.min((self.room() / share) & !(granule - 1)).max(min);
            match self.charge(size) {
                Ok(()) => return Ok(size),
                Err(refused) if size == min => return Err(refused),
                Err(_) => {}
            }
        }
        self.charge(min).map(|()| min)
    }

    /// Counts a refused request (saturating, so a stream of rejections can never wrap the counter).
    pub(crate) fn note_rejection(&self) {
        saturating_increment(&self.rejections);
    }

    /// Adds `count` requests refused before this account existed (saturating).
    pub(crate) fn add_rejections(&self, count: usize) {
        if count > 0 {
            // Only ever fails at `usize::MAX`, where the counter is meant to stay.
            let _ = self.rejections.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_add(count)));
        }
    }

    /// Bytes currently reserved.
    pub(crate) fn reserved(&self) -> usize {
        self.reserved.load(Relaxed)
    }

    /// The own counters `(own_refunded, own_charged)`, read in that order, in the `SeqCst` order. Every refund (or
    /// hand-over) is counted after the charge it gives back, so `charged - refunded` (wrapping) is never negative: it
    /// is what this budget holds for itself, apart from its children.
    pub(crate) fn own_counters(&self) -> (usize, usize) {
        let refunded = self.own_refunded.load(SeqCst);
        (refunded, self.own_charged.load(SeqCst))
    }

    /// The highest `reserved` has been.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }

    /// Requests refused by this budget's allocation API.
    pub(crate) fn rejections(&self) -> usize {
        self.rejections.load(Relaxed)
    }

    /// Hands over to a child the bytes its creation charged here (through [`charge`](Self::charge), which counted
    /// them as this account's own): the child's record, or its whole limit if prepaid. They are the child's share from
    /// now on, so they are counted as given back by this account (see `Record::register`).
    pub(crate) fn hand_over(&self, bytes: usize) {
        self.own_refunded.fetch_add(bytes, SeqCst);
    }
}

/// Adds one to `counter` unless it is already `usize::MAX`.
pub(crate) fn saturating_increment(counter: &AtomicUsize) {
    // Only ever fails at `usize::MAX`, where the counter is meant to stay.
    let _ = counter.fetch_update(Relaxed, Relaxed, |n| n.checked_add(1));
}
