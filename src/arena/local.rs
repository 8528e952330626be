//! The per-thread lane cache: which lane the calling thread holds for each budget it allocates from.
//!
//! Each thread keeps the lanes it holds in [`Held`] (one per budget, most recently used first) and mirrors the front
//! one in [`Front`], a thread-local with no destructor, so the fast path is one thread-local read with no state check,
//! one pointer compare and a bump. A thread with no lane for a budget adopts a free one (left by a thread that exited,
//! or evicted from a full cache) or creates one (charged to the budget). When a thread exits, `Held`'s destructor
//! releases its lanes so the next thread continues in their chunks instead of charging new ones. A thread whose
//! `Held` is already destroyed (code in a later thread-local destructor) borrows a lane for each request.

use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::{self, NonNull};

use super::lane::{Lane, RequestCharge};
use super::record::Record;
use crate::error::LeakError;
use crate::sync::thread_local_const;

/// Lanes a thread holds at once (one per budget it allocates from).
const HELD_LANES: usize = 4;

/// A budget (its record) and the lane this thread holds for it.
#[derive(Debug)]
struct HeldLane {
    record: Cell<*const Record>,
    lane: Cell<*const Lane>,
}

impl HeldLane {
    #[allow(clippy::declare_interior_mutable_const)] // only used to initialise each thread's thread-locals
    const EMPTY: Self = Self { record: Cell::new(ptr::dangling()), lane: Cell::new(ptr::null()) };

    fn set(&self, record: *const Record, lane: *const Lane) {
        self.record.set(record);
        self.lane.set(lane);
    }
}

/// The lanes this thread holds, most recently used first. Its destructor releases them.
///
/// Invariant: every non-null `lane` is held (`taken`) by this thread, and belongs to the budget of its `record`.
/// Empty entries hold a dangling record pointer, which no real record (a heap allocation) can equal.
#[derive(Debug)]
struct Held {
    lanes: [HeldLane; HELD_LANES],
}

/// A copy of `Held`'s front entry, or empty. It has no destructor, so reading it needs no "already destroyed?" check.
///
/// Invariant: if its record is real, its lane is held by this thread (it equals `Held`'s front entry).
#[derive(Debug)]
struct Front(HeldLane);

impl Held {
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Self = Self { lanes: [HeldLane::EMPTY; HELD_LANES] };

    /// Finds or acquires this thread's lane for `record` and moves it to the front (of `Held` and `Front`). A new
    /// lane is only created if `reserve` more bytes would fit beside it (the least the pending request needs).
    fn lane_for(&self, record: &'static Record, reserve: usize) -> Result<&'static Lane, LeakError> {
        let key = ptr::from_ref(record);
        let found = self.lanes.iter().position(|held| held.record.get() == key);
        let (lane, from) = if let Some(index) = found {
            (self.lanes[index].lane.get(), index)
        } else {
            // The allocator may be called in here; the lanes are only touched after it returns.
            let lane = ptr::from_ref(record.adopt_or_create_lane(reserve)?);
            let evicted = self.lanes[HELD_LANES - 1].lane.replace(ptr::null());
            // SAFETY: a cached lane is held by this thread (the `Held` invariant) and never freed; it leaves the
            // cache here, and `Front` is overwritten below before anything can read it.
            if let Some(evicted) = unsafe { evicted.as_ref() } {
                evicted.release();
            }
            (lane, HELD_LANES - 1)
        };
        for index in (1..=from).rev() {
            self.lanes[index].set(self.lanes[index - 1].record.get(), self.lanes[index - 1].lane.get());
        }
        self.lanes[0].set(key, lane);
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
        for held in &self.lanes {
            // SAFETY: cached lanes are held by this thread and never freed.
            if let Some(lane) = unsafe { held.lane.replace(ptr::null()).as_ref() } {
                lane.release();
            }
            held.record.set(ptr::dangling());
        }
    }
}

thread_local_const! {
    static FRONT: Front = Front(HeldLane::EMPTY);
}

thread_local_const! {
    static HELD: Held = Held::EMPTY;
}

/// The fast path: bumps in this thread's most recently used lane if it belongs to `record`'s budget. `None` sends
/// the caller to [`alloc`].
#[inline(always)]
pub(crate) fn try_alloc_fast(record: *const Record, layout: Layout) -> Option<NonNull<u8>> {
    FRONT.with(|front| {
        if front.0.record.get() != record {
            return None;
        }
        // SAFETY: the entry matched a real record (empty entries hold a dangling pointer no record has, and `record`
        // is null or real), so its lane is non-null and held by this thread (the `Front` invariant).
        unsafe { (*front.0.lane.get()).try_bump(layout) }
    })
}

/// Allocates `layout` for `record`'s budget on the calling thread: through the lanes it holds, or, once its `Held`
/// is destroyed (a thread-local destructor running late), through a lane borrowed for this one request.
///
/// A thread that has no lane for the budget, and no room to create one, gets the value in a dedicated block of its
/// own (the value and a 16-byte header) instead of a refusal: so a budget too small for a lane (a 256-byte budget
/// holding a `u64`: its record and one block) still serves, and a budget near its limit serves a new thread for as
/// long as its values fit.
pub(crate) fn alloc(record: &'static Record, layout: Layout) -> Result<NonNull<u8>, LeakError> {
    let least = RequestCharge::of(layout)?.least;
    let served = HELD.try_with(|held| {
        let lane = held.lane_for(record, least)?;
        // SAFETY: `lane_for` returns a lane held by this thread.
        unsafe { lane.alloc_or_refill(&record.account, &record.blocks, layout) }
    });
    match served {
        Ok(Err(LeakError::BudgetExceeded { .. })) if !holds_lane(record) => without_lane(record, layout),
        Ok(result) => result,
        Err(_destroyed) => {
            let lane = match record.adopt_or_create_lane(least) {
                Ok(lane) => Borrowed(lane),
                Err(LeakError::BudgetExceeded { .. }) => return without_lane(record, layout),
                Err(error) => return Err(error),
            };
            // SAFETY: `adopt_or_create_lane` returns a lane held by this thread; `Borrowed` releases it when done.
            unsafe { lane.0.alloc_or_refill(&record.account, &record.blocks, layout) }
        }
    }
}

/// Whether this thread holds a lane for `record` (so a refusal came from its lane's refill, not from creating one).
fn holds_lane(record: &'static Record) -> bool {
    let key = ptr::from_ref(record);
    HELD.try_with(|held| held.lanes.iter().any(|entry| entry.record.get() == key)).unwrap_or(false)
}

/// Serves `layout` in a dedicated block, for a thread that could not get a lane.
#[cold]
fn without_lane(record: &'static Record, layout: Layout) -> Result<NonNull<u8>, LeakError> {
    record.blocks.alloc_dedicated(&record.account, layout)
}

/// A lane held for one request; released on drop, also if the request unwinds.
struct Borrowed(&'static Lane);

impl Drop for Borrowed {
    fn drop(&mut self) {
        self.0.release();
    }
}
