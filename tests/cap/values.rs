//! Mixed requests (typed values of several sizes and alignments, strings, slices, vectors, raw layouts) leaked into one
//! budget until it is full, on one thread and on several; and refusals, which must never reach the allocator again.

use std::alloc::Layout;
use std::mem::{MaybeUninit, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Barrier;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;

use leak_budget::{LeakBudget, LeakError};

use crate::support::{Rng, pattern, scaled};
use crate::{CALLS, assert_cap_held, assert_disjoint_and_counted, lib, start_case, thread_calls, watch};

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Align64([u8; 64]);

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Align4096([u8; 4096]);

/// A successful request: the bytes it got, which must read `expected(seed, ascii, ..)` at the end.
pub(crate) struct Leaked {
    pub(crate) bytes: &'static [u8],
    pub(crate) seed: u64,
    pub(crate) ascii: bool,
}

/// The byte at `index` of what a request for `seed` wrote: the pattern, or a lowercase letter for strings.
pub(crate) fn expected(seed: u64, ascii: bool, index: usize) -> u8 {
    if ascii { b'a' + pattern(seed, index) % 26 } else { pattern(seed, index) }
}

/// Whether `bytes` read what a request for `seed` wrote.
pub(crate) fn intact(bytes: &[u8], seed: u64, ascii: bool) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| b == expected(seed, ascii, i))
}

/// Leaks a plain-bytes value (no padding, every bit pattern valid) built from `seed`.
pub(crate) fn leak_typed<T: Copy + 'static>(budget: &LeakBudget, seed: u64) -> Result<Leaked, LeakError> {
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
pub(crate) fn random_request(budget: &LeakBudget, rng: &mut Rng) -> (Layout, Result<Leaked, LeakError>) {
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

/// What one thread saw while leaking until the budget was full.
#[derive(Default)]
pub(crate) struct Run {
    /// Every successful non-empty request.
    leaked: Vec<Leaked>,
    /// Layouts this thread was refused, each once.
    pub(crate) refused: Vec<Layout>,
    /// Requests made, refusals among them, and requests repeating a refused layout.
    requests: usize,
    refusals: usize,
    repeats: usize,
}

/// Leaks random requests (a quarter of them single bytes) until a 1-byte request is refused: the budget is then full
/// to within the smallest block. Checks, for every request, that once this thread has been refused a layout, no later
/// request of that layout reaches the allocator. With `keep` false, checks contents at once and keeps nothing.
pub(crate) fn leak_until_full(budget: &LeakBudget, seed: u64, keep: bool) -> Run {
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
pub(crate) fn repeat_refused(budget: &LeakBudget, refused: &[Layout], times: usize) {
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

pub(crate) fn one_thread_until_full() -> String {
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

pub(crate) fn threads_until_full() -> String {
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
pub(crate) fn refusals_of_one_size_never_reach_the_allocator() -> String {
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
