//! [`Lane`]: a bump region held by one thread at a time, the allocation fast path; and [`RequestCharge`], what one
//! request can charge.
//!
//! A lane is the current chunk and a cursor plus its own statistics. Its holder bumps down from the chunk's end with
//! two stores into the lane's own cache line: no lock, no atomic read-modify-write, and no write to memory another
//! thread writes. Which thread holds which lane is `local.rs`'s business; which lanes a budget has, `record.rs`'s.
//!
//! # Memory orderings
//! - Taking a lane is a CAS of `taken` from `false` to `true` with `Acquire`; releasing it is a `Release` store of
//!   `false`: everything the previous holder wrote to the lane happens-before the next holder reads it.
//! - `cursor`, `top`, `retired` and `allocations` are written only by the holder and read by anyone computing
//!   statistics, all `Relaxed`. `used` is derived from three of them (`retired + top - cursor`); a chunk switch
//!   changes all three, so it is bracketed by the `switches` sequence counter (odd while switching), and readers retry
//!   until they read an even, unchanged count around their reads (a seqlock: `Release` fence after the writer's odd
//!   store and `Release` on its final even store; `Acquire` on the reader's first load and an `Acquire` fence before
//!   its second).

use core::alloc::Layout;
use core::mem::size_of;
use core::ptr::{self, NonNull};

use super::account::Account;
use super::block::{self, Blocks};
use crate::error::LeakError;
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicUsize, Backoff, Linked,
    Ordering::{Acquire, Relaxed, Release},
    UnsafeCell, fence,
};

/// Size of a lane's first chunk. Small, so a thread that leaks one value does not hold a large chunk.
const FIRST_CHUNK: usize = 4 << 10;
/// Chunks double per lane up to this size.
const MAX_CHUNK: usize = 1 << 20;
/// Where the OS backs large chunks with huge pages (see `block::HUGE_PAGES`), chunks keep doubling up to this size:
/// only a chunk's 2 MiB-aligned middle can be backed by huge pages, and in a 32 MiB chunk that is at least 30 MiB
/// (in an 8 MiB one, 6: the rest still faults 4 KiB at a time, and measured 15% slower). The limit still caps chunks
/// at 1/32 of it, so only budgets of 1 GiB and more reach 32 MiB, those of 128 MiB and more 4 MiB, and small budgets
/// keep small chunks.
const HUGE_MAX_CHUNK: usize = 32 << 20;
/// Where chunks may be backed by huge pages, they quadruple rather than double from this size on (see [`grown`]).
const QUADRUPLE_FROM: usize = 64 << 10;
/// Nor is a chunk larger than `1/LIMIT_SHARE` of its budget's limit (see [`chunk_cap`]).
const LIMIT_SHARE: usize = 32;
/// Below this size the limit does not cap a chunk: tiny chunks would spend a large share of themselves on their
/// header and on what they abandon.
const MIN_CAP: usize = 1 << 10;
/// A request needing more than `1/LARGE_FRACTION` of the lane's next chunk size gets a dedicated block, so the bytes
/// a lane abandons at the end of a chunk are at most that fraction of the chunk.
const LARGE_FRACTION: usize = 8;

/// One bump region and its statistics. Allocated by `Record::adopt_or_create_lane`, never freed.
///
/// Aligned to 128 bytes so that two lanes never share a cache line (nor an adjacent-line prefetch pair).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Lane {
    /// Next free byte boundary: allocations are carved downwards from here.
    ///
    /// Invariant: `floor <= cursor <= top`, all inside (or one past the end of) the current chunk, whose provenance
    /// `cursor` carries; all null before the lane's first chunk. Written only by the holder.
    cursor: AtomicPtr<u8>,
    /// Values handed out from this lane. Written only by the holder.
    allocations: AtomicUsize,
    /// The holder's private state.
    ///
    /// Invariant: only the thread that set `taken` touches it, until it clears `taken`.
    private: UnsafeCell<Private>,
    /// End of the current chunk. Written only by the holder, inside a `switches` bracket.
    top: AtomicPtr<u8>,
    /// Bytes handed out from chunks before the current one. Written only by the holder, inside a `switches` bracket.
    retired: AtomicUsize,
    /// Seqlock count of chunk switches: odd while the holder is switching chunks.
    switches: AtomicUsize,
    /// Whether some thread holds this lane (in its `Held` cache, or borrowed for one request).
    taken: AtomicBool,
    /// The lane pushed before this one on its budget's list. Written before the lane is published, then immutable.
    next: AtomicPtr<Lane>,
}

impl Linked<AtomicPtr<Lane>> for Lane {
    fn link(&self) -> &AtomicPtr<Lane> {
        &self.next
    }
}

/// A lane's state that only its holder reads or writes.
#[derive(Debug)]
struct Private {
    /// Lowest address the current chunk may hand out (just past its header).
    floor: *mut u8,
    /// Size to ask for the next chunk.
    next_chunk: usize,
}

impl Lane {
    /// A lane with no chunk yet, held by its creator.
    pub(crate) fn new_held() -> Self {
        Self {
            cursor: AtomicPtr::new(ptr::null_mut()),
            allocations: AtomicUsize::new(0),
            private: UnsafeCell::new(Private { floor: ptr::null_mut(), next_chunk: FIRST_CHUNK }),
            top: AtomicPtr::new(ptr::null_mut()),
            retired: AtomicUsize::new(0),
            switches: AtomicUsize::new(0),
            taken: AtomicBool::new(true),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Bytes handed out from this lane, alignment padding included: a consistent read of `retired + top - cursor`.
    pub(crate) fn used(&self) -> usize {
        let backoff = Backoff::new();
        loop {
            let before = self.switches.load(Acquire);
            if before % 2 == 0 {
                // Wrapping: a read torn by a concurrent switch may mix two chunks; it is discarded just below.
                let current = self.top.load(Relaxed).addr().wrapping_sub(self.cursor.load(Relaxed).addr());
                let used = self.retired.load(Relaxed).wrapping_add(current);
                fence(Acquire);
                if self.switches.load(Relaxed) == before {
                    return used;
                }
            }
            backoff.snooze();
        }
    }

    /// Values handed out from this lane.
    pub(crate) fn allocations(&self) -> usize {
        self.allocations.load(Relaxed)
    }

    /// Takes the lane if no thread holds it.
    pub(crate) fn try_take(&self) -> bool {
        self.taken.compare_exchange(false, true, Acquire, Relaxed).is_ok()
    }

    /// Lets another thread take the lane. Only its holder calls this.
    pub(crate) fn release(&self) {
        self.taken.store(false, Release);
    }

    /// Carves `layout` out of the current chunk, or returns `None` if it does not fit.
    ///
    /// # Safety
    /// The calling thread must hold this lane (`taken` set by it, not yet released).
    #[inline(always)]
    pub(crate) unsafe fn try_bump(&self, layout: Layout) -> Option<NonNull<u8>> {
        let cursor = self.cursor.load(Relaxed);
        let start = cursor.addr().checked_sub(layout.size())? & !(layout.align() - 1);
        // SAFETY: the caller holds the lane, so nothing else accesses `private` (the `taken` invariant).
        let floor = self.private.with(|private| unsafe { (*private).floor });
        if start < floor.addr() {
            return None;
        }
        // `floor <= start < cursor`: the new cursor stays inside the current chunk, whose provenance it keeps.
        let allocation = cursor.with_addr(start);
        // Single writer (the holder): plain stores, no read-modify-write.
        self.cursor.store(allocation, Relaxed);
        self.allocations.store(self.allocations.load(Relaxed) + 1, Relaxed);
        NonNull::new(allocation)
    }

    /// Allocates `layout` from this lane: from the current chunk, else from a dedicated block (large values), else
    /// from a new chunk.
    ///
    /// # Safety
    /// The calling thread must hold this lane.
    pub(crate) unsafe fn alloc_or_refill(
        &self,
        account: &'static Account,
        blocks: &Blocks,
        layout: Layout,
    ) -> Result<NonNull<u8>, LeakError> {
        // SAFETY: the caller holds the lane.
        if let Some(allocation) = unsafe { self.try_bump(layout) } {
            return Ok(allocation);
        }
        let need = block::chunk_bytes_for(layout).ok_or(LeakError::size_overflow(layout.size(), 1))?;
        // SAFETY: the caller holds the lane. Copied out: the allocator is called below, and no borrow of the lane's
        // state is kept across a call that could (through a custom global allocator) re-enter this crate.
        let next_chunk = self.private.with(|private| unsafe { (*private).next_chunk }).min(chunk_cap(account));
        if need > next_chunk / LARGE_FRACTION {
            return blocks.alloc_dedicated(account, layout);
        }
        let (floor, top) = match blocks.take_chunk(account, need, next_chunk) {
            Ok(chunk) => chunk,
            // Near the limit a dedicated block (no worst-case padding, header at the end) may still fit where a chunk
            // does not; its error, if it fails too, names the smaller amount that was missing.
            Err(LeakError::BudgetExceeded { .. }) => return blocks.alloc_dedicated(account, layout),
            Err(error) => return Err(error),
        };
        self.switch_chunk(floor.as_ptr(), top.as_ptr(), grown(next_chunk));
        // SAFETY: the caller holds the lane. The chunk has `need` bytes: header, value and worst-case padding.
        Ok(unsafe { self.try_bump(layout) }.expect("a fresh chunk is sized to fit the request"))
    }

    /// Moves the lane to a fresh chunk `[floor, top)`. The bytes left in the old chunk are abandoned (still charged).
    /// Only the holder calls this.
    fn switch_chunk(&self, floor: *mut u8, top: *mut u8, next_chunk: usize) {
        let switches = self.switches.load(Relaxed);
        self.switches.store(switches + 1, Relaxed);
        fence(Release);
        let old_used = self.top.load(Relaxed).addr() - self.cursor.load(Relaxed).addr();
        self.retired.store(self.retired.load(Relaxed) + old_used, Relaxed);
        self.top.store(top, Relaxed);
        self.cursor.store(top, Relaxed);
        // SAFETY: only the holder calls this (the `taken` invariant).
        self.private.with_mut(|private| unsafe { *private = Private { floor, next_chunk } });
        self.switches.store(switches + 2, Release);
    }
}

/// The size of the chunk a lane takes after one of `chunk` bytes: twice as large, up to [`MAX_CHUNK`]; where the OS
/// backs large chunks with huge pages, four times as large from [`QUADRUPLE_FROM`] on, up to [`HUGE_MAX_CHUNK`], so
/// that a lane that keeps leaking reaches chunks backed by huge pages after 1.4 MiB of smaller ones rather than 4 MiB.
/// ([`chunk_cap`] still caps every chunk by the budget's limit.)
fn grown(chunk: usize) -> usize {
    if block::HUGE_PAGES {
        let factor = if chunk >= QUADRUPLE_FROM { 4 } else { 2 };
        chunk.saturating_mul(factor).min(HUGE_MAX_CHUNK)
    } else {
        chunk.saturating_mul(2).min(MAX_CHUNK)
    }
}

/// The largest chunk a lane of `account` takes: at most `1/LIMIT_SHARE` of the budget's limit (but not below
/// `MIN_CAP`), a multiple of `CHUNK_ALIGN`.
///
/// A lane's chunk is charged in full when it is taken, and what the lane has not bumped yet serves no other lane. If
/// its thread then pauses (descheduled, blocked, busy elsewhere) while others use up the budget, that remainder is what
/// the budget cannot hand out at their first refusal. `take_chunk` keeps each chunk to 1/8 of the room left, which
/// alone lets a chunk taken early be 1/8 of the whole limit: two threads at 256 KiB were seen refused with 25 KiB idle
/// in the other lane (89.6% handed out). Capped by the limit as well, one idle lane holds at most 1/32 of it.
fn chunk_cap(account: &Account) -> usize {
    (account.limit() / LIMIT_SHARE).max(MIN_CAP) & !(block::CHUNK_ALIGN - 1)
}

/// What one request for a layout can charge, worked out once here for every caller that sizes or checks a request
/// (the budget's first request, a thread's first request, table growth, `LeakBudget::max_charge_for`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestCharge {
    /// The least it charges when the calling thread's lane has no room left: a dedicated block or a fresh chunk,
    /// whichever is smaller.
    pub(crate) least: usize,
    /// The most it charges: a fresh chunk sized for it (header, value and worst-case alignment padding) and a new
    /// lane. Saturates at `usize::MAX`.
    pub(crate) most: usize,
}

impl RequestCharge {
    /// The bytes a thread's first request in a budget charges for its lane, besides the request itself.
    pub(crate) const LANE: usize = size_of::<Lane>();

    /// The charges of a request for `layout`: [`LeakError::SizeOverflow`] if it is too large to ever be served.
    pub(crate) fn of(layout: Layout) -> Result<Self, LeakError> {
        let too_large = || LeakError::size_overflow(layout.size(), 1);
        let chunk = block::chunk_bytes_for(layout).ok_or_else(too_large)?;
        let least = block::least_charge_for(layout).ok_or_else(too_large)?;
        Ok(Self { least, most: chunk.saturating_add(Self::LANE) })
    }
}
