//! `LeakOnce`, `LeakLazy` and `leak_once!`: one value published under contention, charged once, panics and refusals
//! that leave the cell empty, re-entrancy, `get` racing initialisation, and where a refused `LeakLazy` panics.
//!
//! Under `cfg(loom)` the cells are made of loom objects, which exist only inside a loom model: the loom suite
//! (`tests/loom/once.rs`) covers them there.

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Barrier, Mutex, mpsc};
use std::thread;

use leak_budget::{InitError, LeakBudget, LeakError, LeakLazy, LeakOnce, leak_once};

use crate::support::{panic_message, scaled};

/// Yields a few times so that threads that were just released reach their next blocking point. Only widens the
/// window the test is about; no assertion depends on it.
fn let_others_run() {
    for _ in 0..scaled(100, 5) {
        thread::yield_now();
    }
}

#[test]
fn one_value_is_published_under_contention_and_charged_once() {
    static BUDGET: LeakBudget = LeakBudget::named("contention", 1 << 20);
    static CELL: LeakOnce<[u64; 8]> = LeakOnce::in_budget(&BUDGET);
    static RUNS: AtomicUsize = AtomicUsize::new(0);

    let threads = scaled(16, 4);
    let start = Barrier::new(threads);
    let results: Vec<(usize, usize)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let value = CELL
                        .get_or_init(|| {
                            RUNS.fetch_add(1, Relaxed);
                            [t as u64; 8]
                        })
                        .unwrap();
                    assert!(value.iter().all(|v| *v == value[0]), "a reader saw a partly written value: {value:?}");
                    (ptr::from_ref(value).addr(), value[0] as usize)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    assert_eq!(RUNS.load(Relaxed), 1, "exactly one initialiser ran");
    let (address, winner) = results[0];
    assert!(results.iter().all(|r| *r == (address, winner)), "every caller got the same value: {results:?}");
    assert_eq!(ptr::from_ref(CELL.get().unwrap()).addr(), address);
    let stats = BUDGET.stats();
    assert_eq!((stats.allocations, stats.used), (1, size_of::<[u64; 8]>()), "charged once, for one value\n{stats}");
}

#[test]
fn callers_wait_for_a_running_initialiser_and_get_its_value() {
    static BUDGET: LeakBudget = LeakBudget::named("waiters", 1 << 20);
    let cell: LeakOnce<String> = LeakOnce::in_budget(&BUDGET);
    let waiters = scaled(8, 3);
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let calling = Barrier::new(waiters + 1);

    thread::scope(|s| {
        let cell = &cell;
        let owner = s.spawn(move || {
            cell.get_or_init(|| {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                "the owner's value".to_owned()
            })
            .unwrap()
        });
        started.recv().unwrap();
        let handles: Vec<_> = (0..waiters)
            .map(|_| {
                s.spawn(|| {
                    calling.wait();
                    cell.get_or_init(|| unreachable!("the owner's initialiser succeeds")).unwrap()
                })
            })
            .collect();
        calling.wait();
        let_others_run();
        // The owner is still inside its initialiser: every waiter must still be blocked.
        assert!(handles.iter().all(|h| !h.is_finished()), "a caller returned before the value was published");
        assert!(cell.get().is_none(), "`get` does not block and sees no value while the initialiser runs");
        release.send(()).unwrap();
        let published = owner.join().unwrap();
        for handle in handles {
            assert!(ptr::eq(handle.join().unwrap(), published));
        }
        assert_eq!(published, "the owner's value");
    });
    assert_eq!(BUDGET.stats().allocations, 1);
}

#[test]
fn a_panicking_initialiser_charges_nothing_wakes_waiters_and_a_retry_succeeds() {
    static BUDGET: LeakBudget = LeakBudget::named("panics", 1 << 20);
    let cell: LeakOnce<Vec<u32>> = LeakOnce::in_budget(&BUDGET);
    let waiters = scaled(6, 3);
    let runs = AtomicUsize::new(0);
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let calling = Barrier::new(waiters + 1);

    thread::scope(|s| {
        let cell = &cell;
        let owner = s.spawn(move || {
            cell.get_or_init(|| {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                panic!("initialiser failed on purpose");
            })
        });
        started.recv().unwrap();
        let handles: Vec<_> = (0..waiters)
            .map(|w| {
                let (runs, calling) = (&runs, &calling);
                s.spawn(move || {
                    calling.wait();
                    cell.get_or_init(|| {
                        runs.fetch_add(1, Relaxed);
                        vec![w as u32; 16]
                    })
                    .unwrap()
                })
            })
            .collect();
        calling.wait();
        let_others_run();
        assert!(handles.iter().all(|h| !h.is_finished()), "waiters block while the initialiser runs");
        release.send(()).unwrap();
        let payload = owner.join().unwrap_err();
        assert_eq!(panic_message(&*payload), "initialiser failed on purpose");

        // The waiters were woken: exactly one of them initialised the cell, and all got its value.
        let values: Vec<&'static Vec<u32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(runs.load(Relaxed), 1);
        assert!(values.iter().all(|v| ptr::eq(*v, values[0])));
        assert_eq!(values[0].len(), 16);
    });
    // One value (a `Vec` header; its buffer is the `Vec`'s own) was charged: the panicking initialiser charged nothing.
    let stats = BUDGET.stats();
    assert_eq!((stats.allocations, stats.used, stats.rejections), (1, size_of::<Vec<u32>>(), 0), "{stats}");
}

#[test]
fn a_panic_alone_leaves_the_cell_empty_and_the_budget_untouched() {
    static BUDGET: LeakBudget = LeakBudget::named("panic-alone", 1 << 20);
    static CELL: LeakOnce<u64> = LeakOnce::in_budget(&BUDGET);
    let result = panic::catch_unwind(|| CELL.get_or_init(|| panic!("no value")));
    assert_eq!(panic_message(&*result.unwrap_err()), "no value");
    assert!(CELL.get().is_none());
    assert_eq!((BUDGET.reserved(), BUDGET.stats().allocations), (0, 0));
    assert_eq!(*CELL.get_or_init(|| 42).unwrap(), 42);
    assert_eq!(BUDGET.stats().allocations, 1);
}

#[test]
fn re_entrant_initialisation_panics_with_a_clear_message() {
    static BUDGET: LeakBudget = LeakBudget::named("re-entrant", 1 << 20);
    static CELL: LeakOnce<u32> = LeakOnce::in_budget(&BUDGET);

    let inner_get = AtomicUsize::new(usize::MAX);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        CELL.get_or_init(|| {
            // `get` never blocks, so it may be called: the cell is still empty.
            inner_get.store(usize::from(CELL.get().is_some()), Relaxed);
            CELL.get_or_init(|| 1).unwrap() + 1
        })
    }));
    assert_eq!(inner_get.load(Relaxed), 0);
    let message = panic_message(&*result.unwrap_err());
    assert!(message.starts_with("re-entrant initialisation of a `LeakOnce<u32>`"), "{message}");
    assert!(message.contains("wait for itself forever"), "{message}");

    // `set` and `get_or_try_init` from the initialiser are caught the same way.
    let from_set = panic::catch_unwind(|| CELL.get_or_init(|| CELL.set(2).map_or(0, |v| *v)));
    assert!(panic_message(&*from_set.unwrap_err()).starts_with("re-entrant initialisation"));
    let from_try = panic::catch_unwind(|| {
        CELL.get_or_try_init(|| CELL.get_or_try_init(|| Ok::<u32, ()>(3)).copied().map_err(|_| ()))
    });
    assert!(panic_message(&*from_try.unwrap_err()).starts_with("re-entrant initialisation"));

    // Nothing was stored or charged, and the cell still works.
    assert!(CELL.get().is_none());
    assert_eq!(BUDGET.reserved(), 0);
    assert_eq!(*CELL.get_or_init(|| 7).unwrap(), 7);
}

#[test]
fn an_initialiser_may_use_other_cells() {
    static BUDGET: LeakBudget = LeakBudget::named("nested", 1 << 20);
    static INNER: LeakOnce<u32> = LeakOnce::in_budget(&BUDGET);
    static OUTER: LeakOnce<u32> = LeakOnce::in_budget(&BUDGET);
    let outer = OUTER.get_or_init(|| INNER.get_or_init(|| 20).unwrap() + 1).unwrap();
    assert_eq!((*outer, *INNER.get().unwrap()), (21, 20));
}

#[test]
fn a_refused_value_comes_back_and_the_cell_stays_empty() {
    static NONE: LeakBudget = LeakBudget::named("none", 0);
    static CELL: LeakOnce<Vec<String>> = LeakOnce::in_budget(&NONE);
    let runs = AtomicUsize::new(0);
    let init = || {
        runs.fetch_add(1, Relaxed);
        vec!["kept".to_owned()]
    };

    let refused = CELL.get_or_init(init).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { budget: "none", .. }), "{refused}");
    assert_eq!(refused.into_inner(), ["kept"]);
    assert!(CELL.get().is_none());

    // The failure is not cached: the next call runs its initialiser again.
    assert!(CELL.get_or_init(init).is_err());
    assert_eq!(runs.load(Relaxed), 2);

    let refused = CELL.set(vec!["offered".to_owned()]).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { .. }));
    assert_eq!(refused.into_inner(), ["offered"]);

    match CELL.get_or_try_init(|| Ok::<_, ()>(vec!["built".to_owned()])) {
        Err(InitError::Leak(refused)) => assert_eq!(refused.into_inner(), ["built"]),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let stats = NONE.stats();
    assert_eq!((stats.reserved, stats.allocations, stats.rejections), (0, 0, 4), "{stats}");
}

#[test]
fn set_stores_once_and_gives_later_values_back() {
    static BUDGET: LeakBudget = LeakBudget::named("set", 1 << 20);
    let cell: LeakOnce<String> = LeakOnce::in_budget(&BUDGET);
    let threads = scaled(8, 3);
    let start = Barrier::new(threads);
    let outcomes: Vec<Result<&'static String, (String, LeakError)>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (cell, start) = (&cell, &start);
                s.spawn(move || {
                    start.wait();
                    cell.set(format!("value {t}")).map_err(leak_budget::Rejected::into_parts)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let stored = cell.get().unwrap();
    let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one `set` stores");
    assert!(ptr::eq(*winners[0], stored));
    let mut given_back: Vec<String> = outcomes
        .into_iter()
        .filter_map(Result::err)
        .map(|(value, error)| {
            assert_eq!(error, LeakError::AlreadySet);
            value
        })
        .collect();
    given_back.push(stored.clone());
    given_back.sort();
    let mut offered: Vec<String> = (0..threads).map(|t| format!("value {t}")).collect();
    offered.sort();
    assert_eq!(given_back, offered, "every value but the stored one came back");
    assert_eq!(BUDGET.stats().allocations, 1);
    assert!(LeakError::AlreadySet.to_string().contains("use `get_or_init`"));
}

#[test]
fn get_or_try_init_tells_the_initialisers_error_from_a_refusal() {
    static BUDGET: LeakBudget = LeakBudget::named("try", 1 << 20);
    static PORT: LeakOnce<u16> = LeakOnce::in_budget(&BUDGET);

    let error = PORT.get_or_try_init(|| "eighty".parse::<u16>()).unwrap_err();
    assert!(matches!(error, InitError::Init(ref e) if e.to_string() == "invalid digit found in string"));
    assert!(error.to_string().starts_with("the initialiser failed, so the cell stays empty: invalid digit"));
    assert!(std::error::Error::source(&error).is_some());
    assert!(PORT.get().is_none());
    assert_eq!(BUDGET.reserved(), 0, "a failed initialiser charges nothing");

    assert_eq!(*PORT.get_or_try_init(|| "80".parse::<u16>()).unwrap(), 80);
    assert_eq!(*PORT.get_or_try_init(|| -> Result<u16, ()> { unreachable!("already set") }).unwrap(), 80);
}

#[test]
fn get_races_initialisation_and_sees_a_complete_value() {
    static BUDGET: LeakBudget = LeakBudget::named("readers", 1 << 20);
    static TABLE: LeakOnce<Vec<u64>> = LeakOnce::in_budget(&BUDGET);
    let readers = scaled(6, 2);
    let len = scaled(10_000, 100);
    let start = Barrier::new(readers + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..readers)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let mut misses = 0_usize;
                    let table = loop {
                        if let Some(table) = TABLE.get() {
                            break table;
                        }
                        misses += 1;
                        thread::yield_now();
                    };
                    // The `Acquire` load that returned the address makes the whole vector visible.
                    assert_eq!(table.len(), len);
                    assert!(table.iter().enumerate().all(|(i, v)| *v == i as u64 * 3));
                    (ptr::from_ref(table).addr(), misses)
                })
            })
            .collect();
        start.wait();
        let table = TABLE.get_or_init(|| (0..len as u64).map(|i| i * 3).collect()).unwrap();
        for handle in handles {
            assert_eq!(handle.join().unwrap().0, ptr::from_ref(table).addr());
        }
    });
}

#[test]
fn a_cell_outside_a_static_hands_out_static_references() {
    static BUDGET: LeakBudget = LeakBudget::named("local", 1 << 20);
    struct Service {
        name: LeakOnce<String>,
    }
    let name: &'static String = {
        let service = Service { name: LeakOnce::in_budget(&BUDGET) };
        service.name.get_or_init(|| "orders".to_owned()).unwrap()
    }; // the cell is gone; the value lives in the budget
    let from_thread = thread::spawn(move || name.len()).join().unwrap();
    assert_eq!((name.as_str(), from_thread), ("orders", 6));
}

#[test]
fn a_sync_value_that_is_not_send_can_be_shared() {
    /// `Sync` but not `Send`, like a `MutexGuard`: sharing it through the cell needs no `T: Send`.
    struct Pinned {
        id: u32,
        _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
    }
    static BUDGET: LeakBudget = LeakBudget::named("pinned", 1 << 20);
    static PINNED: LeakOnce<Pinned> = LeakOnce::in_budget(&BUDGET);
    let ids = thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| PINNED.get_or_init(|| Pinned { id: 9, _not_send: PhantomData }).unwrap().id))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(ids, [9, 9]);
}

#[test]
fn zero_sized_values_and_the_default_cell_work() {
    static BUDGET: LeakBudget = LeakBudget::named("zst", 1 << 20);
    let unit: LeakOnce<()> = LeakOnce::in_budget(&BUDGET);
    assert!(unit.get().is_none());
    unit.set(()).unwrap();
    assert!(unit.get().is_some());
    assert_eq!(BUDGET.reserved(), 0, "a zero-sized value charges nothing");

    let global: LeakOnce<u8> = LeakOnce::default();
    assert_eq!(*global.get_or_init(|| 5).unwrap(), 5);
}

#[test]
fn debug_shows_the_value_and_the_budget() {
    static BUDGET: LeakBudget = LeakBudget::named("debug", 1 << 20);
    let cell: LeakOnce<u32> = LeakOnce::in_budget(&BUDGET);
    assert_eq!(format!("{cell:?}"), r#"LeakOnce { value: <empty>, budget: "debug", .. }"#);
    cell.set(3).unwrap();
    assert_eq!(format!("{cell:?}"), r#"LeakOnce { value: 3, budget: "debug", .. }"#);
    assert!(format!("{:?}", LeakOnce::<u32>::new()).contains(r#"budget: "global""#));
}

#[test]
fn leak_once_evaluates_each_call_site_once_across_threads() {
    static BUDGET: LeakBudget = LeakBudget::named("site", 1 << 20);
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    fn shared() -> &'static Mutex<Vec<usize>> {
        leak_once!(in &BUDGET, {
            RUNS.fetch_add(1, Relaxed);
            Mutex::new(Vec::new())
        })
        .unwrap()
    }
    fn other_site() -> &'static Mutex<Vec<usize>> {
        leak_once!(in &BUDGET, Mutex::new(vec![usize::MAX])).unwrap()
    }

    let threads = scaled(8, 3);
    let start = Barrier::new(threads);
    thread::scope(|s| {
        for t in 0..threads {
            let start = &start;
            s.spawn(move || {
                start.wait();
                shared().lock().unwrap().push(t);
            });
        }
    });
    assert_eq!(RUNS.load(Relaxed), 1);
    assert_eq!(shared().lock().unwrap().len(), threads, "every thread pushed into the same vector");
    assert!(!ptr::eq(shared(), other_site()), "each call site has its own value");
    assert_eq!(BUDGET.stats().allocations, 2);

    // A loop is one call site.
    let addresses: Vec<usize> = (0..3).map(|i| ptr::from_ref(leak_once!(in &BUDGET, i).unwrap()).addr()).collect();
    assert!(addresses.iter().all(|a| *a == addresses[0]));
    // The global form.
    let global: &'static str = leak_once!("in the global budget".to_owned()).unwrap();
    assert_eq!(global, "in the global budget");
}

#[test]
fn leak_once_gives_a_refused_value_back_and_evaluates_again() {
    static NONE: LeakBudget = LeakBudget::named("none", 0);
    let mut runs = 0;
    for _ in 0..2 {
        let refused = leak_once!(in &NONE, {
            runs += 1;
            [runs; 4]
        })
        .unwrap_err();
        assert_eq!(refused.into_inner(), [runs; 4]);
    }
    assert_eq!(runs, 2);
}

#[test]
fn leak_once_detects_re_entrancy_and_recovers_from_a_panic() {
    static BUDGET: LeakBudget = LeakBudget::named("site-panics", 1 << 20);
    fn recursive(depth: u32) -> u32 {
        *leak_once!(in &BUDGET, if depth == 0 { recursive(depth + 1) } else { depth }).unwrap()
    }
    let message = panic_message(&*panic::catch_unwind(|| recursive(0)).unwrap_err());
    assert!(message.starts_with("re-entrant initialisation of the `leak_once!` at tests/it/once.rs:"), "{message}");

    let fail = AtomicBool::new(true);
    let site = || *leak_once!(in &BUDGET, if fail.load(Relaxed) { panic!("not yet") } else { 11_u8 }).unwrap();
    assert_eq!(panic_message(&*panic::catch_unwind(site).unwrap_err()), "not yet");
    fail.store(false, Relaxed);
    assert_eq!(site(), 11);
    assert_eq!(BUDGET.stats().allocations, 1);
}

#[test]
fn leak_once_in_a_generic_function_is_one_cell_for_all_types() {
    static BUDGET: LeakBudget = LeakBudget::named("generic", 1 << 20);
    fn default_of<T: Default + Sync + 'static>() -> &'static T {
        leak_once!(in &BUDGET, T::default()).unwrap()
    }
    assert_eq!(*default_of::<u32>(), 0);
    assert!(ptr::eq(default_of::<u32>(), default_of::<u32>()));
    let message = panic_message(&*panic::catch_unwind(default_of::<String>).unwrap_err());
    assert!(
        message.contains("holds a value of type `u32` and was reached for a `alloc::string::String`")
            && message.contains("use a `LeakOnce<T>` per type"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------------------------------
// `LeakLazy`.

thread_local! {
    /// Where this thread's last panic was raised (file and line), recorded by the hook [`panic_site`] installs.
    static PANICKED_AT: std::cell::RefCell<Option<(String, u32)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f`, which must panic, and returns its message and where the panic was raised. A panic hook, installed once
/// and passing every panic on to the hook that was there before, records the location (a payload has none).
fn panic_site(f: impl FnOnce()) -> (String, String, u32) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if let Some(location) = info.location() {
                let _ =
                    PANICKED_AT.try_with(|at| *at.borrow_mut() = Some((location.file().to_owned(), location.line())));
            }
            previous(info);
        }));
    });
    PANICKED_AT.with(|at| at.borrow_mut().take());
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).expect_err("the call must panic");
    let (file, line) = PANICKED_AT.with(|at| at.borrow_mut().take()).expect("the hook saw the panic");
    (panic_message(&*payload), file, line)
}

#[test]
fn leak_lazy_runs_its_initialiser_once_under_contention() {
    static BUDGET: LeakBudget = LeakBudget::named("lazy contention", 1 << 20);
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    static LAZY: LeakLazy<[u64; 8]> = LeakLazy::in_budget(&BUDGET, || {
        let run = RUNS.fetch_add(1, Relaxed) as u64;
        let_others_run();
        [run; 8]
    });

    let threads = scaled(8, 4);
    let start = Barrier::new(threads);
    let addresses: Vec<usize> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    // Half through `Deref`, half through `force`: the same value either way.
                    let value: &[u64; 8] = if t % 2 == 0 { &LAZY } else { LeakLazy::force(&LAZY) };
                    assert_eq!(*value, [0; 8]);
                    ptr::from_ref(value).addr()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(RUNS.load(Relaxed), 1, "the initialiser ran once");
    assert!(addresses.iter().all(|&a| a == addresses[0]), "{addresses:x?}");
    assert_eq!(LeakLazy::get(&LAZY).map(|v| ptr::from_ref(v).addr()), Some(addresses[0]));
    let stats = BUDGET.stats();
    assert_eq!((stats.allocations, stats.used), (1, size_of::<[u64; 8]>()), "charged once\n{stats}");
}

#[test]
fn a_panicking_leak_lazy_initialiser_is_retried_on_the_next_access() {
    static BUDGET: LeakBudget = LeakBudget::named("lazy retry", 1 << 20);
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static LAZY: LeakLazy<String> = LeakLazy::in_budget(&BUDGET, || {
        assert_ne!(CALLS.fetch_add(1, Relaxed), 0, "the first attempt fails");
        "second attempt".to_owned()
    });

    let ended = panic::catch_unwind(|| LAZY.len());
    assert!(panic_message(&*ended.unwrap_err()).contains("the first attempt fails"));
    // No poisoning: nothing stored or charged, and the next access runs the initialiser again.
    assert!(LeakLazy::get(&LAZY).is_none());
    assert_eq!((BUDGET.reserved(), BUDGET.stats().allocations), (0, 0));
    assert_eq!(*LAZY, "second attempt");
    assert_eq!(LeakLazy::force(&LAZY), "second attempt");
    assert_eq!(CALLS.load(Relaxed), 2, "stored once, never computed again");
    assert_eq!(BUDGET.stats().allocations, 1);
}

#[test]
fn a_leak_lazy_whose_initialiser_reads_itself_panics_instead_of_waiting() {
    static BUDGET: LeakBudget = LeakBudget::named("lazy re-entry", 1 << 20);
    static LAZY: LeakLazy<u32> = LeakLazy::in_budget(&BUDGET, || *LAZY + 1);
    let ended = crate::support::bounded(|| *LAZY);
    let message = panic_message(&*ended.expect_err("re-entry must panic"));
    assert!(message.starts_with("re-entrant initialisation of a `LeakLazy<u32>`"), "{message}");
    assert!(LeakLazy::get(&LAZY).is_none());
    assert_eq!(BUDGET.reserved(), 0);
}

#[test]
fn a_refused_leak_lazy_panics_at_the_callers_line_naming_the_budget() {
    static NONE: LeakBudget = LeakBudget::named("lazy refusals", 0);
    static LAZY: LeakLazy<[u8; 64]> = LeakLazy::in_budget(&NONE, || [1; 64]);

    let line = line!() + 2;
    let (message, file, at) = panic_site(|| {
        let _ = LeakLazy::force(&LAZY);
    });
    assert_eq!((file.as_str(), at), (file!(), line), "force: the panic points at its caller");
    for needle in ["LeakLazy<[u8; 64]>", "`lazy refusals`", "64-byte value", "set_limit", "LeakLazy::try_force"] {
        assert!(message.contains(needle), "{needle:?} missing from {message:?}");
    }
    let line = line!() + 1;
    let (deref_message, file, at) = panic_site(|| assert_eq!(LAZY[0], 1));
    assert_eq!((file.as_str(), at), (file!(), line), "Deref: the panic points at its caller");
    assert_eq!(deref_message, message);
    assert!(LeakLazy::get(&LAZY).is_none());
    assert_eq!((NONE.reserved(), NONE.stats().rejections), (0, 2));
}

#[test]
fn try_force_gives_a_refused_value_back_and_get_sees_only_a_stored_value() {
    let budget = crate::support::budget(0);
    let calls = AtomicUsize::new(0);
    let lazy = LeakLazy::in_budget(budget, || {
        calls.fetch_add(1, Relaxed);
        vec![7u32; 3]
    });
    assert!(LeakLazy::get(&lazy).is_none());
    assert_eq!(format!("{lazy:?}"), "LeakLazy { value: <not computed>, .. }");

    let refused = LeakLazy::try_force(&lazy).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { budget: "test", .. }), "{refused}");
    assert_eq!(refused.into_inner(), [7, 7, 7]);
    assert!(LeakLazy::get(&lazy).is_none());

    budget.set_limit(4096).unwrap();
    let value: &'static Vec<u32> = LeakLazy::try_force(&lazy).unwrap();
    assert_eq!(calls.load(Relaxed), 2, "the refused value was computed, the stored one once more");
    assert!(ptr::eq(LeakLazy::get(&lazy).unwrap(), value));
    assert!(ptr::eq(LeakLazy::force(&lazy), value));
    assert!(ptr::eq(&*lazy, value));
    assert_eq!(calls.load(Relaxed), 2);
    assert_eq!(format!("{lazy:?}"), "LeakLazy { value: [7, 7, 7], .. }");
}

#[test]
fn a_leak_lazy_on_the_global_budget() {
    static GREETING: LeakLazy<String> = LeakLazy::new(|| "hello".repeat(2));
    assert!(LeakLazy::get(&GREETING).is_none());
    assert_eq!(*GREETING, "hellohello");
    assert_eq!(LeakLazy::get(&GREETING).map(String::as_str), Some("hellohello"));
}
