//! [`Record`]: everything a budget owns, created on its first charge, charged to the budget itself, and never freed;
//! and the process-wide registry of records.
//!
//! Never freeing a record has three consequences:
//! - every block the budget takes stays reachable from a `static` (the registry), so leak checkers report it as
//!   reachable, and a `LeakBudget` that is not `'static` can be dropped without dangling anything it handed out;
//! - a record's address is a unique, never reused identity, which the per-thread lane cache keys on;
//! - the report can walk every budget that ever charged a byte, dropped or not.

use core::mem::size_of;

use super::account::{Account, Terms};
use super::block::{self, Blocks};
use super::lane::{Lane, RequestCharge};
use crate::error::LeakError;
use crate::stats::Stats;
use crate::sync::{AppendList, Linked, ListHead, StaticList};

/// What a budget owns: its account, its blocks and its lanes.
#[derive(Debug)]
pub(crate) struct Record {
    /// The cap and the counters.
    pub(crate) account: Account,
    /// Every chunk and dedicated block the budget took.
    pub(crate) blocks: Blocks,
    /// Every lane the budget created, newest first. Lanes are never freed.
    lanes: AppendList<Lane>,
    /// The record registered before this one. Written by the registry's push only.
    next_registered: core::sync::atomic::AtomicPtr<Record>,
}

impl Linked<core::sync::atomic::AtomicPtr<Record>> for Record {
    fn link(&self) -> &core::sync::atomic::AtomicPtr<Record> {
        &self.next_registered
    }
}

/// Every record ever created, newest first.
static REGISTRY: StaticList<Record> = StaticList::new_static();

/// A reading of the registry: the records registered up to it.
pub(crate) type RegistryHead = ListHead<Record, core::sync::atomic::AtomicPtr<Record>>;

impl Record {
    /// Bytes a record takes, charged to its own budget on creation (and to its ancestors).
    pub(crate) const BYTES: usize = size_of::<Record>();

    /// Creates a budget's record: checks that the record fits in the budget's own `limit`, charges the parent chain
    /// (the record's size, or the whole `limit` if `prepaid`), allocates, and registers it.
    pub(crate) fn create(terms: Terms, parent: Option<&'static Record>) -> Result<&'static Record, LeakError> {
        let Terms { limit, name, prepaid, global } = terms;
        if Self::BYTES > limit {
            return Err(LeakError::exceeded(name, global, Self::BYTES, limit, limit));
        }
        let parent = parent.map(|parent| &parent.account);
        let upward = if prepaid { limit } else { Self::BYTES };
        let record = block::allocate_static(parent, upward, || Record {
            account: Account::new(terms, parent, Self::BYTES),
            blocks: Blocks::new(),
            lanes: AppendList::new(),
            next_registered: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
        })?;
        // The parent's charge counted the bytes as the parent's own: they are this child's share, so they are handed
        // over first (counted as given back by the parent), then the record is pushed. Between the two, a report sees
        // the bytes in neither (a smaller total, never a larger one); after the push, in the child's share.
        if let Some(parent) = parent {
            parent.hand_over(upward);
        }
        REGISTRY.push(record);
        Ok(record)
    }

    /// The head of the registry, read in the `SeqCst` order: equal readings mean no record was registered between.
    pub(crate) fn registry() -> RegistryHead {
        REGISTRY.head()
    }

    /// Takes a free lane of this budget, or creates one if `reserve` more bytes fit beside it. The returned lane is
    /// held by the caller.
    pub(crate) fn adopt_or_create_lane(&'static self, reserve: usize) -> Result<&'static Lane, LeakError> {
        if let Some(lane) = self.lanes.iter().find(|lane| lane.try_take()) {
            return Ok(lane);
        }
        self.account.check_room(RequestCharge::LANE.saturating_add(reserve))?;
        let lane = block::allocate_static(Some(&self.account), RequestCharge::LANE, Lane::new_held)?;
        self.lanes.push(lane);
        Ok(lane)
    }

    /// Bytes handed out, values placed and lanes, from this budget's lanes and dedicated blocks. Each lane's figure
    /// is a consistent reading (see `lane.rs`); every byte counted here was charged (and counted in the account's
    /// `own_charged`) before a reader could see it, through the `Acquire` loads of the lane list, of each lane's
    /// seqlock, and of the dedicated-block counters.
    pub(crate) fn used_and_allocations(&self) -> (usize, usize, usize) {
        let (mut used, mut allocations) = self.blocks.large();
        let mut lanes = 0;
        for lane in self.lanes.iter() {
            used += lane.used();
            allocations += lane.allocations();
            lanes += 1;
        }
        (used, allocations, lanes)
    }

    /// A snapshot of the figures. Each is exact at the moment it is read; while other threads allocate, they are
    /// read one after another and so may come from slightly different instants. When no other thread is allocating,
    /// `used <= reserved <= limit` and `reserved <= peak_reserved` hold exactly.
    pub(crate) fn stats(&self) -> Stats {
        let (used, allocations, lanes) = self.used_and_allocations();
        let account = &self.account;
        Stats {
            name: account.name,
            limit: account.limit(),
            used,
            allocations,
            rejections: account.rejections(),
            blocks: self.blocks.count(),
            lanes,
            peak_reserved: account.peak(),
            reserved: account.reserved(),
        }
    }
}
