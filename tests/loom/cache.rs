//! Loom models of `StaticCache`: two threads missing the same key, a panicking initialiser and a retry, distinct keys
//! not waiting for each other, an insert racing with the budget running out, and threads waiting for a key whose
//! entry the budget refuses. Under loom the cache has one pending stripe (every key shares one lock and condition
//! variable) and the table one shard.

use core::alloc::Layout;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicBool as SeenFlag, Ordering::Relaxed as Seen};

use leak_budget::{Cached, LeakBudget, StaticCache};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use loom::thread;

use crate::{Bounds, budget};

fn cache<V: 'static>(budget: &'static LeakBudget) -> &'static StaticCache<u32, V> {
    Box::leak(Box::new(StaticCache::in_budget(budget)))
}

/// Creating the cache's state, inserting, waiting and waking up are straight-line work, but more atomic operations
/// than loom's default per-execution cap: [`Bounds::CI`] allows them.
fn model(f: impl Fn() + Sync + Send + 'static) -> usize {
    crate::model(Bounds::CI, f)
}

const ON_PURPOSE: &str = "initialiser panicked (on purpose)";

/// Silences the panic message of the initialisers that panic on purpose (one per execution); other panics, such as
/// failed assertions, still print.
fn quiet_deliberate_panics() {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&ON_PURPOSE) {
                default(info);
            }
        }));
    });
}

/// Paths seen over all executions of a model (plain atomics: they outlive each execution).
static SEEN_WAITING_FOR_A_VALUE: SeenFlag = SeenFlag::new(false);
static SEEN_WAITING_FOR_A_PANIC: SeenFlag = SeenFlag::new(false);

#[test]
fn two_threads_missing_the_same_key_run_one_initialiser_and_share_one_value() {
    model(|| {
        let cache = cache::<u64>(budget("cache", 64 << 10));
        let runs = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let runs = Arc::clone(&runs);
                thread::spawn(move || {
                    let value = cache.get_or_insert_with(&1, |_| {
                        runs.fetch_add(1, Relaxed);
                        10 + t
                    });
                    value.as_static().expect("the budget has room")
                })
            })
            .collect();
        let values: Vec<&'static u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(core::ptr::eq(values[0], values[1]), "one value, shared");
        assert!(*values[0] == 10 || *values[0] == 11);
        assert_eq!(runs.load(Relaxed), 1, "one initialiser ran");
        assert_eq!(cache.len(), 1);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.degraded), (1, 1, 0));
        assert_eq!(cache.get(&1), Some(values[0]));
        if stats.waits == 1 {
            SEEN_WAITING_FOR_A_VALUE.store(true, Seen);
        }
    });
    assert!(SEEN_WAITING_FOR_A_VALUE.load(Seen), "some execution has one thread wait for the other's value");
}

#[test]
fn a_panicking_initialiser_caches_nothing_and_the_other_thread_retries() {
    quiet_deliberate_panics();
    model(|| {
        let cache = cache::<u64>(budget("cache", 64 << 10));
        let doomed = thread::spawn(move || {
            catch_unwind(AssertUnwindSafe(|| cache.get_or_insert_with(&1, |_| std::panic::panic_any(ON_PURPOSE))))
                .map(|value| *value)
        });
        let retry = thread::spawn(move || cache.get_or_insert_with(&1, |_| 2).as_static().expect("room"));
        let doomed = doomed.join().unwrap();
        let retried = retry.join().unwrap();
        assert_eq!(*retried, 2, "the panicking initialiser's call never produced a value");
        let stats = cache.stats();
        match doomed {
            // Its initialiser ran and panicked: before the retry, or while the retry waited for it (and was woken).
            Err(_) => {
                assert_eq!((stats.hits, stats.misses), (0, 2));
                if stats.waits == 1 {
                    SEEN_WAITING_FOR_A_PANIC.store(true, Seen);
                }
            }
            // The retry cached its value first, and the other call found it without running its initialiser.
            Ok(value) => {
                assert_eq!(value, 2);
                assert_eq!((stats.hits, stats.misses), (1, 1));
            }
        }
        assert_eq!(cache.get(&1), Some(retried));
        assert_eq!(cache.len(), 1);
    });
    assert!(SEEN_WAITING_FOR_A_PANIC.load(Seen), "some execution has the retry wait for, and be woken by, the panic");
}

#[test]
fn a_key_being_computed_does_not_hold_up_another_key() {
    model(|| {
        let cache = cache::<u64>(budget("cache", 64 << 10));
        let other_done = Arc::new(AtomicBool::new(false));
        let slow = {
            let other_done = Arc::clone(&other_done);
            thread::spawn(move || {
                *cache.get_or_insert_with(&1, |_| {
                    // Only the other key's completion lets this initialiser finish: were that key to wait for this
                    // one, neither could progress and loom would report it.
                    while !other_done.load(Relaxed) {
                        thread::yield_now();
                    }
                    1
                })
            })
        };
        assert_eq!(*cache.get_or_insert_with(&2, |_| 2), 2);
        other_done.store(true, Relaxed);
        assert_eq!(slow.join().unwrap(), 1);
        assert_eq!(cache.stats().waits, 0);
        assert_eq!(cache.len(), 2);
    });
}

/// An entry of a `StaticCache<u32, u64>`: the hash, the key and the value, as the cache lays it out.
fn entry_layout() -> Layout {
    Layout::new::<(u64, u32, u64)>()
}

/// A value that takes a dedicated block, whose charge is exact.
type Large = [u8; 600];

/// What a thread's first `Large` leak charges on a fresh budget: its lane and its dedicated block. Measured on a
/// scratch budget, because the record and lane sizes differ under loom.
fn lane_plus_large() -> usize {
    let scratch = budget("scratch", 1 << 20);
    scratch.leak::<Large>([0; 600]).unwrap();
    scratch.reserved() - LeakBudget::RECORD_BYTES
}

/// Leaks `bytes` (a dedicated block, charged exactly) into `budget`; returns the block's overhead.
fn pad(budget: &LeakBudget, bytes: usize) -> usize {
    let before = budget.reserved();
    budget.leak_layout(Layout::from_size_align(bytes, 16).unwrap()).unwrap();
    budget.reserved() - before - bytes
}

static SEEN_STORED: SeenFlag = SeenFlag::new(false);
static SEEN_DEGRADED: SeenFlag = SeenFlag::new(false);

#[test]
fn an_insert_racing_with_the_budget_running_out_is_either_cached_or_handed_back() {
    model(|| {
        let budget = budget("race", 1 << 20);
        let cache = cache::<u64>(budget);
        assert!(cache.get_or_insert_with(&0, |_| 0).is_static());
        // Leave the room the table demands before it inserts a second entry (it refuses an insert that might not
        // fit), `need`, plus a little less than what the competitor's leak takes (give or take 16 bytes): either fits
        // on its own, but once the competitor's leak is charged the insert is refused.
        let (need, competitor_takes) = (LeakBudget::max_charge_for(entry_layout()), lane_plus_large());
        let room = need + competitor_takes - 32;
        let overhead = pad(budget, 32 << 10);
        let last_pad = (budget.remaining() - room - overhead) & !15;
        let competitor = thread::spawn(move || budget.leak::<Large>([7; 600]).is_ok());
        // The last padding is charged while the competitor runs, so that loom explores both orders of the two
        // charges; it fits either way.
        pad(budget, last_pad);
        let answer = cache.get_or_insert_with(&1, |_| 11);
        assert!(competitor.join().unwrap(), "the competing leak fits whatever the order");
        assert!(budget.reserved() <= budget.limit());
        assert_eq!(*answer, 11);
        match answer {
            Cached::Static(value) => {
                assert!(!cache.is_full());
                assert_eq!(cache.get(&1), Some(value));
                assert_eq!(cache.len(), 2);
                SEEN_STORED.store(true, Seen);
            }
            Cached::Owned(_) => {
                assert!(cache.is_full());
                assert_eq!(cache.get(&1), None);
                assert_eq!(cache.len(), 1);
                // Full: later misses are handed back without asking the budget; hits keep working.
                let frozen = budget.stats();
                assert_eq!(cache.get_or_insert_with(&2, |_| 22), Cached::Owned(22));
                assert_eq!(*cache.get_or_insert_with(&0, |_| unreachable!()), 0);
                assert_eq!(budget.stats(), frozen);
                SEEN_DEGRADED.store(true, Seen);
            }
        }
    });
    assert!(SEEN_STORED.load(Seen) && SEEN_DEGRADED.load(Seen), "both outcomes of the race are reachable");
}

static SEEN_WAITING_FOR_A_REFUSAL: SeenFlag = SeenFlag::new(false);

#[test]
fn threads_waiting_for_a_key_the_budget_refuses_are_woken_and_compute_their_own_values() {
    // At a bound of 8 loom explores all 248 executions it distinguishes (as many as with no bound).
    crate::model(Bounds::preemptions(8), || {
        let budget = budget("refusing", 64 << 10);
        let cache = cache::<u64>(budget);
        // Set up the cache's state without caching anything (a failed initialiser caches nothing), then leave less
        // room than any entry needs: the first thread to compute key 1 is refused, marks the cache full and wakes the
        // other if it waits; that one must then compute its own value rather than wait again or find nothing.
        assert_eq!(cache.get_or_try_insert_with(&0, |_| Err(())), Err(()));
        let overhead = pad(budget, 32 << 10);
        pad(budget, (budget.remaining() - overhead - 64) & !15);
        assert!(budget.remaining() < LeakBudget::max_charge_for(entry_layout()));
        let frozen = budget.stats();

        let other = thread::spawn(move || cache.get_or_insert_with(&1, |_| 11));
        let mine = cache.get_or_insert_with(&1, |_| 12);
        let theirs = other.join().unwrap();
        assert_eq!((mine, theirs), (Cached::Owned(12), Cached::Owned(11)), "each computed its own value");
        assert!(cache.is_full());
        assert_eq!((cache.len(), cache.get(&1)), (0, None));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.degraded), (0, 3, 2), "{stats:?}");
        let after = budget.stats();
        assert_eq!(after.rejections, frozen.rejections + 1, "the budget was asked once");
        assert_eq!((after.reserved, after.used), (frozen.reserved, frozen.used), "the refusal charged nothing");
        if stats.waits == 1 {
            SEEN_WAITING_FOR_A_REFUSAL.store(true, Seen);
        }
    });
    assert!(SEEN_WAITING_FOR_A_REFUSAL.load(Seen), "some execution has a thread wait for the refused computation");
}
