//! `StaticCache<K, V>`: hits and misses, the cap, degrading once the budget is exhausted, per-key at-most-once under
//! contention, independent keys, panicking and failing initialisers, recursion, and misbehaving `Eq`.
//!
//! Tests that involve blocking never measure time. A thread that should finish is joined through [`join_or_fail`],
//! which turns a deadlock into a failure after a generous bound instead of hanging the run.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Barrier, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::{budget, leaked, scaled, without_rejections};

use leak_budget::{CacheStats, Cached, LeakBudget, LeakError, StaticCache};

/// How long a thread that should finish may take before the test calls it a deadlock. Not a measure of speed.
const DEADLOCK_BOUND: Duration = Duration::from_secs(120);

fn cache<K: Sync + 'static, V: Sync + 'static>(budget: &'static LeakBudget) -> &'static StaticCache<K, V> {
    leaked(StaticCache::in_budget(budget))
}

/// Polls `done` until it holds, failing (rather than spinning forever) if it never does.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLOCK_BOUND;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: still not the case; deadlock?");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Joins `handle`, failing if the thread never finishes (a deadlock) instead of hanging the test run.
fn join_or_fail<T>(handle: JoinHandle<T>, what: &str) -> thread::Result<T> {
    wait_until(what, || handle.is_finished());
    handle.join()
}

fn counts(stats: CacheStats) -> (usize, usize, usize, usize) {
    (stats.hits, stats.misses, stats.degraded, stats.waits)
}

#[test]
fn a_hit_returns_the_same_static_reference_without_running_the_initialiser() {
    let budget = budget(1 << 20);
    let squares = cache::<u64, u64>(budget);
    assert_eq!(budget.reserved(), 0, "nothing is allocated before the first miss");
    let first = squares.get_or_insert_with(&12, |&n| n * n);
    assert_eq!(*first, 144);
    let first: &'static u64 = first.as_static().expect("cached");
    let again = squares.get_or_insert_with(&12, |_| panic!("not run on a hit"));
    assert!(core::ptr::eq(first, again.as_static().unwrap()));
    assert!(core::ptr::eq(first, squares.try_get_or_insert_with(&12, |_| unreachable!()).unwrap()));
    assert!(core::ptr::eq(
        first,
        squares.get_or_try_insert_with(&12, |_| Err::<u64, ()>(())).unwrap().as_static().unwrap()
    ));
    assert_eq!(squares.get(&12), Some(first));
    assert_eq!(squares.get(&13), None);
    assert_eq!((squares.len(), squares.is_empty(), squares.is_full()), (1, false, false));
    assert_eq!(counts(squares.stats()), (3, 1, 0, 0), "get is not counted");
    // Values live on after the cache is gone from reach: they are `'static` and never dropped.
    let handle = thread::spawn(move || *first + 1);
    assert_eq!(handle.join().unwrap(), 145);
}

#[test]
fn many_keys_survive_table_growth_and_look_up_by_borrowed_form() {
    let count = scaled(20_000, 300);
    let names = cache::<String, usize>(budget(64 << 20));
    for i in 0..count {
        let key = format!("key-{i}");
        assert_eq!(*names.get_or_insert_with(&key, |k| k.len() * 1000 + i), format!("key-{i}").len() * 1000 + i);
    }
    assert_eq!(names.len(), count);
    for i in 0..count {
        let key = format!("key-{i}");
        let expected = key.len() * 1000 + i;
        assert_eq!(names.get(key.as_str()), Some(&expected), "get by &str");
        assert_eq!(*names.get_or_insert_with(&key, |_| unreachable!()), expected);
    }
    assert_eq!(counts(names.stats()), (count, count, 0, 0));
}

#[test]
fn get_never_allocates_or_counts() {
    let budget = budget(1 << 20);
    let values = cache::<u32, u32>(budget);
    assert_eq!(values.get(&1), None);
    assert_eq!(budget.reserved(), 0, "a look-up on an unused cache allocates nothing");
    values.get_or_insert_with(&1, |&k| k);
    let (before, stats) = (budget.stats(), values.stats());
    for _ in 0..100 {
        assert_eq!(values.get(&1), Some(&1));
        assert_eq!(values.get(&2), None);
    }
    assert_eq!((budget.stats(), values.stats()), (before, stats));
}

/// Fills a fresh cache with `count` entries and returns what its budget used.
fn used_by<K: Hash + Eq + Clone + Sync + 'static, V: Sync + 'static>(
    count: usize,
    key: impl Fn(u64) -> K,
    value: impl Fn(u64) -> V,
) -> usize {
    let budget = budget(256 << 20);
    let cache = cache::<K, V>(budget);
    for i in 0..count as u64 {
        assert!(cache.get_or_insert_with(&key(i), |_| value(i)).is_static());
    }
    budget.used()
}

#[test]
fn keys_values_and_the_table_are_all_charged_to_the_budget() {
    let count = scaled(4000, 100);
    // An entry is the hash, the key and the value; the table holds at least a pointer and a tag per entry. With
    // 256-byte keys (or values) the floor is over ten times what the rest could account for: keys (and values) are
    // charged. (Two caches' tables differ a little, as each has its own hash seed, so their totals are not compared.)
    let floor = |key: usize, value: usize| count * (8 + key + value + 9);
    let ceiling = |key: usize, value: usize| count * (8 + key + value + 64) + (64 << 10);
    let small = used_by(count, |i| i, |i| i);
    let big_keys = used_by(count, |i| [i; 32], |i| i);
    let big_values = used_by(count, |i| i, |i| [i; 32]);
    for (used, key, value) in [(small, 8, 8), (big_keys, 256, 8), (big_values, 8, 256)] {
        assert!(
            used >= floor(key, value),
            "{used} bytes for {count} entries of a {key}-byte key and {value}-byte value"
        );
        assert!(used <= ceiling(key, value), "{used} bytes for {count} entries: not proportionate");
    }
}

fn value_of(key: u64) -> [u64; 8] {
    [key.wrapping_mul(0x9e37_79b9_7f4a_7c15); 8]
}

#[test]
fn an_exhausted_budget_degrades_to_owned_values_never_asks_again_and_hits_keep_working() {
    let limits: &[usize] =
        if cfg!(miri) { &[0, 4 << 10, 12 << 10] } else { &[0, 4 << 10, 12 << 10, 32 << 10, 256 << 10] };
    for &limit in limits {
        let budget = budget(limit);
        let cache = cache::<u64, [u64; 8]>(budget);
        let mut stored = HashMap::new();
        let mut key = 0;
        let refused_key = loop {
            let before = budget.stats();
            match cache.get_or_insert_with(&key, |&k| value_of(k)) {
                Cached::Static(value) => {
                    assert_eq!(*value, value_of(key));
                    stored.insert(key, value);
                }
                Cached::Owned(value) => {
                    assert_eq!(value, value_of(key), "the value is computed all the same");
                    let after = budget.stats();
                    if before.allocations == 0 && after.allocations > 0 {
                        // The documented exception: the cache's first miss sets up its state (and its table's shards),
                        // which stays charged
                        // when the entry is then refused (on 32-bit targets a 4 KiB budget holds the state alone).
                        assert!(after.reserved <= limit && after.used > 0, "{after}");
                    } else {
                        assert_eq!(
                            without_rejections(after),
                            without_rejections(before),
                            "a refusal changes nothing (limit {limit})"
                        );
                    }
                    assert_eq!(after.rejections, before.rejections + 1);
                    break key;
                }
            }
            assert!(budget.reserved() <= budget.limit());
            key += 1;
        };
        assert!(cache.is_full());
        // A zero budget stores nothing; any other stores no more values than its limit has room for (how many
        // depends on the pointer width: the 64-bit state alone fills 4 KiB, the 32-bit one leaves room for 16).
        assert!(limit > 0 || stored.is_empty(), "a zero budget stored {}", stored.len());
        assert!(stored.len() * size_of::<[u64; 8]>() <= limit, "limit {limit}: {} stored", stored.len());
        assert!(limit < 256 << 10 || stored.len() > 1000, "limit {limit}: {} stored", stored.len());
        let frozen = budget.stats();
        // More misses (new keys and the refused one) are computed and handed back without asking the budget.
        for key in refused_key..refused_key + 50 {
            assert_eq!(cache.get_or_insert_with(&key, |&k| value_of(k)), Cached::Owned(value_of(key)));
        }
        assert_eq!(cache.get_or_try_insert_with(&refused_key, |_| Err::<[u64; 8], _>("no")), Err("no"));
        let refused = cache.try_get_or_insert_with(&refused_key, |&k| value_of(k)).unwrap_err();
        assert!(matches!(refused.error(), LeakError::BudgetExceeded { .. }), "{}", refused.error());
        // Nearly all of the budget was put to use before the cache gave up: an insert is refused only once the room
        // left is below its worst case (the entry, a new bucket and a doubled directory, each possibly in a fresh
        // chunk), which is what the refusal asked for. That worst case grows with the table and with how the random
        // hash seed spreads keys (a fixed slack of 2 KiB at 32 KiB failed once: 2.09 KiB left), so it is read from
        // the refusal rather than guessed; it stays a small share of any budget that held more than its state.
        if let LeakError::BudgetExceeded { requested, .. } = *refused.error() {
            assert!(budget.remaining() < requested, "limit {limit}: asked {requested}, {}", budget.stats());
            assert!(limit <= 4 << 10 || requested <= limit / 4, "limit {limit}: asked {requested}");
        }
        assert_eq!(refused.into_inner(), value_of(refused_key));
        assert_eq!(cache.get(&refused_key), None);
        // Values cached before keep being found, at the same addresses.
        for (key, value) in &stored {
            let hit = cache.get_or_insert_with(key, |_| unreachable!("cached"));
            assert!(core::ptr::eq(hit.as_static().unwrap(), *value));
            assert_eq!(cache.get(key), Some(*value));
        }
        assert_eq!(budget.stats(), frozen, "the budget is not asked again (limit {limit})");
        assert_eq!(cache.len(), stored.len());
        let stats = cache.stats();
        assert_eq!(counts(stats), (stored.len(), stored.len() + 53, 52, 0), "limit {limit}");
    }
}

#[test]
fn under_contention_each_initialiser_runs_once_and_every_thread_gets_its_value() {
    let threads = scaled(8, 3);
    let keys = scaled(300, 4);
    let cache = cache::<usize, [usize; 4]>(budget(16 << 20));
    let runs: Vec<AtomicUsize> = (0..keys).map(|_| AtomicUsize::new(0)).collect();
    let barrier = Barrier::new(threads);
    let seen: Vec<Vec<usize>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (barrier, runs) = (&barrier, &runs);
                scope.spawn(move || {
                    barrier.wait();
                    // Every thread asks for the keys in the same order, so each key is missed by all at once.
                    (0..keys)
                        .map(|key| {
                            let value = cache.get_or_insert_with(&key, |&key| {
                                runs[key].fetch_add(1, Relaxed);
                                // Give the other threads time to arrive while this one computes.
                                for _ in 0..scaled(64, 2) {
                                    thread::yield_now();
                                }
                                [key; 4]
                            });
                            assert_eq!(*value, [key; 4]);
                            core::ptr::from_ref(value.as_static().expect("cached")).addr()
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (key, runs) in runs.iter().enumerate() {
        assert_eq!(runs.load(Relaxed), 1, "key {key}: the initialiser ran once");
    }
    for per_thread in &seen[1..] {
        assert_eq!(per_thread, &seen[0], "every thread got the same reference for each key");
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.degraded), (threads * keys - keys, keys, 0));
    assert!(stats.waits <= threads * keys - keys);
}

#[test]
fn a_slow_initialiser_does_not_hold_up_other_keys() {
    let others = scaled(64, 4) as u32;
    let cache = cache::<u32, u32>(budget(1 << 20));
    let (started, has_started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let slow = thread::spawn(move || {
        *cache.get_or_insert_with(&0, |_| {
            started.send(()).unwrap();
            // Only the completion of every other key (below) releases this one.
            released.recv().unwrap();
            1000
        })
    });
    has_started.recv().unwrap();
    // Key 0 is being computed, and will be until all of these are cached (with 64 keys, some share its stripe).
    let main = thread::spawn(move || {
        for key in 1..=others {
            assert_eq!(*cache.get_or_insert_with(&key, |&k| k * 10), key * 10);
        }
    });
    join_or_fail(main, "the other keys, while key 0 was being computed").expect("other keys completed");
    assert_eq!(cache.stats().waits, 0, "no call waited");
    assert_eq!(cache.len(), others as usize);
    release.send(()).unwrap();
    assert_eq!(join_or_fail(slow, "key 0").unwrap(), 1000);
    assert_eq!(cache.len(), others as usize + 1);
}

/// How the first computation of a key ends in [`first_ends_while_second_waits`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Panics,
    Fails,
}

/// Starts computing `key` on a thread whose initialiser blocks until told to go, then ends as `ending` says; makes a
/// second thread miss the same key and waits until it is waiting; then lets the first go. Returns whether the first
/// call panicked, the second thread's value, and how many times the second thread's initialiser ran.
fn first_ends_while_second_waits(
    cache: &'static StaticCache<u32, String>,
    key: u32,
    ending: Ending,
) -> (bool, Cached<String>, usize) {
    let (started, has_started) = mpsc::channel();
    let (go, told_to_go) = mpsc::channel::<()>();
    let first = thread::spawn(move || {
        catch_unwind(AssertUnwindSafe(|| {
            cache.get_or_try_insert_with(&key, |_| {
                started.send(()).unwrap();
                told_to_go.recv().unwrap();
                match ending {
                    Ending::Panics => panic!("initialiser panicked (on purpose)"),
                    Ending::Fails => Err("initialiser failed"),
                }
            })
        }))
    });
    has_started.recv().unwrap();
    let waits_before = cache.stats().waits;
    let second_runs: &'static AtomicUsize = leaked(AtomicUsize::new(0));
    let second = thread::spawn(move || {
        cache.get_or_insert_with(&key, |k| {
            second_runs.fetch_add(1, Relaxed);
            format!("second try for {k}")
        })
    });
    wait_until("the second thread waits for the first", || cache.stats().waits > waits_before);
    assert_eq!(second_runs.load(Relaxed), 0, "a waiting thread does not compute");
    go.send(()).unwrap();
    let first = join_or_fail(first, "the first thread").unwrap();
    let panicked = match first {
        Err(_) => true,
        Ok(outcome) => {
            assert_eq!(outcome, Err("initialiser failed"), "the error is returned as is");
            false
        }
    };
    let second = join_or_fail(second, "the waiting thread (never woken?)").unwrap();
    (panicked, second, second_runs.load(Relaxed))
}

#[test]
fn a_panicking_initialiser_caches_nothing_wakes_its_waiters_and_a_later_call_retries() {
    let cache = cache::<u32, String>(budget(1 << 20));
    let (panicked, second, second_runs) = first_ends_while_second_waits(cache, 7, Ending::Panics);
    assert!(panicked, "the panic propagates to the caller whose initialiser panicked");
    assert_eq!(second_runs, 1, "the woken waiter retried with its own initialiser");
    assert_eq!(*second, "second try for 7");
    assert!(core::ptr::eq(second.as_static().expect("cached"), cache.get(&7).unwrap()));
    assert_eq!(counts(cache.stats()), (0, 2, 0, 1));
    // Nothing is left behind: the key can be computed again on any thread without waiting.
    let retry = catch_unwind(|| cache.get_or_insert_with(&8, |_| panic!("initialiser panicked (on purpose)")));
    assert!(retry.is_err());
    assert_eq!(cache.get(&8), None);
    let later = thread::spawn(move || cache.get_or_insert_with(&8, |_| "retried".to_owned()));
    assert_eq!(*join_or_fail(later, "a retry after a panic").unwrap(), "retried");
    assert_eq!(counts(cache.stats()), (0, 4, 0, 1));
}

#[test]
fn a_failing_initialiser_caches_nothing_wakes_its_waiters_and_a_later_call_retries() {
    let cache = cache::<u32, String>(budget(1 << 20));
    let (panicked, second, second_runs) = first_ends_while_second_waits(cache, 3, Ending::Fails);
    assert!(!panicked);
    assert_eq!(second_runs, 1);
    assert_eq!(*second, "second try for 3");
    assert!(second.is_static());
    assert_eq!(cache.get_or_try_insert_with(&4, |_| Err::<String, _>(4)), Err(4));
    assert_eq!((cache.get(&4), cache.len()), (None, 1));
    assert_eq!(*cache.get_or_try_insert_with(&4, |_| Ok::<_, ()>("ok".to_owned())).unwrap(), "ok");
    assert_eq!(counts(cache.stats()), (0, 4, 0, 1));
}

#[test]
fn threads_waiting_for_a_key_the_budget_refuses_compute_their_own_values() {
    type Big = [u64; 2048];
    // Room for the cache's state, not for a 16 KiB entry.
    let budget = budget(16 << 10);
    let cache = cache::<u32, Big>(budget);
    let (started, has_started) = mpsc::channel();
    let (go, told_to_go) = mpsc::channel::<()>();
    let first = thread::spawn(move || {
        let value = cache.get_or_insert_with(&1, |_| {
            started.send(()).unwrap();
            told_to_go.recv().unwrap();
            [1; 2048]
        });
        (value.is_static(), value[0])
    });
    has_started.recv().unwrap();
    let second = thread::spawn(move || {
        let value = cache.get_or_insert_with(&1, |_| [2; 2048]);
        (value.is_static(), value[0])
    });
    wait_until("the second thread waits for the first", || cache.stats().waits == 1);
    go.send(()).unwrap();
    assert_eq!(join_or_fail(first, "the first thread").unwrap(), (false, 1), "refused: its own value, uncached");
    assert_eq!(join_or_fail(second, "the waiter").unwrap(), (false, 2), "woken, it computed its own value");
    assert!(cache.is_full() && cache.is_empty());
    assert!(budget.reserved() > 0 && budget.reserved() <= budget.limit());
    assert_eq!(counts(cache.stats()), (0, 2, 2, 1));
}

fn fib(n: u64) -> u64 {
    static FIB: StaticCache<u64, u64> = StaticCache::new();
    *FIB.get_or_insert_with(&n, |&n| if n < 2 { n } else { fib(n - 1) + fib(n - 2) })
}

#[test]
fn an_initialiser_may_use_the_cache_for_other_keys_but_not_for_its_own() {
    assert_eq!(fib(90), 2_880_067_194_370_816_120);
    let cache = cache::<u32, u32>(budget(1 << 20));
    let outcome = catch_unwind(|| cache.get_or_insert_with(&1, |_| *cache.get_or_insert_with(&1, |_| 0)));
    let payload = outcome.unwrap_err();
    let message = payload.downcast_ref::<&str>().copied().or(payload.downcast_ref::<String>().map(String::as_str));
    let message = message.expect("a message");
    assert!(message.contains("asked the same cache for that key"), "{message}");
    assert_eq!(cache.len(), 0);
    // Nothing is left behind.
    let later = thread::spawn(move || *cache.get_or_insert_with(&1, |_| 5));
    assert_eq!(join_or_fail(later, "a call after the re-entrant one").unwrap(), 5);
}

thread_local! {
    /// Panic in the `Eq` call that brings this to 0 (0: never). Per thread, as each test's calls run on its thread.
    static EQ_COUNTDOWN: Cell<usize> = const { Cell::new(0) };
}

/// A key whose hash is constant (every key collides, so `Eq` runs on every look-up) and whose `Eq` panics on demand.
#[derive(Debug, Clone)]
struct Colliding(u32);

impl Hash for Colliding {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(7);
    }
}

impl PartialEq for Colliding {
    fn eq(&self, other: &Self) -> bool {
        let left = EQ_COUNTDOWN.get();
        if left > 0 {
            EQ_COUNTDOWN.set(left - 1);
            assert!(left != 1, "Eq panicked (on purpose)");
        }
        self.0 == other.0
    }
}

impl Eq for Colliding {}

#[test]
fn keys_with_equal_hashes_are_told_apart_even_from_inside_an_initialiser() {
    let cache = cache::<Colliding, u32>(budget(1 << 20));
    let outer =
        cache.get_or_insert_with(&Colliding(1), |k| k.0 * 10 + *cache.get_or_insert_with(&Colliding(2), |k| k.0));
    assert_eq!(*outer, 12);
    assert_eq!((cache.get(&Colliding(1)), cache.get(&Colliding(2))), (Some(&12), Some(&2)));
    assert_eq!(counts(cache.stats()), (0, 2, 0, 0));
}

#[test]
#[cfg_attr(miri, ignore = "many unwinding cases; exercised natively")]
fn a_panicking_eq_anywhere_in_a_miss_leaves_the_cache_consistent() {
    // With three keys present, a miss calls `Eq` three times in each of: the lock-free look-up, the look-up under
    // the lock, and the insert. Panicking in each call in turn covers every phase; the tenth call never comes.
    for countdown in 1..=10 {
        let budget = budget(1 << 20);
        let cache = cache::<Colliding, u32>(budget);
        for i in 0..3 {
            cache.get_or_insert_with(&Colliding(i), |k| k.0);
        }
        let before = budget.stats();
        EQ_COUNTDOWN.set(countdown);
        let outcome = catch_unwind(|| cache.get_or_insert_with(&Colliding(100), |k| k.0).is_static());
        let fired = EQ_COUNTDOWN.get() == 0;
        EQ_COUNTDOWN.set(0);
        if countdown <= 9 {
            assert!(fired && outcome.is_err(), "countdown {countdown}: the panic propagates");
            assert_eq!(
                (without_rejections(budget.stats()), cache.len()),
                (without_rejections(before), 3),
                "countdown {countdown}"
            );
        } else {
            assert!(!fired && outcome.unwrap());
            assert_eq!(cache.len(), 4);
        }
        // No lock or record is left behind: another thread completes the same key.
        let later = thread::spawn(move || *cache.get_or_insert_with(&Colliding(100), |k| k.0));
        assert_eq!(join_or_fail(later, "a call after the panic").unwrap(), 100);
        for i in 0..3 {
            assert_eq!(cache.get(&Colliding(i)), Some(&i));
        }
    }
}

#[test]
fn a_budget_too_small_for_the_cache_itself_degrades_from_the_first_call() {
    let budget = budget(1 << 10);
    let cache = cache::<u32, u32>(budget);
    assert_eq!(cache.get_or_insert_with(&1, |&k| k + 1), Cached::Owned(2));
    assert!(cache.is_full());
    let frozen = budget.stats();
    assert_eq!(frozen.rejections, 1);
    assert_eq!(cache.get_or_insert_with(&1, |&k| k + 1), Cached::Owned(2));
    let refused = cache.try_get_or_insert_with(&2, |&k| k).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { limit: 1024, .. }));
    assert_eq!(cache.get(&1), None);
    assert_eq!((budget.stats(), cache.len()), (frozen, 0));
    assert_eq!(counts(cache.stats()), (0, 3, 3, 0));
}

#[test]
fn a_static_cache_on_the_global_budget() {
    static LENGTHS: StaticCache<&str, usize> = StaticCache::new();
    assert!(LENGTHS.budget().is_none());
    assert_eq!(*LENGTHS.get_or_insert_with(&"four", |s| s.len()), 4);
    let there = thread::spawn(|| LENGTHS.get("four")).join().unwrap();
    assert_eq!(there, Some(&4));
    assert!(format!("{LENGTHS:?}").contains("StaticCache"));
}

#[test]
fn cached_values_deref_compare_and_print_as_the_value() {
    static FIVE: String = String::new();
    let cached: Cached<String> = Cached::Static(&FIVE);
    let owned: Cached<String> = Cached::Owned(String::new());
    assert_eq!(cached, owned, "compared by value");
    assert!(cached.is_static() && !owned.is_static());
    assert_eq!(cached.as_static().map(String::len), Some(0));
    assert_eq!(owned.as_static(), None);
    assert_eq!(Cached::Owned(String::from("x")).into_owned(), "x");
    assert_eq!(format!("{}", Cached::Owned(7)), "7");
    assert_eq!(Cached::Owned(7).as_ref(), &7);
    let stats = CacheStats::default();
    assert_eq!((stats.lookups(), stats.hit_rate()), (0, 0.0));
}

#[test]
fn string_keys_are_queried_and_filled_with_str() {
    let budget = budget(1 << 20);
    let lengths = cache::<String, usize>(budget);
    let given = Cell::new("");
    let five = lengths.get_or_insert_with("hello", |key: &str| {
        given.set(if key == "hello" { "the borrowed key" } else { "another key" });
        key.len()
    });
    assert_eq!((*five, given.get()), (5, "the borrowed key"));
    let five: &'static usize = five.as_static().unwrap();
    assert!(core::ptr::eq(five, lengths.get_or_insert_with("hello", |_| unreachable!("a hit")).as_static().unwrap()));
    assert!(core::ptr::eq(five, lengths.get("hello").unwrap()));
    assert!(core::ptr::eq(five, lengths.get(&String::from("hello")).unwrap()), "the owned form works too");
    assert_eq!(*lengths.try_get_or_insert_with("world!", str::len).unwrap(), 6);
    assert_eq!(*lengths.get_or_try_insert_with("abc", |key| Ok::<_, ()>(key.len())).unwrap(), 3);
    assert_eq!(lengths.get_or_try_insert_with("fails", |_| Err::<usize, _>("no")).unwrap_err(), "no");
    assert_eq!((lengths.len(), lengths.get("fails")), (3, None));

    // Byte-string keys, with `&[u8]`.
    let sizes = cache::<Vec<u8>, usize>(budget);
    assert_eq!(*sizes.get_or_insert_with(&b"bytes"[..], <[u8]>::len), 5);
    assert_eq!(sizes.get(&b"bytes"[..]), Some(&5));
}

/// A key whose clones are counted (`ToOwned` for a `Clone` type is `clone`).
#[derive(Debug)]
struct CountedKey {
    id: u32,
    clones: &'static AtomicUsize,
}

impl Clone for CountedKey {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Relaxed);
        Self { id: self.id, clones: self.clones }
    }
}

impl PartialEq for CountedKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for CountedKey {}

impl Hash for CountedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

#[test]
fn a_key_is_cloned_once_on_a_miss_and_never_on_a_hit() {
    let clones: &'static AtomicUsize = leaked(AtomicUsize::new(0));
    let key = |id| CountedKey { id, clones };
    let values = cache::<CountedKey, u32>(budget(1 << 20));

    assert_eq!(*values.get_or_insert_with(&key(7), |k| k.id * 2), 14);
    assert_eq!(clones.load(Relaxed), 1, "a miss makes the owned key it stores");
    for _ in 0..100 {
        assert_eq!(*values.get_or_insert_with(&key(7), |_| unreachable!("a hit")), 14);
        assert_eq!(*values.try_get_or_insert_with(&key(7), |_| unreachable!("a hit")).unwrap(), 14);
        assert_eq!(*values.get_or_try_insert_with(&key(7), |_| Err::<u32, ()>(())).unwrap(), 14);
        assert_eq!(values.get(&key(7)), Some(&14));
    }
    assert_eq!(clones.load(Relaxed), 1, "hits and look-ups clone nothing");
    assert_eq!(*values.get_or_insert_with(&key(8), |k| k.id * 2), 16);
    assert_eq!(clones.load(Relaxed), 2);

    // A cache its budget refused still answers: each miss clones the key once, as any miss does.
    let uncached = cache::<CountedKey, u32>(budget(0));
    assert!(matches!(uncached.get_or_insert_with(&key(1), |k| k.id), Cached::Owned(1)));
    assert!(matches!(uncached.get_or_insert_with(&key(1), |k| k.id), Cached::Owned(1)));
    assert_eq!(clones.load(Relaxed), 4);
}
