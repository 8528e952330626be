//! Bounded stress runs with invariant monitors: many threads (constantly spawned and exiting where that matters), every
//! invariant checked continuously while they run, not only at the end. They complement the loom models, whose model
//! of `Relaxed` accesses is not the full C11 model (loom tends to show the newest value of a `Relaxed` store), and the
//! counting-allocator proof of the cap in `tests/cap`.
//!
//! Each test runs for `LEAK_BUDGET_STRESS_SECS` seconds (default 1; CI runs a short form, and
//! `LEAK_BUDGET_STRESS_SECS=60 cargo test --release --test it -- stress::` is the long one), on its own thread under a
//! watchdog, so a deadlock fails the test instead of hanging the suite. Under Miri every run is a few iterations.
//!
//! What they hold, over every operation of the run:
//! - `len()` of an interner and of a cache counts every value any thread can already see;
//! - a budget's `reserved()` never exceeds its `limit()`, and everything handed out is inside what it reserved, while
//!   threads are spawned, leak and exit all the time;
//! - one pointer per interned value, whichever thread interns it first or again;
//! - a cache runs each key's initialiser at most once while it is not full, and every thread gets the same value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{bounded, leaked};
use leak_budget::{Interner, LeakBudget, StaticCache};

/// How long each test runs: `LEAK_BUDGET_STRESS_SECS` seconds (fractions allowed), 1 by default.
fn run_for() -> Duration {
    let seconds = std::env::var("LEAK_BUDGET_STRESS_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(seconds.clamp(0.0, 60.0))
}

/// Whether the run should go on: until the deadline natively, for `miri_rounds` rounds under Miri.
struct Clock {
    deadline: Instant,
    rounds: AtomicUsize,
}

impl Clock {
    fn start() -> Self {
        Self { deadline: Instant::now() + run_for(), rounds: AtomicUsize::new(0) }
    }

    fn going(&self, miri_rounds: usize) -> bool {
        if cfg!(miri) { self.rounds.fetch_add(1, SeqCst) < miri_rounds } else { Instant::now() < self.deadline }
    }
}

/// One writer inserts 0, 1, 2, ... in order with `insert`; the calling thread waits for the next value to become
/// visible (`visible`), then reads `len`, which must count it and every value before it. Returns the violations and
/// the checks made.
fn monitor_len(
    insert: impl Fn(u64) + Send + 'static,
    visible: impl Fn(u64) -> bool,
    len: impl Fn() -> usize,
) -> (usize, usize) {
    let clock = leaked(Clock::start());
    let written = leaked(AtomicUsize::new(0));
    let done = leaked(AtomicBool::new(false));
    let writer = thread::spawn(move || {
        let mut next = 0u64;
        while clock.going(200) && next < 4_000_000 {
            insert(next);
            next += 1;
            written.store(next as usize, SeqCst);
        }
        done.store(true, SeqCst);
    });
    let (mut seen, mut violations, mut checks) = (0u64, 0usize, 0usize);
    while !done.load(SeqCst) || seen < written.load(SeqCst) as u64 {
        if visible(seen) {
            seen += 1;
            checks += 1;
            if len() < seen as usize {
                violations += 1;
            }
        } else {
            std::hint::spin_loop();
        }
    }
    writer.join().unwrap();
    assert_eq!(len(), written.load(SeqCst));
    (violations, checks)
}

#[test]
fn an_interners_len_counts_every_value_a_thread_can_see() {
    let (violations, checks) = bounded(|| {
        let budget: &'static LeakBudget = leaked(LeakBudget::new(256 << 20));
        let values: &'static Interner<u64> = leaked(Interner::in_budget(budget));
        let insert = move |n| assert_eq!(*values.intern(&n).unwrap(), n);
        monitor_len(insert, |n| values.get(&n).is_some(), || values.len())
    })
    .unwrap();
    assert_eq!(violations, 0, "len() missed a value another thread could see, {violations} times in {checks} checks");
}

#[test]
fn a_caches_len_counts_every_value_a_thread_can_see() {
    let (violations, checks) = bounded(|| {
        let budget: &'static LeakBudget = leaked(LeakBudget::new(256 << 20));
        let cache: &'static StaticCache<u64, u64> = leaked(StaticCache::in_budget(budget));
        let insert = move |n| assert!(cache.get_or_insert_with(&n, |&k| k * 3).is_static());
        monitor_len(insert, |n| cache.get(&n).is_some(), || cache.len())
    })
    .unwrap();
    assert_eq!(violations, 0, "len() missed a value another thread could see, {violations} times in {checks} checks");
}

#[test]
fn the_cap_holds_while_threads_come_and_go() {
    const LIMIT: usize = 4 << 20;
    let summary = bounded(|| {
        let clock = leaked(Clock::start());
        let mut rounds = 0usize;
        let mut peak = 0usize;
        let mut refusals = 0usize;
        // Each round: a fresh budget, threads that each leak a few values and exit, while a monitor reads the figures.
        while clock.going(2) {
            rounds += 1;
            let budget: &'static LeakBudget = leaked(LeakBudget::new(LIMIT));
            let stop = Arc::new(AtomicBool::new(false));
            let monitor = {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let mut peak = 0;
                    while !stop.load(SeqCst) {
                        let reserved = budget.reserved();
                        assert!(reserved <= LIMIT, "reserved {reserved} > limit {LIMIT}");
                        peak = peak.max(reserved);
                    }
                    peak
                })
            };
            let handed_out = Arc::new(AtomicUsize::new(0));
            let refused = Arc::new(AtomicUsize::new(0));
            let waves = if cfg!(miri) { 2 } else { 24 };
            for wave in 0..waves {
                let workers: Vec<_> = (0..6)
                    .map(|index| {
                        let (handed_out, refused) = (Arc::clone(&handed_out), Arc::clone(&refused));
                        thread::spawn(move || {
                            for step in 0..if cfg!(miri) { 4 } else { 400 } {
                                let len = 1 + (wave * 131 + index * 17 + step * 7) % 2048;
                                match budget.leak_str(&"x".repeat(len)) {
                                    Ok(s) => {
                                        assert_eq!(s.len(), len);
                                        handed_out.fetch_add(len, SeqCst);
                                    }
                                    Err(_) => {
                                        refused.fetch_add(1, SeqCst);
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    worker.join().unwrap();
                }
            }
            stop.store(true, SeqCst);
            peak = peak.max(monitor.join().unwrap());
            refusals += refused.load(SeqCst);
            let stats = budget.stats();
            assert!(stats.reserved <= LIMIT);
            assert!(handed_out.load(SeqCst) <= stats.reserved, "handed out more than reserved");
        }
        (rounds, peak, refusals)
    })
    .unwrap();
    assert!(summary.0 >= 1 && summary.1 <= LIMIT);
}

#[test]
fn threads_interning_overlapping_values_get_one_pointer_per_value() {
    bounded(|| {
        let clock = leaked(Clock::start());
        while clock.going(1) {
            let budget: &'static LeakBudget = leaked(LeakBudget::new(64 << 20));
            let words: &'static Interner<str> = leaked(Interner::in_budget(budget));
            let threads = 4;
            let per_thread = if cfg!(miri) { 40 } else { 20_000 };
            let start = Arc::new(Barrier::new(threads));
            let workers: Vec<_> = (0..threads)
                .map(|index| {
                    let start = Arc::clone(&start);
                    thread::spawn(move || {
                        start.wait();
                        let mut mine = HashMap::new();
                        // Overlapping ranges, each thread in its own order.
                        for step in 0..per_thread {
                            let n = (step * 7 + index * 5_003) % (per_thread * 2);
                            let handle = words.intern(&format!("w{n}")).unwrap();
                            let address = handle.as_static().as_ptr() as usize;
                            assert_eq!(*mine.entry(n).or_insert(address), address);
                        }
                        mine
                    })
                })
                .collect();
            let mut all: HashMap<usize, usize> = HashMap::new();
            for worker in workers {
                for (n, address) in worker.join().unwrap() {
                    assert_eq!(*all.entry(n).or_insert(address), address, "two pointers for one value");
                }
            }
            assert_eq!(words.len(), all.len());
        }
    })
    .unwrap();
}

#[test]
fn a_cache_runs_each_initialiser_once_and_hands_every_thread_the_same_value() {
    bounded(|| {
        let clock = leaked(Clock::start());
        while clock.going(1) {
            let budget: &'static LeakBudget = leaked(LeakBudget::new(64 << 20));
            let cache: &'static StaticCache<u32, (u32, usize)> = leaked(StaticCache::in_budget(budget));
            let keys = if cfg!(miri) { 8 } else { 4_096 };
            let runs: &'static Vec<AtomicUsize> = leaked((0..keys).map(|_| AtomicUsize::new(0)).collect());
            let threads = 4;
            let start = Arc::new(Barrier::new(threads));
            let workers: Vec<_> = (0..threads)
                .map(|index| {
                    let start = Arc::clone(&start);
                    thread::spawn(move || {
                        start.wait();
                        let mut mine = Vec::new();
                        for step in 0..keys * 2 {
                            let key = ((step * 13 + index * 97) % keys) as u32;
                            let value = cache.get_or_insert_with(&key, |&k| {
                                let run = runs[k as usize].fetch_add(1, SeqCst);
                                (k * 2, run)
                            });
                            assert!(value.is_static());
                            mine.push((key, ptr_of(value.as_static().unwrap())));
                        }
                        mine
                    })
                })
                .collect();
            let mut all: HashMap<u32, usize> = HashMap::new();
            for worker in workers {
                for (key, address) in worker.join().unwrap() {
                    assert_eq!(*all.entry(key).or_insert(address), address, "two values for one key");
                }
            }
            for (key, count) in runs.iter().enumerate() {
                assert!(count.load(SeqCst) <= 1, "key {key}: initialiser ran {} times", count.load(SeqCst));
            }
            assert_eq!(cache.len(), all.len());
        }
    })
    .unwrap();
}

fn ptr_of<T>(value: &T) -> usize {
    std::ptr::from_ref(value) as usize
}
