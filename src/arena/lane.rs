//! Per-thread bump lanes: the allocation fast path.
//!
//! A budget's account owns a list of [`Lane`]s. A lane is a bump region (the current chunk and a cursor) plus its own
//! statistics, and is *held* by at most one thread at a time. Each thread keeps the lanes it holds in [`Held`] (one
//! per budget it allocates from, most recently used first) and mirrors the front one in [`Front`], a thread-local
//! with no destructor, so the fast path is: one thread-local read with no state check, one pointer compare, a
//! downward bump, and two stores into the lane's own cache line. No lock, no atomic read-modify-write, and no write to
//! memory another thread writes.
//!
//! A thread with no lane for an account adopts a free one (left by a thread that exited, or evicted from a full
//! cache) or creates one (charged to the budget). When a thread exits, `Held`'s destructor releases its lanes so the
//! next thread continues in their chunks instead of charging new ones. A thread whose `Held` is already destroyed
//! (code in a later thread-local destructor) borrows a lane for each request.
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
use core::cell::Cell;
use core::mem::size_of;
use core::ptr::{self, NonNull};

use crate::LeakError;
use crate::arena::account::Account;
use crate::arena::block as arena;
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicUsize, Backoff,
    Ordering::{Acquire, Relaxed, Release},
    UnsafeCell, fence, thread_local_const,
};

/// Size of a lane's first chunk. Small, so a thread that leaks one value does not hold a large chunk.
const FIRST_CHUNK: usize = 4 << 10;
/// Chunks double per lane up to this size.
const MAX_CHUNK: usize = 1 << 20;
/// Nor is a chunk larger than `1/LIMIT_SHARE` of its budget's limit (see [`chunk_cap`]).
const LIMIT_SHARE: usize = 32;
/// Below this size the limit does not cap a chunk: tiny chunks would spend a large share of themselves on their
/// header and on what they abandon.
const MIN_CAP: usize = 1 << 10;
/// A request needing more than `1/LARGE_FRACTION` of the lane's next chunk size gets a dedicated block, so the bytes
/// a lane abandons at the end of a chunk are at most that fraction of the chunk.
const LARGE_FRACTION: usize = 8;
/// Lanes a thread holds at once (one per budget it allocates from).
const HELD_SLOTS: usize = 4;

/// One bump region and its statistics. Allocated by `arena::create_lane`, never freed.
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
    /// The lane pushed before this one on the account's list. Written before the lane is published, then immutable.
    pub(crate) next: *mut Lane,
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
    pub(crate) fn new_held(next: *mut Lane) -> Self {
        Self {
            cursor: AtomicPtr::new(ptr::null_mut()),
            allocations: AtomicUsize::new(0),
            private: UnsafeCell::new(Private { floor: ptr::null_mut(), next_chunk: FIRST_CHUNK }),
            top: AtomicPtr::new(ptr::null_mut()),
            retired: AtomicUsize::new(0),
            switches: AtomicUsize::new(0),
            taken: AtomicBool::new(true),
            next,
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

    fn try_take(&self) -> bool {
        self.taken.compare_exchange(false, true, Acquire, Relaxed).is_ok()
    }

    fn release(&self) {
        self.taken.store(false, Release);
    }

    /// Carves `layout` out of the current chunk, or returns `None` if it does not fit.
    ///
    /// # Safety
    /// The calling thread must hold this lane (`taken` set by it, not yet released).
    #[inline(always)]
    unsafe fn try_bump(&self, layout: Layout) -> Option<NonNull<u8>> {
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
    unsafe fn alloc_or_refill(&self, account: &'static Account, layout: Layout) -> Result<NonNull<u8>, LeakError> {
        // SAFETY: the caller holds the lane.
        if let Some(allocation) = unsafe { self.try_bump(layout) } {
            return Ok(allocation);
        }
        let need =
            arena::chunk_bytes_for(layout).ok_or(LeakError::SizeOverflow { elem_size: layout.size(), len: 1 })?;
        // SAFETY: the caller holds the lane. Copied out: the allocator is called below, and no borrow of the lane's
        // state is kept across a call that could (through a custom global allocator) re-enter this crate.
        let next_chunk = self.private.with(|private| unsafe { (*private).next_chunk }).min(chunk_cap(account));
        if need > next_chunk / LARGE_FRACTION {
            return arena::alloc_dedicated(account, layout);
        }
        let (floor, top) = match arena::take_chunk(account, need, next_chunk) {
            Ok(chunk) => chunk,
            // Near the limit a dedicated block (no worst-case padding, header at the end) may still fit where a chunk
            // does not; its error, if it fails too, names the smaller amount that was missing.
            Err(LeakError::BudgetExceeded { .. }) => return arena::alloc_dedicated(account, layout),
            Err(error) => return Err(error),
        };
        self.switch_chunk(floor.as_ptr(), top.as_ptr(), (next_chunk * 2).min(MAX_CHUNK));
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

/// The largest chunk a lane of `account` takes: at most `1/LIMIT_SHARE` of the budget's limit (but not below
/// `MIN_CAP`), a multiple of `CHUNK_ALIGN`.
///
/// A lane's chunk is charged in full when it is taken, and what the lane has not bumped yet serves no other lane. If
/// its thread then pauses (descheduled, blocked, busy elsewhere) while others use up the budget, that remainder is what
/// the budget cannot hand out at their first refusal. `take_chunk` keeps each chunk to 1/8 of the room left, which
/// alone lets a chunk taken early be 1/8 of the whole limit: two threads at 256 KiB were seen refused with 25 KiB idle
/// in the other lane (89.6% handed out). Capped by the limit as well, one idle lane holds at most 1/32 of it.
fn chunk_cap(account: &Account) -> usize {
    (account.limit / LIMIT_SHARE).max(MIN_CAP) & !(arena::CHUNK_ALIGN - 1)
}

/// An account and the lane this thread holds for it.
#[derive(Debug)]
struct Slot {
    account: Cell<*const Account>,
    lane: Cell<*const Lane>,
}

impl Slot {
    #[allow(clippy::declare_interior_mutable_const)] // only used to initialise each thread's thread-locals
    const EMPTY: Self = Self { account: Cell::new(ptr::dangling()), lane: Cell::new(ptr::null()) };

    fn set(&self, account: *const Account, lane: *const Lane) {
        self.account.set(account);
        self.lane.set(lane);
    }
}

/// The lanes this thread holds, most recently used first. Its destructor releases them.
///
/// Invariant: every non-null `lane` in a slot is held (`taken`) by this thread, and belongs to the slot's account.
/// Empty slots hold a dangling account pointer, which no real account (a heap allocation) can equal.
#[derive(Debug)]
struct Held {
    slots: [Slot; HELD_SLOTS],
}

/// A copy of `Held`'s front slot, or empty. It has no destructor, so reading it needs no "already destroyed?" check.
///
/// Invariant: if its account is real, its lane is held by this thread (it equals `Held`'s front slot).
#[derive(Debug)]
struct Front(Slot);

impl Held {
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Self = Self { slots: [Slot::EMPTY; HELD_SLOTS] };

    /// Finds or acquires this thread's lane for `account` and moves it to the front (of `Held` and `Front`). A new
    /// lane is only created if `reserve` more bytes would fit beside it (the least the pending request needs).
    fn lane_for(&self, account: &'static Account, reserve: usize) -> Result<&'static Lane, LeakError> {
        let key = ptr::from_ref(account);
        let found = self.slots.iter().position(|slot| slot.account.get() == key);
        let (lane, from) = if let Some(index) = found {
            (self.slots[index].lane.get(), index)
        } else {
            // The allocator may be called in here; the slots are only touched after it returns.
            let lane = ptr::from_ref(adopt_or_create(account, reserve)?);
            let evicted = self.slots[HELD_SLOTS - 1].lane.replace(ptr::null());
            // SAFETY: a lane in a slot is held by this thread (the `Held` invariant) and never freed; it leaves the
            // cache here, and `Front` is overwritten below before anything can read it.
            if let Some(evicted) = unsafe { evicted.as_ref() } {
                evicted.release();
            }
            (lane, HELD_SLOTS - 1)
        };
        for index in (1..=from).rev() {
            self.slots[index].set(self.slots[index - 1].account.get(), self.slots[index - 1].lane.get());
        }
        self.slots[0].set(key, lane);
        FRONT.with(|front| front.0.set(key, lane));
        // SAFETY: lanes are never freed, and this one is held by this thread.
        Ok(unsafe { &*lane })
    }
}

impl Drop for Held {
    /// Releases this thread's lanes so that other threads continue in their chunks.
    fn drop(&mut self) {
        // Empty `Front` first, so nothing on this thread bumps a lane after it is released. (Under loom, thread-locals
        // are dropped together and `Front` may be gone already, which is fine: the thread is ending.)
        let _ = FRONT.try_with(|front| front.0.set(ptr::dangling(), ptr::null()));
        for slot in &self.slots {
            // SAFETY: lanes in slots are held by this thread and never freed.
            if let Some(lane) = unsafe { slot.lane.replace(ptr::null()).as_ref() } {
                lane.release();
            }
            slot.account.set(ptr::dangling());
        }
    }
}

thread_local_const! {
    static FRONT: Front = Front(Slot::EMPTY);
}

thread_local_const! {
    static HELD: Held = Held::EMPTY;
}

/// The fast path: bumps in this thread's most recently used lane if it belongs to `account`. `None` sends the caller
/// to [`alloc`].
#[inline(always)]
pub(crate) fn try_alloc_fast(account: *const Account, layout: Layout) -> Option<NonNull<u8>> {
    FRONT.with(|front| {
        if front.0.account.get() != account {
            return None;
        }
        // SAFETY: the slot matched a real account (empty slots hold a dangling pointer no account has, and `account`
        // is null or real), so its lane is non-null and held by this thread (the `Front` invariant).
        unsafe { (*front.0.lane.get()).try_bump(layout) }
    })
}

/// Allocates `layout` for `account` on the calling thread: through the lanes it holds, or, once its `Held` is
/// destroyed (a thread-local destructor running late), through a lane borrowed for this one request.
pub(crate) fn alloc(account: &'static Account, layout: Layout) -> Result<NonNull<u8>, LeakError> {
    let least = arena::least_charge_for(layout).ok_or(LeakError::SizeOverflow { elem_size: layout.size(), len: 1 })?;
    match HELD.try_with(|held| {
        let lane = held.lane_for(account, least)?;
        // SAFETY: `lane_for` returns a lane held by this thread.
        unsafe { lane.alloc_or_refill(account, layout) }
    }) {
        Ok(result) => result,
        Err(_destroyed) => {
            let lane = Borrowed(adopt_or_create(account, least)?);
            // SAFETY: `adopt_or_create` returns a lane held by this thread; `Borrowed` releases it when done.
            unsafe { lane.0.alloc_or_refill(account, layout) }
        }
    }
}

/// A lane held for one request; released on drop, also if the request unwinds.
struct Borrowed(&'static Lane);

impl Drop for Borrowed {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Takes a free lane of `account`, or creates one if `reserve` more bytes fit beside it. The returned lane is held by
/// the caller.
fn adopt_or_create(account: &'static Account, reserve: usize) -> Result<&'static Lane, LeakError> {
    let mut lane = account.lanes.load(Acquire);
    // SAFETY: lanes are published with a `Release` CAS (read with `Acquire`), never freed, and `next` is immutable.
    while let Some(candidate) = unsafe { lane.as_ref() } {
        if candidate.try_take() {
            return Ok(candidate);
        }
        lane = candidate.next;
    }
    account.check_room(size_of::<Lane>().saturating_add(reserve))?;
    arena::create_lane(account)
}
