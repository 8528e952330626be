//! A budget's accounting record: the hard cap, its counters, and everything it owns.
//!
//! An [`Account`] is created on a budget's first charge, charged to the budget itself, and never freed. Three things
//! follow from that:
//! - every block the budget takes stays reachable from a `static` (the registry of accounts), so leak checkers report
//!   it as reachable, and a `LeakBudget` that is not `'static` can be dropped without dangling anything it handed out;
//! - an account's address is a unique, never reused identity, which the per-thread lane cache keys on;
//! - the report can walk every budget that ever charged a byte, dropped or not.
//!
//! # Memory orderings
//! - `reserved` is only read-modified-written with `fetch_update` (a CAS loop) whose closure refuses to go above
//!   `limit`; single-location RMW atomicity alone makes the cap hard. The counter guards no other memory (the bytes
//!   are allocated after the charge, by the thread that made it).
//! - The report's figures (`own_charged`, `own_refunded`, the registry head) and every change of `reserved` are
//!   `SeqCst`, so that all of them sit in one total order that respects each thread's program order: a charge raises
//!   `reserved` at every level *before* it counts the bytes in `own_charged`, and a refund counts them in
//!   `own_refunded` *before* it lowers `reserved`. So at every point of that order, each budget's `reserved` is at
//!   least the sum of the own bytes below it, and the report (`src/report.rs`), which reads the own counters twice
//!   and keeps a reading only if nothing changed in between, reads figures that held together at one point, where
//!   they added up to at most `limit`. This costs nothing on the fast path: all of it happens when a chunk, lane,
//!   dedicated block, record or table is taken or given back (on x86 a `SeqCst` read-modify-write is the same
//!   instruction as a `Relaxed` one).
//! - `lanes` and `chain` are append-only lists: a node is fully written, then pushed with a `Release` CAS; readers load
//!   the head with `Acquire`, after which the node's immutable fields (`next`, sizes) are visible.
//! - `large_used` and `large_allocations` are raised with `Release` after the block's charge, and read with `Acquire`:
//!   a reader that sees a dedicated value also sees the charge that paid for it.
//! - Other statistics counters are `Relaxed`: each is exact on its own; a snapshot of several is not atomic as a whole.

use core::mem::size_of;
use core::ptr;

use crate::LeakError;
use crate::arena::block::BlockHeader;
use crate::arena::lane::Lane;
use crate::stats::Stats;
use crate::sync::{
    AtomicPtr, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
    process,
};

/// The accounting record of one budget. Created by `arena::create_account`, never freed.
#[derive(Debug)]
pub(crate) struct Account {
    /// The budget's limit. Immutable.
    pub(crate) limit: usize,
    /// The budget's name. Immutable.
    pub(crate) name: &'static str,
    /// The parent's account, charged alongside this one unless `prepaid`. Immutable.
    pub(crate) parent: Option<&'static Account>,
    /// The whole `limit` was charged to `parent` when this account was created, so this account's own charges stop
    /// here instead of going up the tree. Immutable.
    pub(crate) prepaid: bool,
    /// Bytes taken from the global allocator on this budget's behalf (this record, lanes, chunks, dedicated blocks,
    /// tables) plus its children's, or its prepaid children's whole limits.
    ///
    /// Invariant: `reserved <= limit` at every instant. Only `try_add` raises it, with a checked CAS; refunds lower it.
    /// Invariant: `reserved >= own + Σ children's share` (own = `own_charged - own_refunded`; a child's share is its
    /// `reserved`, or its `limit` if prepaid) at every point of the `SeqCst` order (see the module note).
    reserved: AtomicUsize,
    /// Bytes this budget has ever charged for itself (its record, lanes, chunks, dedicated blocks, tables), not for
    /// its children. Only grows (wrapping), so two equal readings mean it did not change in between. Raised after
    /// every level of the charge succeeded.
    own_charged: AtomicUsize,
    /// Bytes of `own_charged` given back: refunds, and creation charges handed over to the child they were made for
    /// (see [`register`](Self::register)). Only grows (wrapping). Raised before the levels' `reserved` are lowered.
    own_refunded: AtomicUsize,
    /// The highest value `reserved` has had.
    peak: AtomicUsize,
    /// Requests refused by this budget's allocation API (saturating).
    rejections: AtomicUsize,
    /// Bytes handed out in dedicated blocks (values too large for a lane's chunk).
    large_used: AtomicUsize,
    /// Values placed in dedicated blocks.
    large_allocations: AtomicUsize,
    /// Blocks (chunks and dedicated blocks) taken from the global allocator.
    blocks: AtomicUsize,
    /// Head of the intrusive list of every block this account took, newest first. Never read by the crate: it is
    /// what keeps the blocks reachable for leak checkers. Append-only.
    pub(crate) chain: AtomicPtr<BlockHeader>,
    /// Head of the list of this account's lanes, newest first. Append-only; lanes are never freed.
    pub(crate) lanes: AtomicPtr<Lane>,
    /// Next account in the process-wide registry. Written once, before the account is pushed.
    next_registered: process::AtomicPtr<Account>,
}

/// Levels of a charge (counted from the account charged, upwards) whose `peak` is raised only once every level
/// accepted, from what the charge made their `reserved` reach: a charge that is rolled back never shows in their peak.
///
/// A charge keeps those figures in a fixed buffer on the stack (no allocation, whatever the depth of the tree). A
/// level further up than that, in a tree deeper than any that occurs in practice, raises its peak as soon as it
/// accepts: its peak then may include a charge a level above it refused (rolled back at once), as it includes one the
/// allocator refused (`LeakError::AllocFailed`). Still a value its `reserved` held, never above its limit.
pub(crate) const EXACT_PEAK_LEVELS: usize = 32;

/// Head of the process-wide, append-only registry of accounts, newest first.
static REGISTRY: process::AtomicPtr<Account> = process::AtomicPtr::new(ptr::null_mut());

impl Account {
    /// A fresh record whose own size is already charged to itself.
    pub(crate) fn new(
        limit: usize,
        name: &'static str,
        parent: Option<&'static Account>,
        prepaid: bool,
        self_cost: usize,
    ) -> Self {
        Self {
            limit,
            name,
            parent,
            prepaid,
            reserved: AtomicUsize::new(self_cost),
            own_charged: AtomicUsize::new(self_cost),
            own_refunded: AtomicUsize::new(0),
            peak: AtomicUsize::new(self_cost),
            rejections: AtomicUsize::new(0),
            large_used: AtomicUsize::new(0),
            large_allocations: AtomicUsize::new(0),
            blocks: AtomicUsize::new(0),
            chain: AtomicPtr::new(ptr::null_mut()),
            lanes: AtomicPtr::new(ptr::null_mut()),
            next_registered: process::AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The account charged after this one, if charges go up from here.
    fn upward(&self) -> Option<&'static Account> {
        if self.prepaid { None } else { self.parent }
    }

    /// Adds `bytes` to `reserved` if the result stays within `limit`, in one atomic step, and returns the new value.
    fn try_add(&self, bytes: usize) -> Result<usize, LeakError> {
        let limit = self.limit;
        match self.reserved.fetch_update(SeqCst, SeqCst, |r| r.checked_add(bytes).filter(|&n| n <= limit)) {
            // `previous + bytes <= limit` was just checked, so this cannot overflow.
            Ok(previous) => Ok(previous + bytes),
            Err(current) => Err(LeakError::BudgetExceeded {
                budget: self.name,
                requested: bytes,
                remaining: limit - current,
                limit,
            }),
        }
    }

    /// Charges `bytes` to this account and every ancestor it propagates to, all or nothing: if any level refuses,
    /// the levels already charged are refunded and the refusing level's error is returned.
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
        let mut level = Some(self);
        while let Some(account) = level {
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
                    level = account.upward();
                }
                Err(refused) => {
                    // Undo the levels below the one that refused: the first `charged` levels of the path.
                    let mut undo = Some(self);
                    for _ in 0..charged {
                        let account = undo.expect("`charged` levels were charged on this path");
                        account.reserved.fetch_sub(bytes, SeqCst);
                        undo = account.upward();
                    }
                    return Err(refused);
                }
            }
        }
        let mut level = Some(self);
        for &value in &reached[..charged.min(EXACT_PEAK_LEVELS)] {
            let account = level.expect("`charged` levels were charged on this path");
            account.peak.fetch_max(value, Relaxed);
            level = account.upward();
        }
        self.own_charged.fetch_add(bytes, SeqCst);
        Ok(())
    }

    /// Gives back a charge made with [`charge`](Self::charge) (memory freed, or never obtained). The bytes leave this
    /// account's own figure first, then every level's `reserved`.
    pub(crate) fn refund(&self, bytes: usize) {
        self.own_refunded.fetch_add(bytes, SeqCst);
        let mut level = Some(self);
        while let Some(account) = level {
            account.reserved.fetch_sub(bytes, SeqCst);
            level = account.upward();
        }
    }

    /// Bytes that could still be charged here right now: the smallest `limit - reserved` along the charge path.
    /// A hint for sizing only; [`charge`](Self::charge) is what decides.
    pub(crate) fn room(&self) -> usize {
        let mut room = usize::MAX;
        let mut level = Some(self);
        while let Some(account) = level {
            room = room.min(account.limit.saturating_sub(account.reserved.load(Relaxed)));
            level = account.upward();
        }
        room
    }

    /// Refuses, with the error a charge would give, if `bytes` cannot be charged right now. A check before creating
    /// bookkeeping (a lane) for a request that could not be served anyway; [`charge`](Self::charge) still decides.
    pub(crate) fn check_room(&self, bytes: usize) -> Result<(), LeakError> {
        let mut level = Some(self);
        while let Some(account) = level {
            let remaining = account.limit.saturating_sub(account.reserved.load(Relaxed));
            if remaining < bytes {
                return Err(LeakError::BudgetExceeded {
                    budget: account.name,
                    requested: bytes,
                    remaining,
                    limit: account.limit,
                });
            }
            level = account.upward();
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

    /// Counts a value placed in a dedicated block (after the block was charged: `Release`, see the module note).
    pub(crate) fn note_large(&self, bytes: usize) {
        self.large_used.fetch_add(bytes, Release);
        self.large_allocations.fetch_add(1, Release);
    }

    /// Adds `count` requests refused before this account existed (saturating).
    pub(crate) fn add_rejections(&self, count: usize) {
        if count > 0 {
            // Only ever fails at `usize::MAX`, where the counter is meant to stay.
            let _ = self.rejections.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_add(count)));
        }
    }

    /// Counts a block taken from the global allocator.
    pub(crate) fn note_block(&self) {
        self.blocks.fetch_add(1, Relaxed);
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

    /// Bytes handed out and values placed, from this account's lanes and dedicated blocks. Each lane's figure is a
    /// consistent reading (see `lane.rs`); every byte counted here was charged (and counted in `own_charged`) before
    /// a reader could see it, through the `Acquire` loads of the lane list, of each lane's seqlock, and of
    /// `large_used`.
    pub(crate) fn used_and_allocations(&self) -> (usize, usize, usize) {
        let mut used = self.large_used.load(Acquire);
        let mut allocations = self.large_allocations.load(Acquire);
        let mut lanes = 0;
        let mut lane = self.lanes.load(Acquire);
        // SAFETY: lanes are pushed fully initialised with a `Release` CAS (read here with `Acquire`) and never freed;
        // `next` is immutable after the push.
        while let Some(current) = unsafe { lane.as_ref() } {
            used += current.used();
            allocations += current.allocations();
            lanes += 1;
            lane = current.next;
        }
        (used, allocations, lanes)
    }

    /// A snapshot of the counters. Each figure is exact at the moment it is read; while other threads allocate, the
    /// figures are read one after another and so may come from slightly different instants. When no other thread is
    /// allocating, `used <= reserved <= limit` and `reserved <= peak_reserved` hold exactly.
    pub(crate) fn stats(&self) -> Stats {
        let (used, allocations, lanes) = self.used_and_allocations();
        Stats {
            name: self.name,
            limit: self.limit,
            used,
            allocations,
            rejections: self.rejections.load(Relaxed),
            blocks: self.blocks.load(Relaxed),
            lanes,
            peak_reserved: self.peak.load(Relaxed),
            reserved: self.reserved.load(Relaxed),
        }
    }

    /// Adds a freshly created account to the process-wide registry.
    ///
    /// `arena::create_account` charged the parent chain for this account through the parent's
    /// [`charge`](Self::charge), which counted the bytes as the parent's own: the record's size, or the whole `limit`
    /// if prepaid. They are this child's share, so they are handed over first (counted as given back by the parent),
    /// then the account is pushed. Between the two, a report sees the bytes in neither (a smaller total, never a
    /// larger one); after the push, in the child's share.
    pub(crate) fn register(&'static self) {
        if let Some(parent) = self.parent {
            let handed_over = if self.prepaid { self.limit } else { size_of::<Account>() };
            parent.own_refunded.fetch_add(handed_over, SeqCst);
        }
        let mut head = REGISTRY.load(Relaxed);
        loop {
            self.next_registered.store(head, Relaxed);
            match REGISTRY.compare_exchange_weak(head, ptr::from_ref(self).cast_mut(), SeqCst, Relaxed) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// The head of the registry, read in the `SeqCst` order: equal readings mean no account was registered between.
    pub(crate) fn registry_head() -> RegistryHead {
        RegistryHead(REGISTRY.load(SeqCst))
    }
}

/// A reading of the registry's head: the accounts registered up to that reading.
///
/// Invariant: null, or an account that was pushed onto the registry (only [`Account::registry_head`] makes one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegistryHead(*const Account);

impl RegistryHead {
    /// The accounts registered up to this reading, newest first.
    pub(crate) fn accounts(self) -> impl Iterator<Item = &'static Account> {
        let mut next = self.0;
        core::iter::from_fn(move || {
            // SAFETY: `next` is null or a registered account (the `RegistryHead` invariant, and each
            // `next_registered` was written before its own account's push). Accounts are pushed fully initialised
            // with a `SeqCst` CAS (the head is read with `SeqCst`, which includes `Acquire`) and are never freed.
            let account = unsafe { next.as_ref() }?;
            next = account.next_registered.load(Relaxed);
            Some(account)
        })
    }

    /// The accounts registered after `older` (an earlier reading) up to this reading, newest first.
    pub(crate) fn accounts_since(self, older: RegistryHead) -> impl Iterator<Item = &'static Account> {
        self.accounts().take_while(move |account| !ptr::eq(*account, older.0))
    }
}

/// Adds one to `counter` unless it is already `usize::MAX`.
pub(crate) fn saturating_increment(counter: &AtomicUsize) {
    // Only ever fails at `usize::MAX`, where the counter is meant to stay.
    let _ = counter.fetch_update(Relaxed, Relaxed, |n| n.checked_add(1));
}
