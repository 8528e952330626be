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
//! Run alone: `cargo test --test cap` (a global allocator is process-wide, so this binary holds nothing else).

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Borrow;
use std::cell::Cell;
use std::fmt::Debug;
use std::mem::{MaybeUninit, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::ExitCode;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, Once};
use std::thread;
use std::time::Duration;

use leak_budget::{Internable, Interned, Interner, LeakBudget, LeakError, LeakOnce, StaticCache};

mod support;
// Everything the cases leak themselves (budgets, interners, caches) is kept reachable by `leaked`, outside library
// calls, so never counted.
use support::{Rng, leaked, pattern, scaled};

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

/// Starts a case: the budget under test has `limit`; nothing is counted yet. Call with no other thread allocating.
fn start_case(limit: usize) {
    WATCHED.store(core::ptr::null_mut(), SeqCst);
    ABOVE_RESERVED.store(0, SeqCst);
    LIMIT.store(limit, SeqCst);
    for (addr, size) in ADDRS.iter().zip(&SIZES) {
        addr.store(EMPTY, SeqCst);
        size.store(0, SeqCst);
    }
    for counter in [&HELD, &MAX_HELD, &CALLS, &OVER_LIMIT, &TABLE_FULL, &FREED, &OVER_LEVEL_LIMIT] {
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

// ---------------------------------------------------------------------------------------------------------------------
// Mixed requests.

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Align64([u8; 64]);

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Align4096([u8; 4096]);

/// A successful request: the bytes it got, which must read `expected(seed, ascii, ..)` at the end.
struct Leaked {
    bytes: &'static [u8],
    seed: u64,
    ascii: bool,
}

/// The byte at `index` of what a request for `seed` wrote: the pattern, or a lowercase letter for strings.
fn expected(seed: u64, ascii: bool, index: usize) -> u8 {
    if ascii { b'a' + pattern(seed, index) % 26 } else { pattern(seed, index) }
}

/// Whether `bytes` read what a request for `seed` wrote.
fn intact(bytes: &[u8], seed: u64, ascii: bool) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| b == expected(seed, ascii, i))
}

/// Leaks a plain-bytes value (no padding, every bit pattern valid) built from `seed`.
fn leak_typed<T: Copy + 'static>(budget: &LeakBudget, seed: u64) -> Result<Leaked, LeakError> {
    let mut value = MaybeUninit::<T>::uninit();
    let bytes = value.as_mut_ptr().cast::<u8>();
    for i in 0..size_of::<T>() {
        // SAFETY: `i < size_of::<T>()`, inside `value`.
        unsafe { bytes.add(i).write(pattern(seed, i)) };
    }
    // SAFETY: every byte was written, and `T` (byte arrays and integers) has no padding and no invalid bit pattern.
    let value = unsafe { value.assume_init() };
    match lib(|| budget.leak(value)) {
        Ok(leaked) => {
            // SAFETY: `T` has no padding, so all its bytes are initialised; the value is never freed nor written again.
            let bytes = unsafe { core::slice::from_raw_parts(core::ptr::from_ref(leaked).cast(), size_of::<T>()) };
            Ok(Leaked { bytes, seed, ascii: false })
        }
        Err(refused) => {
            let back = refused.value();
            // SAFETY: as above, for the value given back.
            let bytes = unsafe { core::slice::from_raw_parts(core::ptr::from_ref(back).cast(), size_of::<T>()) };
            assert!(intact(bytes, seed, false), "a refused value comes back intact");
            Err(refused.into_parts().1)
        }
    }
}

/// The shapes the mixed workload draws from.
const KINDS: usize = 12;

/// Makes one random request: typed values of several sizes and alignments, strings, slices, vectors and raw layouts
/// (sometimes large, so dedicated blocks are exercised too). Returns the request's layout and its outcome.
fn random_request(budget: &LeakBudget, rng: &mut Rng) -> (Layout, Result<Leaked, LeakError>) {
    let seed = rng.next_u64();
    match rng.below(KINDS) {
        0 => (Layout::new::<u8>(), leak_typed::<u8>(budget, seed)),
        1 => (Layout::new::<u64>(), leak_typed::<u64>(budget, seed)),
        2 => (Layout::new::<[u64; 3]>(), leak_typed::<[u64; 3]>(budget, seed)),
        3 => (Layout::new::<Align64>(), leak_typed::<Align64>(budget, seed)),
        4 => (Layout::new::<Align4096>(), leak_typed::<Align4096>(budget, seed)),
        5 => (Layout::new::<[u8; 3000]>(), leak_typed::<[u8; 3000]>(budget, seed)),
        6 | 7 => {
            let len = if rng.below(16) == 0 { rng.below(scaled(20_000, 2_000)) } else { rng.below(200) };
            let text = String::from_utf8((0..len).map(|i| expected(seed, true, i)).collect()).expect("ASCII");
            let result = lib(|| budget.leak_str(&text)).map(|leaked| {
                assert_eq!(leaked, text);
                Leaked { bytes: leaked.as_bytes(), seed, ascii: true }
            });
            (Layout::for_value(text.as_bytes()), result)
        }
        8 => {
            let words: Vec<u32> = (0..rng.below(300))
                .map(|w| u32::from_ne_bytes(core::array::from_fn(|i| pattern(seed, 4 * w + i))))
                .collect();
            let result = lib(|| budget.leak_slice(&words)).map(|leaked| {
                assert_eq!(leaked, words.as_slice());
                // SAFETY: initialised `u32`s viewed as bytes; never freed nor written again.
                let bytes = unsafe { core::slice::from_raw_parts(leaked.as_ptr().cast::<u8>(), size_of_val(leaked)) };
                Leaked { bytes, seed, ascii: false }
            });
            (Layout::for_value(words.as_slice()), result)
        }
        9 => {
            let data: Vec<u8> = (0..rng.below(600)).map(|i| pattern(seed, i)).collect();
            let layout = Layout::for_value(data.as_slice());
            let result = match lib(|| budget.leak_vec(data)) {
                Ok(leaked) => Ok(Leaked { bytes: leaked, seed, ascii: false }),
                Err(refused) => {
                    let (back, error) = refused.into_parts();
                    assert!(intact(&back, seed, false), "a refused vec comes back intact");
                    assert_eq!(back.len(), layout.size());
                    Err(error)
                }
            };
            (layout, result)
        }
        _ => {
            let size = if rng.below(8) == 0 { rng.below(scaled(70_000, 8_000)) } else { rng.below(scaled(5_000, 600)) };
            let layout = Layout::from_size_align(size, 1 << rng.below(13)).expect("a valid layout");
            let result = lib(|| budget.leak_layout(layout)).map(|memory| {
                for (i, byte) in memory.iter_mut().enumerate() {
                    byte.write(pattern(seed, i));
                }
                // SAFETY: every byte was just written; never freed nor written again.
                let bytes = unsafe { core::slice::from_raw_parts(memory.as_ptr().cast::<u8>(), memory.len()) };
                Leaked { bytes, seed, ascii: false }
            });
            (layout, result)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Leaking until full.

/// What one thread saw while leaking until the budget was full.
#[derive(Default)]
struct Run {
    /// Every successful non-empty request.
    leaked: Vec<Leaked>,
    /// Layouts this thread was refused, each once.
    refused: Vec<Layout>,
    /// Requests made, refusals among them, and requests repeating a refused layout.
    requests: usize,
    refusals: usize,
    repeats: usize,
}

/// Leaks random requests (a quarter of them single bytes) until a 1-byte request is refused: the budget is then full
/// to within the smallest block. Checks, for every request, that once this thread has been refused a layout, no later
/// request of that layout reaches the allocator. With `keep` false, checks contents at once and keeps nothing.
fn leak_until_full(budget: &LeakBudget, seed: u64, keep: bool) -> Run {
    let mut rng = Rng::new(seed);
    let mut run = Run::default();
    loop {
        assert!(run.requests < 50_000_000, "a finite budget must fill up");
        run.requests += 1;
        let calls_before = thread_calls();
        let (layout, result) = if rng.below(4) == 0 {
            (Layout::new::<u8>(), leak_typed::<u8>(budget, rng.next_u64()))
        } else {
            random_request(budget, &mut rng)
        };
        let calls = thread_calls() - calls_before;
        if run.refused.contains(&layout) {
            run.repeats += 1;
            assert_eq!(calls, 0, "{layout:?} was refused before: a new request for it must not reach the allocator");
        }
        match result {
            Ok(leaked) => {
                assert_eq!(leaked.bytes.as_ptr().addr() % layout.align(), 0, "{layout:?} misaligned");
                assert!(intact(leaked.bytes, leaked.seed, leaked.ascii));
                if keep && !leaked.bytes.is_empty() {
                    run.leaked.push(leaked);
                }
            }
            Err(LeakError::BudgetExceeded { .. }) => {
                run.refusals += 1;
                if !run.refused.contains(&layout) {
                    run.refused.push(layout);
                }
                if layout == Layout::new::<u8>() {
                    return run;
                }
            }
            Err(other) => panic!("unexpected error for {layout:?}: {other}"),
        }
    }
}

/// Repeats every refused layout `times` times (as raw layouts): all must be refused again.
fn repeat_refused(budget: &LeakBudget, refused: &[Layout], times: usize) {
    for &layout in refused {
        for _ in 0..times {
            assert!(matches!(lib(|| budget.leak_layout(layout)), Err(LeakError::BudgetExceeded { .. })));
        }
    }
}

/// Checks that successful requests are intact, pairwise disjoint and inside blocks counted as the library's.
fn assert_leaked_sound(leaked: &[&Leaked]) {
    assert!(leaked.iter().all(|l| intact(l.bytes, l.seed, l.ascii)), "leaked contents were overwritten");
    assert_disjoint_and_counted(leaked.iter().map(|l| (l.bytes.as_ptr().addr(), l.bytes.len())).collect());
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

fn one_thread_until_full() -> String {
    let limit = scaled(4 << 20, 48 << 10);
    start_case(limit);
    let budget = LeakBudget::named("cap", limit);
    watch(&budget);
    let run = leak_until_full(&budget, 1, true);
    let calls = CALLS.load(SeqCst);
    repeat_refused(&budget, &run.refused, scaled(100, 3));
    assert_eq!(CALLS.load(SeqCst), calls, "after refusals, the same requests reach the allocator no more");
    assert_leaked_sound(&run.leaked.iter().collect::<Vec<_>>());
    let summary = assert_cap_held(&budget);
    format!("{summary}; {} requests, {} repeats of refused layouts", run.requests, run.repeats)
}

fn threads_until_full() -> String {
    let threads = scaled(4, 3);
    let limit = scaled(8 << 20, 64 << 10);
    start_case(limit);
    let budget = LeakBudget::named("cap", limit);
    watch(&budget);
    let barrier = Barrier::new(threads + 1);
    let (runs, calls_after_full, calls_after_repeats) = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (budget, barrier) = (&budget, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    // A failed check must not leave the other threads waiting at the barriers: finish them first.
                    let run = catch_unwind(AssertUnwindSafe(|| leak_until_full(budget, 100 + t as u64, true)));
                    barrier.wait(); // every thread is full
                    barrier.wait(); // the main thread has read the call count
                    let run = run.unwrap_or_else(|panic| resume_unwind(panic));
                    repeat_refused(budget, &run.refused, scaled(100, 3));
                    run
                })
            })
            .collect();
        barrier.wait();
        barrier.wait();
        let calls_after_full = CALLS.load(SeqCst);
        barrier.wait();
        let runs: Vec<Run> =
            workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| resume_unwind(panic))).collect();
        (runs, calls_after_full, CALLS.load(SeqCst))
    });
    assert_eq!(calls_after_repeats, calls_after_full, "no refused layout reaches the allocator again on any thread");
    assert_leaked_sound(&runs.iter().flat_map(|run| &run.leaked).collect::<Vec<_>>());
    let summary = assert_cap_held(&budget);
    let (requests, repeats) = runs.iter().fold((0, 0), |(r, p), run| (r + run.requests, p + run.repeats));
    format!("{summary}; {threads} threads, {requests} requests, {repeats} repeats of refused layouts")
}

/// One layout, leaked until refused, then asked for again many times: no further allocator call.
fn refusals_of_one_size_never_reach_the_allocator() -> String {
    let mut figures = Vec::new();
    for layout in
        [Layout::new::<[u8; 24]>(), Layout::from_size_align(100, 4096).unwrap(), Layout::new::<[u8; 50_000]>()]
    {
        let limit = scaled(1 << 20, 64 << 10);
        start_case(limit);
        let budget = LeakBudget::named("cap", limit);
        let mut served = 0;
        while lib(|| budget.leak_layout(layout)).is_ok() {
            served += 1;
        }
        let calls = CALLS.load(SeqCst);
        for _ in 0..scaled(100_000, 20) {
            assert!(lib(|| budget.leak_layout(layout)).is_err());
        }
        assert_eq!(CALLS.load(SeqCst), calls, "{layout:?}: refused requests reached the allocator");
        assert_cap_held(&budget);
        figures.push(format!("{}B/align {}: {served} served, {calls} allocator calls", layout.size(), layout.align()));
    }
    figures.join("; ")
}

// ---------------------------------------------------------------------------------------------------------------------
// Resident memory.

/// Bytes of slack allowed on top of the limit for the process's resident set growth: the allocator's per-block
/// headers and page rounding (glibc maps blocks of 128 KiB and more one by one, each with a header page), its
/// per-thread arenas' metadata, the two threads' stacks, and the test's own transient buffers. Measured on glibc 2.36
/// with a 64 MiB limit and two threads: growth minus limit from -0.12 MiB to +0.24 MiB over ten runs (see
/// docs/guarantees.md); 2 MiB leaves room for allocator and kernel variation.
const RSS_SLACK: usize = 2 << 20;

/// The process's resident set in bytes, from `/proc/self/statm` (Linux only).
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Two threads leak random requests (every byte handed out is written, so its pages are resident) until the budget is
/// full, and keep asking; then this thread asks too. The resident set grows by at most the limit plus `RSS_SLACK`.
fn resident_memory_grows_by_at_most_the_limit() -> String {
    if cfg!(miri) || resident_bytes().is_none() {
        return "skipped: no /proc/self/statm here (Linux only, and not under Miri)".into();
    }
    let limit = 64 << 20;
    start_case(limit);
    let budget = LeakBudget::named("rss", limit);
    let before = resident_bytes().expect("statm");
    thread::scope(|scope| {
        for t in 0..2 {
            let budget = &budget;
            scope.spawn(move || {
                let run = leak_until_full(budget, 7 + t, false);
                for _ in 0..100_000 {
                    assert!(leak_typed::<[u64; 3]>(budget, 0).is_err());
                }
                repeat_refused(budget, &run.refused, 10);
            });
        }
    });
    let full = resident_bytes().expect("statm");
    for _ in 0..100_000 {
        assert!(leak_typed::<[u8; 100]>(&budget, 0).is_err());
    }
    let growth = full.max(resident_bytes().expect("statm")).saturating_sub(before);
    let summary = assert_cap_held(&budget);
    assert!(
        growth <= limit + RSS_SLACK,
        "resident set grew by {growth} bytes, more than the limit {limit} plus {RSS_SLACK} of slack"
    );
    format!(
        "RSS growth {growth} bytes for a {limit}-byte limit: {:+} bytes beyond the limit (slack allowed \
         {RSS_SLACK}); {summary}",
        growth as isize - limit as isize
    )
}

/// Small values with strict alignments, leaked until refused: the allocator's own alignment padding must be paid
/// for by the budget too, so the resident set still grows by at most the limit plus `RSS_SLACK` for each shape.
fn resident_memory_with_strict_alignments() -> String {
    if cfg!(miri) || resident_bytes().is_none() {
        return "skipped: no /proc/self/statm here (Linux only, and not under Miri)".into();
    }
    let limit = 2 << 20;
    let mut figures = Vec::new();
    for (size, align) in [(1, 1 << 10), (100, 4096), (4096, 4096), (1, 1 << 16), (24, 1 << 21)] {
        let layout = Layout::from_size_align(size, align).expect("valid");
        start_case(limit);
        let budget = LeakBudget::named("rss", limit);
        let before = resident_bytes().expect("statm");
        let mut served = 0;
        while let Ok(memory) = lib(|| budget.leak_layout(layout)) {
            // Touch every byte handed out, as a caller would.
            memory.fill(MaybeUninit::new(1));
            served += 1;
        }
        let growth = resident_bytes().expect("statm").saturating_sub(before);
        assert_cap_held(&budget);
        assert!(
            growth <= limit + RSS_SLACK,
            "{size} bytes aligned to {align}: {served} served, the resident set grew by {growth} bytes, more than the \
             limit {limit} plus {RSS_SLACK} of slack"
        );
        figures.push(format!("{size}B/align {align}: {served} served, RSS growth {growth}"));
    }
    format!("limit {limit} each; {}", figures.join("; "))
}

// ---------------------------------------------------------------------------------------------------------------------
// Interners, caches, once-cells and budget trees: their tables and bookkeeping are charged too.

/// Consecutive refusals after which a worker deems its budget full.
const FULL_STREAK: usize = scaled(16, 4);

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

/// What one thread saw while interning distinct values until its budget was full.
struct Interning<T: ?Sized + Internable, V> {
    /// Every value interned, with its handle.
    kept: Vec<(Interned<T>, V)>,
    /// The last value refused.
    refused: Option<V>,
    requests: usize,
    refusals: usize,
}

/// Interns distinct values made by `make(rng, n)` (`n` counts this thread's requests) into `interner`, which charges
/// `budget`, until [`FULL_STREAK`] refusals in a row. Each handle must hold what was interned. With `alone` (no other
/// thread uses the budget), checks that each refusal changed nothing: no allocator call, the same `len()` and
/// `reserved()`, and that the same value is refused again.
fn intern_until_full<T, V>(
    interner: &Interner<T>,
    budget: &LeakBudget,
    seed: u64,
    alone: bool,
    mut make: impl FnMut(&mut Rng, usize) -> V,
) -> Interning<T, V>
where
    T: ?Sized + Internable + PartialEq + Debug,
    V: Borrow<T>,
{
    let mut rng = Rng::new(seed);
    let mut run = Interning { kept: Vec::new(), refused: None, requests: 0, refusals: 0 };
    let mut streak = 0;
    while streak < FULL_STREAK {
        assert!(run.requests < 50_000_000, "a finite budget must fill up");
        run.requests += 1;
        let value = make(&mut rng, run.requests);
        let before = (interner.len(), budget.reserved(), CALLS.load(SeqCst));
        match lib(|| interner.intern(value.borrow())) {
            Ok(handle) => {
                streak = 0;
                assert_eq!(&*handle, value.borrow(), "a handle holds the value interned");
                run.kept.push((handle, value));
            }
            Err(LeakError::BudgetExceeded { .. }) => {
                streak += 1;
                run.refusals += 1;
                if alone {
                    let after = (interner.len(), budget.reserved(), CALLS.load(SeqCst));
                    assert_eq!(after, before, "a refusal changes nothing (len, reserved, allocator calls)");
                    let again = lib(|| interner.intern(value.borrow()));
                    assert!(matches!(again, Err(LeakError::BudgetExceeded { .. })), "refused again: {again:?}");
                    let after = (interner.len(), budget.reserved(), CALLS.load(SeqCst));
                    assert_eq!(after, before, "a repeated refusal changes nothing");
                }
                run.refused = Some(value);
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    run
}

/// The bytes of an interned value, as a `(start, len)` range.
fn range_of<T: ?Sized + Internable>(handle: Interned<T>) -> (usize, usize) {
    let value = handle.as_static();
    (ptr::from_ref(value).cast::<u8>().addr(), size_of_val(value))
}

/// Checks, with no other thread using the interner, that every handle in `runs` still resolves: `get` and a repeated
/// `intern` return the same handle, pointing to the same bytes, without an allocator call. Returns the handles'
/// ranges and the number of handles.
fn assert_handles_resolve<T, V>(interner: &Interner<T>, runs: &[Interning<T, V>]) -> (Vec<(usize, usize)>, usize)
where
    T: ?Sized + Internable + PartialEq + Debug,
    V: Borrow<T>,
{
    let calls = CALLS.load(SeqCst);
    let mut ranges = Vec::new();
    for (handle, value) in runs.iter().flat_map(|run| &run.kept) {
        let found = lib(|| interner.get(value.borrow())).expect("an interned value is found");
        assert!(found == *handle && ptr::eq(found.as_static(), handle.as_static()), "get returns the same pointer");
        let again = lib(|| interner.intern(value.borrow())).expect("interning a present value charges nothing");
        assert!(ptr::eq(again.as_static(), handle.as_static()), "interning again returns the same pointer");
        assert_eq!(&*found, value.borrow());
        ranges.push(range_of(*handle));
    }
    assert_eq!(CALLS.load(SeqCst), calls, "look-ups and hits never reach the allocator");
    let count = ranges.len();
    assert_eq!(interner.len(), count, "the interner holds exactly the values interned");
    (ranges, count)
}

/// Interns distinct values into an interner in a budget of `limit` bytes on `threads` threads until each is refused
/// [`FULL_STREAK`] times in a row; checks the cap, that refusals change nothing, and that every handle resolves.
fn interner_case<T, V>(threads: usize, limit: usize, make: impl Fn(&mut Rng, u64, usize) -> V + Sync) -> String
where
    T: ?Sized + Internable + PartialEq + Debug + Sync,
    V: Borrow<T> + Send,
{
    warm_up_process_state();
    start_case(limit);
    let budget = leaked(LeakBudget::named("interner", limit));
    let interner: &Interner<T> = leaked(Interner::in_budget(budget));
    let runs: Vec<Interning<T, V>> = if threads == 1 {
        vec![intern_until_full(interner, budget, 1, true, |rng, n| make(rng, 0, n))]
    } else {
        on_threads(threads, |t| intern_until_full(interner, budget, 10 + t, false, |rng, n| make(rng, t, n)))
    };
    let (mut ranges, mut count) = assert_handles_resolve(interner, &runs);
    // With the threads done, each one's last refused value is asked for again: if still refused, nothing changes. On
    // one thread nothing happened since, so it must be. (On several, another thread's split may have made room for it
    // since: then it is interned like any other value.)
    for value in runs.iter().filter_map(|run| run.refused.as_ref()) {
        let before = (interner.len(), budget.reserved(), CALLS.load(SeqCst));
        match lib(|| interner.intern(value.borrow())) {
            Err(error) => {
                assert!(matches!(error, LeakError::BudgetExceeded { .. }), "{error}");
                let after = (interner.len(), budget.reserved(), CALLS.load(SeqCst));
                assert_eq!(after, before, "a refusal changes nothing");
            }
            Ok(handle) => {
                assert!(threads > 1, "on one thread, the value refused last is refused again");
                assert_eq!(&*handle, value.borrow());
                count += 1;
                assert_eq!(interner.len(), count);
                ranges.push(range_of(handle));
            }
        }
    }
    assert_disjoint_and_counted(ranges);
    let summary = assert_cap_held(budget);
    let (requests, refusals) = runs.iter().fold((0, 0), |(r, f), run| (r + run.requests, f + run.refusals));
    format!("{threads} thread(s): {summary}; {requests} requests, {count} interned, {refusals} refusals")
}

/// A distinct string for request `n` of thread `thread`: a unique prefix, then letters, of random length (mostly
/// short, sometimes a few KiB).
fn distinct_string(rng: &mut Rng, thread: u64, n: usize) -> String {
    let len = if rng.below(32) == 0 { rng.below(scaled(6_000, 600)) } else { rng.below(40) };
    let seed = rng.next_u64();
    let mut text = format!("{thread}.{n}:");
    text.extend((0..len).map(|i| char::from(expected(seed, true, i))));
    text
}

fn interner_until_full() -> String {
    let one = interner_case::<str, String>(1, scaled(2 << 20, 16 << 10), distinct_string);
    let several = interner_case::<str, String>(scaled(4, 3), scaled(4 << 20, 24 << 10), distinct_string);
    format!("{one}; {several}")
}

/// A distinct `u64` for request `n` of thread `thread` (an odd multiplier is a bijection of `u64`).
fn distinct_u64(_: &mut Rng, thread: u64, n: usize) -> u64 {
    ((thread << 40) | n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A distinct `[u8; 24]` for request `n` of thread `thread`.
fn distinct_array(rng: &mut Rng, thread: u64, n: usize) -> [u8; 24] {
    let mut value: [u8; 24] = core::array::from_fn(|_| rng.next_u64() as u8);
    value[..8].copy_from_slice(&distinct_u64(rng, thread, n).to_le_bytes());
    value
}

fn sized_interner_until_full() -> String {
    let words = interner_case::<u64, u64>(1, scaled(1 << 20, 16 << 10), distinct_u64);
    let arrays = interner_case::<[u8; 24], [u8; 24]>(scaled(4, 3), scaled(2 << 20, 24 << 10), distinct_array);
    format!("Interner<u64>, {words}; Interner<[u8; 24]>, {arrays}")
}

/// The value cached for `key` in a cache of `[u8; N]`.
fn cache_value<const N: usize>(key: u64) -> [u8; N] {
    core::array::from_fn(|i| pattern(key, i))
}

/// One look-up of a fresh `key` in a cache of `[u8; N]`: the value must be right, cached or not. Returns the cached
/// value's key and address, if it was cached.
fn cache_miss<const N: usize>(cache: &StaticCache<u64, [u8; N]>, key: u64) -> Option<(u64, &'static [u8; N])> {
    let result = lib(|| cache.get_or_insert_with(key, |&key| cache_value::<N>(key)));
    assert!(*result == cache_value::<N>(key), "the value for key {key} is right, cached or not");
    result.as_static().map(|value| (key, value))
}

/// Checks, with no other thread using the cache, that every value cached is still found at the same address, without
/// an allocator call; and that new keys, now that the cache is full, get their right value uncached without an
/// allocator call or a change in `reserved`. Returns the cached values' ranges.
fn assert_cache_settled<const N: usize>(
    cache: &StaticCache<u64, [u8; N]>,
    budget: &LeakBudget,
    cached: &[(u64, &'static [u8; N])],
    fresh: impl Iterator<Item = u64>,
) -> Vec<(usize, usize)> {
    assert!(cache.is_full(), "the loop ends only once every cache is full");
    assert_eq!(cache.len(), cached.len(), "the cache holds exactly the values it handed out as cached");
    let (calls, reserved) = (CALLS.load(SeqCst), budget.reserved());
    for &(key, value) in cached {
        let hit = lib(|| cache.get_or_insert_with(key, |_| panic!("key {key} is cached")));
        assert!(hit.as_static().is_some_and(|hit| ptr::eq(hit, value)), "a hit returns the cached value");
        assert!(lib(|| cache.get(&key)).is_some_and(|got| ptr::eq(got, value)));
        assert!(*value == cache_value::<N>(key), "a cached value is never overwritten");
    }
    for key in fresh {
        assert!(cache_miss(cache, key).is_none(), "a full cache caches nothing more");
    }
    assert_eq!((CALLS.load(SeqCst), budget.reserved()), (calls, reserved), "a full cache asks nothing more");
    cached.iter().map(|(_, value)| (value.as_ptr().addr(), N)).collect()
}

/// What one thread cached, per cache.
type CacheRun = (Vec<(u64, &'static [u8; 24])>, Vec<(u64, &'static [u8; 600])>, Vec<(u64, &'static [u8; 3000])>);

/// Three caches of values of 24, 600 and 3000 bytes (the last too large to share chunks) in one budget, missing
/// fresh keys on `threads` threads until each cache is full (has been refused once).
fn cache_case(threads: usize, limit: usize) -> String {
    warm_up_process_state();
    start_case(limit);
    let budget = leaked(LeakBudget::named("cache", limit));
    let small = leaked(StaticCache::<u64, [u8; 24]>::in_budget(budget));
    let medium = leaked(StaticCache::<u64, [u8; 600]>::in_budget(budget));
    let large = leaked(StaticCache::<u64, [u8; 3000]>::in_budget(budget));
    let work = |thread: u64| {
        let mut rng = Rng::new(20 + thread);
        let mut run: CacheRun = Default::default();
        let mut misses = 0;
        while !(small.is_full() && medium.is_full() && large.is_full()) {
            misses += 1;
            assert!(misses < 50_000_000, "a finite budget must fill up");
            let key = distinct_u64(&mut rng, thread, misses);
            match rng.below(10) {
                0..6 => run.0.extend(cache_miss(small, key)),
                6..9 => run.1.extend(cache_miss(medium, key)),
                _ => run.2.extend(cache_miss(large, key)),
            }
        }
        (run, misses)
    };
    let runs: Vec<(CacheRun, usize)> = if threads == 1 { vec![work(0)] } else { on_threads(threads, work) };
    let fresh = |cache: u64| (0..scaled(100, 4)).map(move |n| distinct_u64(&mut Rng::new(0), 1000 + cache, n));
    let collect = |pick: fn(&CacheRun) -> usize| runs.iter().map(|(run, _)| pick(run)).sum::<usize>();
    let mut ranges = Vec::new();
    let all_small: Vec<_> = runs.iter().flat_map(|(run, _)| run.0.iter().copied()).collect();
    let all_medium: Vec<_> = runs.iter().flat_map(|(run, _)| run.1.iter().copied()).collect();
    let all_large: Vec<_> = runs.iter().flat_map(|(run, _)| run.2.iter().copied()).collect();
    ranges.extend(assert_cache_settled(small, budget, &all_small, fresh(0)));
    ranges.extend(assert_cache_settled(medium, budget, &all_medium, fresh(1)));
    ranges.extend(assert_cache_settled(large, budget, &all_large, fresh(2)));
    assert_disjoint_and_counted(ranges);
    let summary = assert_cap_held(budget);
    let misses: usize = runs.iter().map(|(_, misses)| misses).sum();
    let degraded = small.stats().degraded + medium.stats().degraded + large.stats().degraded;
    format!(
        "{threads} thread(s): {summary}; {misses} misses, cached {}+{}+{} (24/600/3000 B), {degraded} degraded",
        collect(|run| run.0.len()),
        collect(|run| run.1.len()),
        collect(|run| run.2.len()),
    )
}

fn cache_until_full() -> String {
    let one = cache_case(1, scaled(2 << 20, 40 << 10));
    let several = cache_case(scaled(4, 3), scaled(4 << 20, 56 << 10));
    format!("{one}; {several}")
}

/// One budget of the tree case: its level and its parent's, the budget, and an interner charging it.
struct Node {
    level: usize,
    parent: usize,
    budget: &'static LeakBudget,
    interner: &'static Interner<str>,
}

/// What one tree worker saw: what it leaked and interned, its requests and its refusals.
#[derive(Default)]
struct TreeRun {
    leaked: Vec<Leaked>,
    interned: Vec<(Interned<str>, String)>,
    requests: usize,
    refusals: usize,
}

/// Leaks random requests and interns distinct strings (half each) into `node` until [`FULL_STREAK`] refusals in a
/// row. Every refusal must name `node`'s budget or an ancestor its charges reach (`charged`): a prepaid budget's
/// charges stop at it.
fn tree_worker(node: &Node, charged: &[&str], seed: u64) -> TreeRun {
    charging(node.level);
    let mut rng = Rng::new(seed);
    let mut run = TreeRun::default();
    let mut streak = 0;
    while streak < FULL_STREAK {
        assert!(run.requests < 50_000_000, "a finite budget must fill up");
        run.requests += 1;
        let refused = if rng.below(2) == 0 {
            let (layout, result) = random_request(node.budget, &mut rng);
            match result {
                Ok(leaked) => {
                    assert_eq!(leaked.bytes.as_ptr().addr() % layout.align(), 0, "{layout:?} misaligned");
                    if !leaked.bytes.is_empty() {
                        run.leaked.push(leaked);
                    }
                    None
                }
                Err(error) => Some(error),
            }
        } else {
            let text = distinct_string(&mut rng, node.level as u64, run.requests);
            match lib(|| node.interner.intern(&text)) {
                Ok(handle) => {
                    assert_eq!(&*handle, text);
                    run.interned.push((handle, text));
                    None
                }
                Err(error) => Some(error),
            }
        };
        match refused {
            None => streak = 0,
            Some(LeakError::BudgetExceeded { budget, .. }) => {
                assert!(charged.contains(&budget), "{} was refused by {budget}, not on its charge path", charged[0]);
                streak += 1;
                run.refusals += 1;
            }
            Some(other) => panic!("unexpected error: {other}"),
        }
    }
    run
}

/// A root with plain and prepaid children made both ways (`child_of`/`prepaid_child_of` and `child`/`prepaid_child`),
/// a grandchild below a plain child and one below a prepaid child, all leaking and interning at once until full. At
/// every allocation, the bytes each subtree holds stay within its root's limit; at the end each budget's `reserved`
/// is exactly its own bytes plus its children's shares (a plain child's `reserved`, a prepaid child's `limit`).
fn trees_never_exceed_any_level() -> String {
    warm_up_process_state();
    let limit = scaled(4 << 20, 64 << 10);
    start_case(limit);
    // Levels: 0 root; 1 `a` (plain, a ceiling above the root's limit); 2 `b` (prepaid); 3 `c` (plain, made by
    // `child`); 4 `d` (prepaid, made by `prepaid_child`); 5 `g` below `a`; 6 `h` below prepaid `b`.
    let shapes: [(&str, usize, usize, bool); 7] = [
        ("root", NO_PARENT, limit, false),
        ("a", 0, 2 * limit, false),
        ("b", 0, limit / 4, true),
        ("c", 0, limit / 3, false),
        ("d", 0, limit / 8, true),
        ("g", 1, limit / 4, false),
        ("h", 2, limit / 8, false),
    ];
    for (level, &(_, parent, limit, _)) in shapes.iter().enumerate() {
        add_level(level, parent, limit);
    }
    let root = leaked(LeakBudget::named("root", limit));
    let a = leaked(LeakBudget::child_of(root, "a", shapes[1].2));
    let b = leaked(LeakBudget::prepaid_child_of(root, "b", shapes[2].2));
    // Records first, each charged at its own level (a record is its budget's own bytes).
    lib_at(0, || root.register()).expect("the root's record fits");
    lib_at(1, || a.register()).expect("a's record fits");
    lib_at(2, || b.register()).expect("b's limit fits in the root");
    // A child made at run time has its handle leaked into its parent; a prepaid one into its own bytes.
    let c = lib_at(0, || root.child("c", shapes[3].2)).expect("c's handle fits");
    let d = lib_at(4, || root.prepaid_child("d", shapes[4].2)).expect("d's limit fits in the root");
    let g = lib_at(1, || a.child("g", shapes[5].2)).expect("g's handle fits");
    let h = lib_at(2, || b.child("h", shapes[6].2)).expect("h's handle fits");
    let budgets = [root, a, b, c, d, g, h];
    for (budget, &(name, _, limit, prepaid)) in budgets.iter().zip(&shapes) {
        assert_eq!((budget.name(), budget.limit(), budget.is_prepaid()), (name, limit, prepaid));
    }
    let nodes: Vec<Node> = budgets
        .iter()
        .zip(&shapes)
        .enumerate()
        .map(|(level, (&budget, &(_, parent, _, _)))| Node {
            level,
            parent,
            budget,
            interner: leaked(Interner::in_budget(budget)),
        })
        .collect();
    // The budgets each level's charges reach: itself, then up to and including the first prepaid level.
    let charged: Vec<Vec<&str>> = (0..nodes.len())
        .map(|level| {
            let mut path = vec![shapes[level].0];
            let mut at = level;
            while !shapes[at].3 && shapes[at].1 != NO_PARENT {
                at = shapes[at].1;
                path.push(shapes[at].0);
            }
            path
        })
        .collect();
    let barrier = Barrier::new(nodes.len());
    let runs: Vec<TreeRun> = thread::scope(|scope| {
        let workers: Vec<_> = nodes
            .iter()
            .zip(&charged)
            .map(|(node, charged)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    tree_worker(node, charged, 40 + node.level as u64)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| resume_unwind(panic))).collect()
    });

    // Every value handed out is intact, disjoint from the others and inside counted memory; handles resolve.
    let calls = CALLS.load(SeqCst);
    let mut ranges = Vec::new();
    for (node, run) in nodes.iter().zip(&runs) {
        assert!(run.leaked.iter().all(|l| intact(l.bytes, l.seed, l.ascii)), "leaked contents were overwritten");
        ranges.extend(run.leaked.iter().map(|l| (l.bytes.as_ptr().addr(), l.bytes.len())));
        for (handle, text) in &run.interned {
            assert!(node.interner.get(text).is_some_and(|found| found == *handle) && **handle == **text);
            ranges.push(range_of(*handle));
        }
        assert_eq!(node.interner.len(), run.interned.len());
    }
    assert_eq!(CALLS.load(SeqCst), calls);
    assert_disjoint_and_counted(ranges);

    // Each level: within its limit, and its reserved is exactly its own bytes plus its children's shares.
    assert_eq!(TABLE_FULL.load(SeqCst), 0, "the block table overflowed: enlarge SLOTS");
    assert_eq!(OVER_LEVEL_LIMIT.load(SeqCst), 0, "an allocation took some level's bytes above its limit");
    assert_eq!(OVER_LIMIT.load(SeqCst), 0, "an allocation took the bytes held above the root's limit");
    assert_no_counted_block_freed();
    let mut figures = Vec::new();
    for node in &nodes {
        let stats = node.budget.stats();
        assert!(stats.reserved <= stats.limit && stats.peak_reserved <= stats.limit, "{stats}");
        let children: usize = nodes
            .iter()
            .filter(|child| child.parent == node.level)
            .map(|child| if child.budget.is_prepaid() { child.budget.limit() } else { child.budget.reserved() })
            .sum();
        let own = OWN[node.level].load(SeqCst);
        assert_eq!(
            stats.reserved,
            own + children,
            "{}: reserved must be its own bytes ({own}) plus its children's shares ({children})\n{stats}",
            stats.name
        );
        assert!(SUBTREE[node.level].load(SeqCst) <= stats.limit);
        figures.push(format!("{} {}/{}", stats.name, stats.reserved, stats.limit));
    }
    let held = HELD.load(SeqCst);
    let prepaid_unused: usize = nodes
        .iter()
        .filter(|node| node.parent == 0 && node.budget.is_prepaid())
        .map(|node| node.budget.limit() - SUBTREE[node.level].load(SeqCst))
        .sum();
    assert_eq!(root.reserved(), held + prepaid_unused, "the root reserves what is held plus prepaid bytes not used");
    let (requests, refusals) = runs.iter().fold((0, 0), |(r, f), run| (r + run.requests, f + run.refusals));
    format!(
        "root limit {limit}, max held {} ({:.2}%), held {held} + {prepaid_unused} prepaid unused = root reserved; \
         reserved/limit: {}; {} threads, {requests} requests, {refusals} refusals, {} allocator calls",
        MAX_HELD.load(SeqCst),
        100.0 * MAX_HELD.load(SeqCst) as f64 / limit as f64,
        figures.join(", "),
        nodes.len(),
        CALLS.load(SeqCst)
    )
}

/// What one thread got from one cell: the value's address, or a refusal (with the value handed back).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CellOutcome {
    Stored(usize),
    Refused,
}

/// One thread's call to a cell of `[u8; N]`: its initialiser makes the value for `seeds[mine]`; each racing thread
/// has its own seed, and the value stored must be one of theirs.
fn race_cell<const N: usize>(cell: &LeakOnce<[u8; N]>, seeds: &[u64], mine: usize, runs: &AtomicUsize) -> CellOutcome {
    let seed = seeds[mine];
    let result = lib(|| {
        cell.get_or_init(|| {
            runs.fetch_add(1, SeqCst);
            cache_value::<N>(seed)
        })
    });
    match result {
        Ok(value) => {
            let made = |&seed: &u64| *value == cache_value::<N>(seed);
            assert!(seeds.iter().any(made), "the cell holds the value one of the initialisers made");
            CellOutcome::Stored(value.as_ptr().addr())
        }
        Err(refused) => {
            assert!(matches!(refused.error(), LeakError::BudgetExceeded { .. }), "{}", refused.error());
            assert!(refused.into_inner() == cache_value::<N>(seed), "a refused value comes back intact");
            CellOutcome::Refused
        }
    }
}

/// The published value's address of a cell, if any.
fn cell_address<const N: usize>(cell: &LeakOnce<[u8; N]>) -> Option<usize> {
    cell.get().map(|value| value.as_ptr().addr())
}

/// Several cells of different sizes in one small budget (some cannot all fit, one never fits), each raced by every
/// thread at once: a published value is charged once, every thread gets the same one, and a refused cell stays empty
/// and hands each caller its value back.
fn leak_once_is_charged_once() -> String {
    // Smaller under Miri, where building and comparing each byte of a value is slow; the last never fits.
    const SIZES: [usize; 6] =
        if cfg!(miri) { [8, 64, 300, 1000, 2500, 6000] } else { [8, 128, 700, 2500, 6000, 20_000] };
    warm_up_process_state();
    let threads = scaled(4, 3);
    let limit = scaled(8 << 10, 4 << 10);
    let (mut published, mut refused_calls, mut initialiser_runs) = (0, 0, 0);
    let rounds = scaled(20, 2);
    for round in 0..rounds {
        start_case(limit);
        let budget = leaked(LeakBudget::named("once", limit));
        let cells = (
            LeakOnce::<[u8; SIZES[0]]>::in_budget(budget),
            LeakOnce::<[u8; SIZES[1]]>::in_budget(budget),
            LeakOnce::<[u8; SIZES[2]]>::in_budget(budget),
            LeakOnce::<[u8; SIZES[3]]>::in_budget(budget),
            LeakOnce::<[u8; SIZES[4]]>::in_budget(budget),
            LeakOnce::<[u8; SIZES[5]]>::in_budget(budget),
        );
        let runs: [AtomicUsize; SIZES.len()] = Default::default();
        // Cells in a different order each round, so that which ones fit varies.
        let order: Vec<usize> = (0..SIZES.len()).map(|i| (i + round) % SIZES.len()).collect();
        let barrier = Barrier::new(threads);
        let outcomes: Vec<Vec<CellOutcome>> = thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (barrier, cells, runs, order) = (&barrier, &cells, &runs, &order);
                    scope.spawn(move || {
                        let mut outcomes = vec![CellOutcome::Refused; SIZES.len()];
                        let mut failed = None;
                        for &cell in order {
                            // Every thread calls the same cell at once, each with an initialiser of its own value.
                            let seeds: Vec<u64> = (0..threads).map(|t| (t * 100 + cell) as u64).collect();
                            barrier.wait();
                            // A failed check must not leave the other threads waiting at the barrier: finish first.
                            let outcome = catch_unwind(AssertUnwindSafe(|| match cell {
                                0 => race_cell(&cells.0, &seeds, t, &runs[0]),
                                1 => race_cell(&cells.1, &seeds, t, &runs[1]),
                                2 => race_cell(&cells.2, &seeds, t, &runs[2]),
                                3 => race_cell(&cells.3, &seeds, t, &runs[3]),
                                4 => race_cell(&cells.4, &seeds, t, &runs[4]),
                                _ => race_cell(&cells.5, &seeds, t, &runs[5]),
                            }));
                            match outcome {
                                Ok(outcome) => outcomes[cell] = outcome,
                                Err(panic) => failed = failed.or(Some(panic)),
                            }
                        }
                        if let Some(panic) = failed {
                            resume_unwind(panic);
                        }
                        outcomes
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| resume_unwind(panic))).collect()
        });
        let addresses = [
            cell_address(&cells.0),
            cell_address(&cells.1),
            cell_address(&cells.2),
            cell_address(&cells.3),
            cell_address(&cells.4),
            cell_address(&cells.5),
        ];
        let mut ranges = Vec::new();
        for (cell, address) in addresses.iter().enumerate() {
            let got: Vec<CellOutcome> = outcomes.iter().map(|outcomes| outcomes[cell]).collect();
            match *address {
                Some(address) => {
                    // Every thread that called after the value was published got it; refusals only came before.
                    assert!(got.iter().all(|&o| o == CellOutcome::Stored(address) || o == CellOutcome::Refused));
                    assert!(got.contains(&CellOutcome::Stored(address)));
                    ranges.push((address, SIZES[cell]));
                    published += 1;
                }
                None => assert!(got.iter().all(|&o| o == CellOutcome::Refused), "an empty cell refused every call"),
            }
            refused_calls += got.iter().filter(|&&o| o == CellOutcome::Refused).count();
            initialiser_runs += runs[cell].load(SeqCst);
            assert!(runs[cell].load(SeqCst) <= threads, "each call runs its initialiser at most once");
        }
        assert!(addresses[5].is_none(), "a value larger than the budget is never stored");
        assert!(addresses.iter().any(Option::is_some), "the first value tried fits in the empty budget");
        let stored = addresses.iter().flatten().count();
        assert_eq!(budget.stats().allocations, stored, "each published value is charged once");
        assert_disjoint_and_counted(ranges);
        assert_cap_held(budget);
    }
    format!(
        "limit {limit}, {rounds} rounds of {} cells ({SIZES:?} B) raced by {threads} threads: {published} published, \
         {refused_calls} refused calls, {initialiser_runs} initialiser runs; counted == reserved each round",
        SIZES.len()
    )
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

fn main() -> ExitCode {
    support::run(&[
        // First, while the process is small and the allocator has no freed memory to reuse.
        ("resident_memory_grows_by_at_most_the_limit", resident_memory_grows_by_at_most_the_limit),
        ("resident_memory_with_strict_alignments", resident_memory_with_strict_alignments),
        ("one_thread_until_full", one_thread_until_full),
        ("threads_until_full", threads_until_full),
        ("refusals_of_one_size_never_reach_the_allocator", refusals_of_one_size_never_reach_the_allocator),
        ("interner_until_full", interner_until_full),
        ("sized_interner_until_full", sized_interner_until_full),
        ("cache_until_full", cache_until_full),
        ("trees_never_exceed_any_level", trees_never_exceed_any_level),
        ("leak_once_is_charged_once", leak_once_is_charged_once),
    ])
}
