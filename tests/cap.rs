//! The hard cap, proven at the allocator: a counting `#[global_allocator]` sees every byte the library takes on a
//! budget's behalf, and checks the limit at the instant of every allocation.
//!
//! Attribution: a thread-local flag is set around each library call (arguments are built before it, results checked
//! after it), and only allocations made while it is set are counted as the library's. Each counted block is entered
//! in a fixed, lock-free table so that its later release (if the library ever frees one) is subtracted exactly; a
//! block freed during a library call that the table does not know (the caller's buffer that `leak_vec` frees) is not
//! the library's and is ignored. The counts must then equal the budget's own `reserved` figure exactly, which also
//! proves that the attribution misses nothing.
//!
//! Run alone: `cargo test --test cap` (a global allocator is process-wide, so this binary holds nothing else).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::mem::{MaybeUninit, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::ExitCode;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;

use leak_budget::{LeakBudget, LeakError};

mod support;
use support::{Rng, pattern, scaled};

// ---------------------------------------------------------------------------------------------------------------------
// The counting allocator.

/// Wraps the system allocator and counts what library calls (flagged per thread) take from it.
struct Counting;

thread_local! {
    /// Set while this thread is inside a library call: its allocations are the budget's.
    static ATTRIBUTED: Cell<bool> = const { Cell::new(false) };
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

/// Open-addressing table of counted blocks: address (0 empty, 1 removed) and size.
const SLOTS: usize = if cfg!(miri) { 1 << 12 } else { 1 << 18 };
const EMPTY: usize = 0;
const REMOVED: usize = 1;
static ADDRS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(EMPTY) }; SLOTS];
static SIZES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

fn slot_of(addr: usize) -> usize {
    (addr >> 4).wrapping_mul(0x9E37_79B9) % SLOTS
}

fn attributed() -> bool {
    ATTRIBUTED.try_with(Cell::get).unwrap_or(false)
}

fn record(addr: usize, size: usize) {
    CALLS.fetch_add(1, SeqCst);
    let _ = THREAD_CALLS.try_with(|calls| calls.set(calls.get() + 1));
    let held = HELD.fetch_add(size, SeqCst) + size;
    MAX_HELD.fetch_max(held, SeqCst);
    if held > LIMIT.load(SeqCst) {
        OVER_LIMIT.fetch_add(1, SeqCst);
    }
    let start = slot_of(addr);
    for probe in 0..SLOTS {
        let slot = (start + probe) % SLOTS;
        let current = ADDRS[slot].load(SeqCst);
        if (current == EMPTY || current == REMOVED)
            && ADDRS[slot].compare_exchange(current, addr, SeqCst, SeqCst).is_ok()
        {
            SIZES[slot].store(size, SeqCst);
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
                HELD.fetch_sub(SIZES[slot].load(SeqCst), SeqCst);
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
        if !ptr.is_null() && attributed() {
            record(ptr.addr(), layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() && attributed() {
            record(ptr.addr(), layout.size());
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
            if attributed() {
                record(new.addr(), new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs one library call with its allocations counted as the budget's. Build arguments before, inspect after.
fn lib<R>(call: impl FnOnce() -> R) -> R {
    ATTRIBUTED.with(|flag| flag.set(true));
    let result = call();
    ATTRIBUTED.with(|flag| flag.set(false));
    result
}

/// Counted allocator calls made on this thread so far.
fn thread_calls() -> usize {
    THREAD_CALLS.with(Cell::get)
}

/// Starts a case: the budget under test has `limit`; nothing is counted yet. Call with no other thread allocating.
fn start_case(limit: usize) {
    LIMIT.store(limit, SeqCst);
    for (addr, size) in ADDRS.iter().zip(&SIZES) {
        addr.store(EMPTY, SeqCst);
        size.store(0, SeqCst);
    }
    for counter in [&HELD, &MAX_HELD, &CALLS, &OVER_LIMIT, &TABLE_FULL] {
        counter.store(0, SeqCst);
    }
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

/// The allocator-side figures of a case, checked against the budget's own.
fn assert_cap_held(budget: &LeakBudget) -> String {
    let stats = budget.stats();
    let (held, max_held) = (HELD.load(SeqCst), MAX_HELD.load(SeqCst));
    assert_eq!(TABLE_FULL.load(SeqCst), 0, "the block table overflowed: enlarge SLOTS");
    assert_eq!(
        OVER_LIMIT.load(SeqCst),
        0,
        "an allocation took the bytes held above the limit ({max_held} > {})",
        stats.limit
    );
    assert!(max_held <= stats.limit, "held {max_held} > limit {}", stats.limit);
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
    let mut ranges: Vec<(usize, usize)> = leaked.iter().map(|l| (l.bytes.as_ptr().addr(), l.bytes.len())).collect();
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

fn main() -> ExitCode {
    support::run(&[
        // First, while the process is small and the allocator has no freed memory to reuse.
        ("resident_memory_grows_by_at_most_the_limit", resident_memory_grows_by_at_most_the_limit),
        ("resident_memory_with_strict_alignments", resident_memory_with_strict_alignments),
        ("one_thread_until_full", one_thread_until_full),
        ("threads_until_full", threads_until_full),
        ("refusals_of_one_size_never_reach_the_allocator", refusals_of_one_size_never_reach_the_allocator),
    ])
}
