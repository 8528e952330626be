//! A budget whose limit one thread raises and lowers (below what is reserved, while room is left under the old limit)
//! as other threads leak mixed requests: the bytes held from the allocator stay within a bound that follows the limit
//! in force, checked at every allocation.
//!
//! What "in force" means for a request racing `set_limit`: a charge completes under the limit its successful attempt
//! read, so a request that started before `set_limit(limit)` returned may still charge under the old limit. Once every
//! request running then has finished (each worker counts the requests it starts and finishes), every charge reads
//! `limit`, so `reserved`, and the bytes held, which it bounds, never exceed `max(reserved then, limit)`: after a
//! lowering they never grow while above the limit. While a change settles, the bound is the larger of the old bound and
//! the new limit. Workers leak in batches, each change made halfway through one, so that the budget does not fill up
//! faster than the limit changes.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;

use leak_budget::{LeakBudget, LeakError};

use crate::support::{Rng, scaled};
use crate::values::{Leaked, intact, random_request};
use crate::{assert_cap_held, assert_disjoint_and_counted, bound_held, lib, start_case, watch};

/// One worker's requests: how many it may start, has started and has finished. The case hands out requests in
/// batches, so that the budget does not fill up faster than the limit is changed.
#[derive(Default)]
struct Worker {
    allowed: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// Waits until each worker has finished as many requests as its entry of `targets`.
fn wait_until_finished(workers: &[Worker], targets: &[usize]) {
    for (worker, &target) in workers.iter().zip(targets) {
        while worker.finished.load(SeqCst) < target {
            thread::yield_now();
        }
    }
}

/// Each worker's count of `which` requests, less `less`.
fn counts(workers: &[Worker], which: impl Fn(&Worker) -> &AtomicUsize, less: usize) -> Vec<usize> {
    workers.iter().map(|worker| which(worker).load(SeqCst) - less).collect()
}

pub(crate) fn a_limit_changed_under_load_bounds_the_bytes_held() -> String {
    let threads = scaled(3, 2);
    let rounds = scaled(60, 2);
    let batch = scaled(12, 3);
    let highest = scaled(16 << 20, 256 << 10);
    // Room enough after each raise that the workers are still served when the limit is lowered again.
    let room = highest / 16;
    start_case(highest);
    let budget = LeakBudget::named("cap", room);
    watch(&budget);
    bound_held(room);
    lib(|| budget.leak(0u8)).expect("the first byte fits");

    let workers: Vec<Worker> = (0..threads).map(|_| Worker::default()).collect();
    let stop = AtomicBool::new(false);
    let (mut lowered_below, mut bound) = (0, room);
    let runs: Vec<Vec<Leaked>> = thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter()
            .enumerate()
            .map(|(t, worker)| {
                let (budget, stop) = (&budget, &stop);
                scope.spawn(move || {
                    let mut rng = Rng::new(500 + t as u64);
                    let mut leaked = Vec::new();
                    while !stop.load(SeqCst) {
                        if worker.started.load(SeqCst) == worker.allowed.load(SeqCst) {
                            thread::yield_now();
                            continue;
                        }
                        worker.started.fetch_add(1, SeqCst);
                        match random_request(budget, &mut rng).1 {
                            Ok(value) if !value.bytes.is_empty() => leaked.push(value),
                            Ok(_) | Err(LeakError::BudgetExceeded { .. }) => {}
                            Err(other) => panic!("unexpected error: {other}"),
                        }
                        worker.finished.fetch_add(1, SeqCst);
                    }
                    leaked
                })
            })
            .collect();
        // Sets the limit while the workers are halfway through a batch, then moves the bound: the larger of the old
        // bound and the new limit while requests that started before the change may still charge under the old one,
        // then `max(reserved, limit)` once they have finished. Returns whether `reserved` was above the new limit.
        let mut change = |limit: usize| {
            for worker in &workers {
                worker.allowed.fetch_add(batch, SeqCst);
            }
            wait_until_finished(&workers, &counts(&workers, |w| &w.allowed, batch / 2));
            bound = bound.max(limit);
            bound_held(bound);
            budget.set_limit(limit).expect("a root budget takes any limit");
            wait_until_finished(&workers, &counts(&workers, |w| &w.started, 0));
            let reserved = budget.reserved();
            bound = reserved.max(limit);
            bound_held(bound);
            // The rest of the batch runs under this limit, every allocation checked against the bound.
            wait_until_finished(&workers, &counts(&workers, |w| &w.allowed, 0));
            reserved > limit
        };
        // A failed check must not leave the workers running: stop them, then report it.
        let changes = catch_unwind(AssertUnwindSafe(|| {
            for _ in 0..rounds {
                change((budget.reserved() + room).min(highest));
                // Lowered while there is room under the old limit: the workers' next requests must not be charged.
                lowered_below += usize::from(change(budget.reserved() / 2));
            }
        }));
        stop.store(true, SeqCst);
        let runs = handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| resume_unwind(panic))).collect();
        if let Err(panic) = changes {
            resume_unwind(panic);
        }
        runs
    });
    bound_held(usize::MAX);
    // The case's limit is the highest it had, for the checks below.
    budget.set_limit(highest).unwrap();

    let leaked: Vec<&Leaked> = runs.iter().flatten().collect();
    assert!(leaked.iter().all(|l| intact(l.bytes, l.seed, l.ascii)), "leaked contents were overwritten");
    assert_disjoint_and_counted(leaked.iter().map(|l| (l.bytes.as_ptr().addr(), l.bytes.len())).collect());
    assert_eq!(lowered_below, rounds, "every other change lowers the limit below what is reserved");
    let summary = assert_cap_held(&budget);
    format!("{summary}; {} changes of the limit, {threads} threads leaking, {} values", 2 * rounds, leaked.len())
}
