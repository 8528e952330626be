//! The hard cap, proven at the allocator: a counting `#[global_allocator]` sees every byte the library takes on a
//! budget's behalf, and checks the limit at the instant of every allocation.
//!
//! Attribution: a thread-local flag is set around each library call (arguments are built before it, results checked
//! after it), and only allocations made while it is set are counted as the library's. Each counted block is entered
//! in a fixed, lock-free table so that its later release (if the library ever frees one) is subtracted exactly; a
//! block freed during a library call that the table does not know (the caller's buffer that `leak_vec` frees) is not
//! the library's and is ignored. The counts must then equal the budget's own `reserved` figure exactly, which also
//! proves that the attribution misses nothing. The library frees nothing it charged, so a counted block freed again
//! was a transient allocation it never charged for: that fails the case too.
//!
//! The process-wide state that the crate's dependencies allocate on first use (the lock library's table of waiting
//! threads, the hasher's seed), shared by the whole process and no budget's, is set up before the cases that need it
//! count anything: see [`warm_up_process_state`].
//!
//! Budget trees: each budget of a case is a *level* with a parent level and a limit, and each library call is
//! attributed to the level it charges (the thread's level, see [`charging`]). Every counted block is counted for its
//! level and for each level above it, and each of those sums is checked against its level's limit at the instant of
//! the allocation: the bytes a subtree holds can never exceed its root's limit, since they were charged there first
//! (a prepaid child's at most its limit, which its parent paid).
//!
//! A changing limit: a case that raises and lowers its budget's limit while other threads leak moves a bound on the
//! bytes held ([`bound_held`]) with each change, checked at every counted allocation (see [`limits`]).
//!
//! This file holds the counting allocator, its checks and the runner; the cases are in modules by what they leak:
//! [`values`] (mixed requests until full), [`resident`] (the process's resident set), [`components`] (interners,
//! caches and once-cells), [`trees`] (budget trees) and [`limits`] (a limit changed under load).
//!
//! Run alone: `cargo test --test cap` (a global allocator is process-wide, so this binary holds nothing else).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::resume_unwind;
use std::process::ExitCode;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, Once};
use std::thread;
use std::time::Duration;

use leak_budget::{Interner, LeakBudget, LeakOnce};

#[path = "../support/mod.rs"]
mod support;
// Everything the cases leak themselves (budgets, interners, caches) is kept reachable by `leaked`, outside library
// calls, so never counted.
use support::leaked;

mod components;
mod limits;
mod resident;
mod trees;
mod values;

// ---------------------------------------------------------------------------------------------------------------------
// The counting allocator.

/// Wraps the system allocator and counts what library calls (flagged per thread) take from it.
struct Counting;

thread_local! {
    /// While this thread is inside a library call, 1 + the level its allocations are charged to; 0 otherwise.
    static ATTRIBUTED: Cell<usize> = const { Cell::new(0) };
    /// The level this thread's library calls charge: 0 (the case's budget, or the root of its tree) unless set.
    static LEVEL: Cell<usize> = const { Cell::new(0) };
    /// Allocator calls made by library calls on this thread.
    static THREAD_CALLS: Cell<usize> = const { Cell::new(0) };
}

/// Bytes of counted blocks currently allocated.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// The highest `HELD` has been, read at the instant of each counted allocation.
static MAX_HELD: AtomicUsize = AtomicUsize::new(0);
/// Counted allocator calls (all threads).
static CALLS: AtomicUsize = AtomicUsize::new(0);
/// The limit of the budget under test; every counted allocation that takes `HELD` above it is a violation.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Counted allocations after which `HELD` exceeded `LIMIT`.
static OVER_LIMIT: AtomicUsize = AtomicUsize::new(0);
/// Counted blocks that did not fit in the table (the case then fails: its figures would be incomplete).
static TABLE_FULL: AtomicUsize = AtomicUsize::new(0);
/// Counted blocks released again (the library frees nothing it charged: only transient buffers would show here).
static FREED: AtomicUsize = AtomicUsize::new(0);
/// The budget under test, if the case watches it ([`watch`]): at every counted allocation, the bytes held must be at
/// most its `reserved()`, which counts every byte before it is allocated. Null between cases.
static WATCHED: AtomicPtr<LeakBudget> = AtomicPtr::new(core::ptr::null_mut());
/// Counted allocations after which `HELD` exceeded the watched budget's `reserved()`.
static ABOVE_RESERVED: AtomicUsize = AtomicUsize::new(0);
/// A bound on `HELD` that a case moves as it changes its budget's limit ([`bound_held`]); `usize::MAX` otherwise.
static BOUND: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Counted allocations after which `HELD` exceeded `BOUND`.
static OVER_BOUND: AtomicUsize = AtomicUsize::new(0);

/// Levels (budgets of one tree) a case may use. Level 0 is the case's budget, or the root of its tree.
const LEVELS: usize = 8;
const NO_PARENT: usize = usize::MAX;
/// Bytes of counted blocks currently allocated by each level's own calls.
static OWN: [AtomicUsize; LEVELS] = [const { AtomicUsize::new(0) }; LEVELS];
/// Bytes of counted blocks currently allocated by each level and the levels below it.
static SUBTREE: [AtomicUsize; LEVELS] = [const { AtomicUsize::new(0) }; LEVELS];
/// Each level's limit, and its parent level (`NO_PARENT` for a root).
static LEVEL_LIMIT: [AtomicUsize; LEVELS] = [const { AtomicUsize::new(usize::MAX) }; LEVELS];
static LEVEL_PARENT: [AtomicUsize; LEVELS] = [const { AtomicUsize::new(NO_PARENT) }; LEVELS];
/// Counted allocations after which some level's `SUBTREE` exceeded its `LEVEL_LIMIT`.
static OVER_LEVEL_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Open-addressing table of counted blocks: address (0 empty, 1 removed) and size.
const SLOTS: usize = if cfg!(miri) { 1 << 12 } else { 1 << 18 };
const EMPTY: usize = 0;
const REMOVED: usize = 1;
static ADDRS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(EMPTY) }; SLOTS];
static SIZES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static BLOCK_LEVELS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

fn slot_of(addr: usize) -> usize {
    (addr >> 4).wrapping_mul(0x9E37_79B9) % SLOTS
}

/// The level this thread's allocations are charged to, if it is inside a library call.
fn attributed() -> Option<usize> {
    ATTRIBUTED.try_with(Cell::get).unwrap_or(0).checked_sub(1)
}

/// Adds (or, `grow` false, removes) `size` bytes of `level`'s in the level's sums and every ancestor's; when adding,
/// checks each sum against its level's limit.
fn count_in_levels(level: usize, size: usize, grow: bool) {
    if grow {
        OWN[level].fetch_add(size, SeqCst);
    } else {
        OWN[level].fetch_sub(size, SeqCst);
    }
    let mut at = level;
    while at != NO_PARENT {
        if grow {
            if SUBTREE[at].fetch_add(size, SeqCst) + size > LEVEL_LIMIT[at].load(SeqCst) {
                OVER_LEVEL_LIMIT.fetch_add(1, SeqCst);
            }
        } else {
            SUBTREE[at].fetch_sub(size, SeqCst);
        }
        at = LEVEL_PARENT[at].load(SeqCst);
    }
}

fn record(addr: usize, size: usize, level: usize) {
    CALLS.fetch_add(1, SeqCst);
    let _ = THREAD_CALLS.try_with(|calls| calls.set(calls.get() + 1));
    let held = HELD.fetch_add(size, SeqCst) + size;
    MAX_HELD.fetch_max(held, SeqCst);
    if held > LIMIT.load(SeqCst) {
        OVER_LIMIT.fetch_add(1, SeqCst);
    }
    if held > BOUND.load(SeqCst) {
        OVER_BOUND.fetch_add(1, SeqCst);
    }
    // SAFETY: `WATCHED` is null or the budget of the running case, which outlives the case (`watch`'s contract); its
    // `reserved()` reads atomics only and never allocates.
    if let Some(budget) = unsafe { WATCHED.load(SeqCst).as_ref() } {
        if held > budget.reserved() {
            ABOVE_RESERVED.fetch_add(1, SeqCst);
        }
    }
    count_in_levels(level, size, true);
    let start = slot_of(addr);
    for probe in 0..SLOTS {
        let slot = (start + probe) % SLOTS;
        let current = ADDRS[slot].load(SeqCst);
        if (current == EMPTY || current == REMOVED)
            && ADDRS[slot].compare_exchange(current, addr, SeqCst, SeqCst).is_ok()
        {
            SIZES[slot].store(size, SeqCst);
            BLOCK_LEVELS[slot].store(level, SeqCst);
            return;
        }
    }
    TABLE_FULL.fetch_add(1, SeqCst);
}

/// Forgets a counted block being freed; ignores blocks that were not counted.
fn forget(addr: usize) {
    let start = slot_of(addr);
    for probe in 0..SLOTS {
        let slot = (start + probe) % SLOTS;
        match ADDRS[slot].load(SeqCst) {
            EMPTY => return,
            current if current == addr => {
                let size = SIZES[slot].load(SeqCst);
                HELD.fetch_sub(size, SeqCst);
                count_in_levels(BLOCK_LEVELS[slot].load(SeqCst), size, false);
                FREED.fetch_add(1, SeqCst);
                ADDRS[slot].store(REMOVED, SeqCst);
                return;
            }
            _ => {}
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s guarantees hold; the
// bookkeeping around the calls only touches atomics and const-initialised thread-locals, and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if let Some(level) = attributed().filter(|_| !ptr.is_null()) {
            record(ptr.addr(), layout.size(), level);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if let Some(level) = attributed().filter(|_| !ptr.is_null()) {
            record(ptr.addr(), layout.size(), level);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        forget(ptr.addr());
        // SAFETY: forwarded unchanged; the caller guarantees `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            forget(ptr.addr());
            if let Some(level) = attributed() {
                record(new.addr(), new_size, level);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs one library call with its allocations counted as the budget's (the level this thread charges, see
/// [`charging`]). Build arguments before, inspect after.
fn lib<R>(call: impl FnOnce() -> R) -> R {
    ATTRIBUTED.with(|flag| flag.set(LEVEL.with(Cell::get) + 1));
    let result = call();
    ATTRIBUTED.with(|flag| flag.set(0));
    result
}

/// Makes this thread's library calls charge `level` from now on (until it is set again).
fn charging(level: usize) {
    LEVEL.with(|current| current.set(level));
}

/// Runs one library call charging `level` ([`lib`] on that level), then goes back to this thread's level.
fn lib_at<R>(level: usize, call: impl FnOnce() -> R) -> R {
    let before = LEVEL.with(|current| current.replace(level));
    let result = lib(call);
    charging(before);
    result
}

/// Declares `level` of the current case: a budget of `limit` bytes below `parent` (`NO_PARENT` for a root).
fn add_level(level: usize, parent: usize, limit: usize) {
    LEVEL_LIMIT[level].store(limit, SeqCst);
    LEVEL_PARENT[level].store(parent, SeqCst);
}

/// Counted allocator calls made on this thread so far.
fn thread_calls() -> usize {
    THREAD_CALLS.with(Cell::get)
}

/// Checks, at every counted allocation of the case, that the bytes held are at most `budget.reserved()` (the budget's
/// own record included, while it is being created). The case must end (`start_case` of the next one) before `budget`
/// is dropped: cases run one after another, and each keeps its budget to its end.
fn watch(budget: &LeakBudget) {
    WATCHED.store(core::ptr::from_ref(budget).cast_mut(), SeqCst);
}

/// From now on, every counted allocation must leave the bytes held at most `bound` (until it is set again).
fn bound_held(bound: usize) {
    BOUND.store(bound, SeqCst);
}

/// Starts a case: the budget under test has `limit`; nothing is counted yet. Call with no other thread allocating.
fn start_case(limit: usize) {
    WATCHED.store(core::ptr::null_mut(), SeqCst);
    ABOVE_RESERVED.store(0, SeqCst);
    BOUND.store(usize::MAX, SeqCst);
    LIMIT.store(limit, SeqCst);
    for (addr, size) in ADDRS.iter().zip(&SIZES) {
        addr.store(EMPTY, SeqCst);
        size.store(0, SeqCst);
    }
    for counter in [&HELD, &MAX_HELD, &CALLS, &OVER_LIMIT, &TABLE_FULL, &FREED, &OVER_LEVEL_LIMIT, &OVER_BOUND] {
        counter.store(0, SeqCst);
    }
    for level in 0..LEVELS {
        OWN[level].store(0, SeqCst);
        SUBTREE[level].store(0, SeqCst);
        add_level(level, NO_PARENT, usize::MAX);
    }
    LEVEL_LIMIT[0].store(limit, SeqCst);
}

/// The counted blocks, as sorted `(start, len)` ranges. Call with no other thread allocating.
fn counted_blocks() -> Vec<(usize, usize)> {
    let mut blocks: Vec<(usize, usize)> = ADDRS
        .iter()
        .zip(&SIZES)
        .map(|(addr, size)| (addr.load(SeqCst), size.load(SeqCst)))
        .filter(|&(addr, _)| addr != EMPTY && addr != REMOVED)
        .collect();
    blocks.sort_unstable();
    blocks
}

/// The library frees nothing it was charged for, and must allocate nothing it was not charged for: a counted block
/// freed again was a transient allocation the budget never paid for, which could hold the process above the limit
/// for an instant when the budget had less than its size left.
fn assert_no_counted_block_freed() {
    assert_eq!(FREED.load(SeqCst), 0, "a library call allocated (and freed) memory its budget was not charged for");
}

/// The allocator-side figures of a case, checked against the budget's own.
fn assert_cap_held(budget: &LeakBudget) -> String {
    let stats = budget.stats();
    let (held, max_held) = (HELD.load(SeqCst), MAX_HELD.load(SeqCst));
    assert_eq!(TABLE_FULL.load(SeqCst), 0, "the block table overflowed: enlarge SLOTS");
    assert_eq!(OVER_LEVEL_LIMIT.load(SeqCst), 0, "an allocation took some level's bytes above its limit");
    assert_eq!(OVER_BOUND.load(SeqCst), 0, "an allocation took the bytes held above the bound the case set");
    assert_no_counted_block_freed();
    assert_eq!(
        OVER_LIMIT.load(SeqCst),
        0,
        "an allocation took the bytes held above the limit ({max_held} > {})",
        stats.limit
    );
    assert!(max_held <= stats.limit, "held {max_held} > limit {}", stats.limit);
    assert_eq!(
        ABOVE_RESERVED.load(SeqCst),
        0,
        "an allocation held bytes for the budget that its reserved() did not count yet"
    );
    WATCHED.store(core::ptr::null_mut(), SeqCst);
    assert_eq!(
        held, stats.reserved,
        "bytes held from the allocator must be exactly the budget's reserved figure\n{stats}"
    );
    assert!(stats.used <= stats.reserved && stats.reserved <= stats.limit && stats.peak_reserved <= stats.limit);
    format!(
        "limit {}, max held {} ({:.2}%), used {}, {} allocations, {} rejections, {} allocator calls",
        stats.limit,
        max_held,
        100.0 * max_held as f64 / stats.limit as f64,
        stats.used,
        stats.allocations,
        stats.rejections,
        CALLS.load(SeqCst)
    )
}

/// Checks that the `(start, len)` ranges handed out are pairwise disjoint and inside blocks counted as the library's.
fn assert_disjoint_and_counted(mut ranges: Vec<(usize, usize)>) {
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "leaked ranges {:x?} and {:x?} overlap", pair[0], pair[1]);
    }
    let blocks = counted_blocks();
    for &(start, len) in &ranges {
        let index = blocks.partition_point(|&(block, _)| block <= start);
        let inside = index > 0 && {
            let (block, size) = blocks[index - 1];
            start + len <= block + size
        };
        assert!(inside, "leaked range {start:#x}+{len} is not inside memory the library took for the budget");
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Shared by the cases: the process-wide state set up before counting, and threads released together.

/// Sets up, once and before anything is counted, the process-wide state that the crate's dependencies allocate on
/// first use. It is shared by the whole process, allocated once (or once per new high-water mark of threads), and is
/// no budget's:
/// - natively the crate's locks are `parking_lot`'s, whose first blocked thread allocates a table of waiting threads
///   (1056 bytes for four threads), replaced by a larger one (the old one is never freed) when more threads have
///   blocked at once than it was sized for. Eight threads block on one cell's initialiser at once here (the cases
///   run at most eight threads at a time). Under Miri the locks are std's, which allocate nothing: skipped there;
/// - `foldhash` seeds its process-wide hasher seed on first use, with an address from a one-byte `Box` it frees.
///
/// Without this, the first case whose threads block on a lock would hold 1056 bytes more than the budget reserved.
fn warm_up_process_state() {
    static WARMED: Once = Once::new();
    WARMED.call_once(|| {
        const THREADS: usize = 8;
        let budget = leaked(LeakBudget::named("warm-up", 64 << 10));
        leaked(Interner::<str>::in_budget(budget)).intern("warm-up").expect("fits");
        if cfg!(miri) {
            return;
        }
        let cell = LeakOnce::<u64>::in_budget(budget);
        let arrived = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    arrived.fetch_add(1, SeqCst);
                    let value = cell.get_or_init(|| {
                        while arrived.load(SeqCst) < THREADS {
                            thread::yield_now();
                        }
                        // Time for the other threads to block on the cell's lock or condition variable.
                        thread::sleep(Duration::from_millis(100));
                        7
                    });
                    assert_eq!(value.ok(), Some(&7));
                });
            }
        });
    });
}

/// Runs `work(t)` for `t` in `0..threads` on as many threads, released together, and returns their results in order
/// (re-raising the first panic).
fn on_threads<R: Send>(threads: usize, work: impl Fn(u64) -> R + Sync) -> Vec<R> {
    let barrier = Barrier::new(threads);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(t)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| resume_unwind(panic))).collect()
    })
}

// ---------------------------------------------------------------------------------------------------------------------
// The runner: the cases in order, one line each.

fn main() -> ExitCode {
    support::run(&[
        // First, while the process is small and the allocator has no freed memory to reuse.
        ("resident_memory_grows_by_at_most_the_limit", resident::resident_memory_grows_by_at_most_the_limit),
        ("resident_memory_with_strict_alignments", resident::resident_memory_with_strict_alignments),
        ("one_thread_until_full", values::one_thread_until_full),
        ("threads_until_full", values::threads_until_full),
        ("refusals_of_one_size_never_reach_the_allocator", values::refusals_of_one_size_never_reach_the_allocator),
        ("interner_until_full", components::interner_until_full),
        ("sized_interner_until_full", components::sized_interner_until_full),
        ("cache_until_full", components::cache_until_full),
        ("trees_never_exceed_any_level", trees::trees_never_exceed_any_level),
        ("leak_once_is_charged_once", components::leak_once_is_charged_once),
        ("a_limit_changed_under_load_bounds_the_bytes_held", limits::a_limit_changed_under_load_bounds_the_bytes_held),
    ])
}
