//! Loom models of `LeakOnce` and the `leak_once!` call-site cell: racing initialisers, a panicking initialiser and
//! its retry, `get` (and the budget's statistics) racing initialisation, and three threads racing on a call site, one
//! of them refused by its budget.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use leak_budget::__private::LeakOnceSite;
use leak_budget::LeakOnce;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::thread;

use crate::{Bounds, budget};

/// A value whose contents loom tracks: reading it before its construction happens-before the read is reported as a
/// causality violation, so a model that reads it checks that publication orders the value's writes.
struct Tracked(UnsafeCell<usize>);

// SAFETY: the cell is written only when created, and read (never written) afterwards, through shared references;
// loom checks that every read happens after the creation.
unsafe impl Sync for Tracked {}

impl Tracked {
    fn new(value: usize) -> Self {
        Self(UnsafeCell::new(value))
    }

    fn read(&self) -> usize {
        // SAFETY: see the `Sync` impl: no write follows the creation.
        self.0.with(|value| unsafe { *value })
    }
}

/// The payload of a deliberate panic, which the panic hook keeps quiet.
struct Deliberate;

/// Silences deliberate panics (other panics, such as failed assertions, are reported as usual).
fn quiet_deliberate_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let report = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Deliberate>().is_none() {
                report(info);
            }
        }));
    });
}

#[test]
fn three_threads_race_to_initialise_one_value_is_published_and_charged_once() {
    crate::model(Bounds::CI, || {
        let budget = budget("once-race", 64 << 10);
        let cell = Arc::new(LeakOnce::in_budget(budget));
        let runs = Arc::new(AtomicUsize::new(0));
        let racer = |t: usize| {
            let (cell, runs) = (Arc::clone(&cell), Arc::clone(&runs));
            move || {
                let value: &'static Tracked = cell
                    .get_or_init(|| {
                        runs.fetch_add(1, Relaxed);
                        Tracked::new(t)
                    })
                    .unwrap();
                (core::ptr::from_ref(value).addr(), value.read())
            }
        };
        let others: Vec<_> = (1..3).map(|t| thread::spawn(racer(t))).collect();
        let mine = racer(0)();
        for other in others {
            assert_eq!(other.join().unwrap(), mine, "every thread gets the same value");
        }
        assert_eq!(runs.load(Relaxed), 1, "exactly one initialiser ran");
        assert_eq!(core::ptr::from_ref(cell.get().unwrap()).addr(), mine.0);
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (1, size_of::<Tracked>()), "charged once, for one value");
    });
}

#[test]
fn a_panicking_initialiser_leaves_the_cell_empty_and_a_retry_succeeds() {
    quiet_deliberate_panics();
    // At a bound of 8 loom explores all 191 executions it distinguishes (38 at the CI bound of 2).
    crate::model(Bounds::preemptions(8), || {
        let budget = budget("once-panic", 64 << 10);
        let cell = Arc::new(LeakOnce::in_budget(budget));
        let other = {
            let cell = Arc::clone(&cell);
            // Waits for the panicking initialiser if it runs first, then initialises the cell itself.
            thread::spawn(move || core::ptr::from_ref(cell.get_or_init(|| Tracked::new(2)).unwrap()).addr())
        };
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            cell.get_or_init(|| panic::panic_any(Deliberate)).map(Tracked::read)
        }));
        match caught {
            Err(payload) => assert!(payload.is::<Deliberate>(), "the initialiser's panic propagates"),
            // `other` published first, so the panicking initialiser never ran.
            Ok(value) => assert_eq!(value.ok(), Some(2)),
        }
        let retried = cell.get_or_init(|| Tracked::new(1)).unwrap();
        let other = other.join().unwrap();
        assert_eq!(core::ptr::from_ref(retried).addr(), other, "one value, seen by both threads");
        assert!(matches!(retried.read(), 1 | 2));
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (1, size_of::<Tracked>()), "the panic charged nothing");
    });
}

#[test]
fn get_racing_initialisation_sees_nothing_or_the_complete_value_counted_by_the_budget() {
    crate::model(Bounds::CI, || {
        let budget = budget("once-get", 64 << 10);
        budget.register().unwrap();
        let cell = Arc::new(LeakOnce::in_budget(budget));
        let seen = |value: &'static Tracked| (core::ptr::from_ref(value).addr(), value.read());
        let reader = {
            let cell = Arc::clone(&cell);
            // A `get` that may run before, during or after the initialisation (which takes a lane, charges a chunk
            // and bumps in it before it publishes the value), the budget's statistics, then another `get`. A `get`
            // that sees the value sees it whole, and statistics read after it count it: the lane list, the lane's
            // seqlocked cursor and its allocation count were all written before the `Release` that published it.
            // Read during the leak, each figure on its own is 0 or the value's (read one after another, they may come
            // from different instants, as `LeakBudget::stats` documents).
            thread::spawn(move || {
                let first = cell.get().map(seen);
                let stats = budget.stats();
                assert!(stats.reserved <= stats.limit && stats.lanes <= 1, "{stats:?}");
                assert!(stats.allocations <= 1 && (stats.used == 0 || stats.used == size_of::<Tracked>()), "{stats:?}");
                if first.is_some() {
                    assert_eq!((stats.allocations, stats.used), (1, size_of::<Tracked>()), "{stats:?}");
                    assert!(stats.reserved > stats.used && stats.blocks == 1, "{stats:?}");
                }
                (first, cell.get().map(seen))
            })
        };
        let value = seen(cell.get_or_init(|| Tracked::new(7)).unwrap());
        assert_eq!(value.1, 7);
        let (first, second) = reader.join().unwrap();
        assert!(first.is_none() || first == Some(value), "{first:?}");
        assert!(second.is_none() || second == Some(value), "{second:?}");
        assert!(first.is_none() || second.is_some(), "a published value stays published");
        assert_eq!(cell.get().map(seen), Some(value));
    });
}

#[test]
fn three_threads_race_on_a_call_site_one_is_refused_and_the_others_share_its_recorded_type() {
    crate::model(Bounds::CI, || {
        let budget = budget("once-site", 64 << 10);
        let empty = crate::budget("once-site-empty", 0);
        let site = Arc::new(LeakOnceSite::new("model"));
        let read = |value: &'static Tracked| (core::ptr::from_ref(value).addr(), value.read());
        // Evaluates the site's expression into a budget with no room: refused with its own value unless another
        // thread published first. Either way the site is left to the others, and they are woken if they waited.
        let refused = {
            let site = Arc::clone(&site);
            thread::spawn(move || match site.get_or_init(|| Ok(empty), || Tracked::new(9)) {
                Ok(value) => Ok(read(value)),
                Err(rejected) => Err(rejected.into_inner().read()),
            })
        };
        let other = {
            let site = Arc::clone(&site);
            thread::spawn(move || read(site.get_or_init(|| Ok(budget), || Tracked::new(1)).unwrap()))
        };
        let mine = read(site.get_or_init(|| Ok(budget), || Tracked::new(0)).unwrap());
        assert!(matches!(mine.1, 0 | 1), "{mine:?}");
        assert_eq!(other.join().unwrap(), mine, "one value for the call site");
        match refused.join().unwrap() {
            Ok(value) => assert_eq!(value, mine, "published before the refused thread looked"),
            Err(own) => {
                assert_eq!(own, 9, "the refused value comes back");
                assert_eq!(empty.stats().rejections, 1);
            }
        }
        assert_eq!(budget.stats().allocations, 1);
        assert_eq!(empty.reserved(), 0);
    });
}

#[test]
fn two_threads_force_a_lazy_whose_first_initialiser_panics_and_share_one_value() {
    quiet_deliberate_panics();
    crate::model(Bounds::preemptions(8), || {
        let budget = budget("lazy-race", 64 << 10);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        // The first call panics (no poisoning: the next access calls it again), every later one builds a value.
        let lazy = Arc::new(leak_budget::LeakLazy::in_budget(budget, move || {
            let call = counted.fetch_add(1, Relaxed);
            if call == 0 {
                panic::panic_any(Deliberate);
            }
            Tracked::new(call)
        }));
        let force = |lazy: &leak_budget::LeakLazy<Tracked, _>| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                let value = leak_budget::LeakLazy::force(lazy);
                (core::ptr::from_ref(value).addr(), value.read())
            }))
            .ok()
        };
        let other = {
            let lazy = Arc::clone(&lazy);
            thread::spawn(move || force(&lazy))
        };
        let mine = force(&lazy);
        let other = other.join().unwrap();
        let last = force(&lazy).expect("the value was published by now, or is built now");
        assert_eq!(mine.is_none() as usize + other.is_none() as usize, 1, "exactly one access saw the panic");
        for seen in [mine, other].into_iter().flatten() {
            assert_eq!(seen, last, "every access gets the one published value");
        }
        assert_eq!((runs.load(Relaxed), last.1), (2, 1), "one panicking call, then one value");
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (1, size_of::<Tracked>()), "charged once, for one value");
    });
}
