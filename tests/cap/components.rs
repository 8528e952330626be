//! Interners, caches and once-cells filled until their budget refuses them: their tables and bookkeeping are charged
//! too, every handle or cached value stays valid, and a refusal changes nothing.

use std::borrow::Borrow;
use std::fmt::Debug;
use std::mem::size_of_val;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;

use leak_budget::{Internable, Interned, Interner, LeakBudget, LeakError, LeakOnce, StaticCache};

use crate::support::{Rng, leaked, pattern, scaled};
use crate::values::expected;
use crate::{CALLS, assert_cap_held, assert_disjoint_and_counted, lib, on_threads, start_case, warm_up_process_state};

/// Consecutive refusals after which a worker deems its budget full.
pub(crate) const FULL_STREAK: usize = scaled(16, 4);

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
pub(crate) fn range_of<T: ?Sized + Internable>(handle: Interned<T>) -> (usize, usize) {
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
pub(crate) fn distinct_string(rng: &mut Rng, thread: u64, n: usize) -> String {
    let len = if rng.below(32) == 0 { rng.below(scaled(6_000, 600)) } else { rng.below(40) };
    let seed = rng.next_u64();
    let mut text = format!("{thread}.{n}:");
    text.extend((0..len).map(|i| char::from(expected(seed, true, i))));
    text
}

pub(crate) fn interner_until_full() -> String {
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

pub(crate) fn sized_interner_until_full() -> String {
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
    let result = lib(|| cache.get_or_insert_with(&key, |&key| cache_value::<N>(key)));
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
        let hit = lib(|| cache.get_or_insert_with(&key, |_| panic!("key {key} is cached")));
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

pub(crate) fn cache_until_full() -> String {
    let one = cache_case(1, scaled(2 << 20, 40 << 10));
    let several = cache_case(scaled(4, 3), scaled(4 << 20, 56 << 10));
    format!("{one}; {several}")
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
pub(crate) fn leak_once_is_charged_once() -> String {
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
