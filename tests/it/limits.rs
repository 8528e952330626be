//! `LeakBudget::set_limit`: raising a limit lets a budget serve, lowering it below `reserved` refuses every request
//! that needs a new charge (values that fit in room already charged are still served), a prepaid child's limit is
//! fixed once its record exists, and the figures and the report show the limit in force.
//!
//! The restated cap, under threads: once a `set_limit(limit)` has returned and every request that was running then
//! has finished, `reserved` never exceeds `max(reserved at that point, limit)`; so it never grows while it is above
//! the limit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;

use leak_budget::{LeakBudget, LeakError};

use crate::support::{Rng, bounded, budget, leaked, scaled};

#[test]
fn raising_a_zero_limit_lets_the_budget_serve_and_the_figures_show_it() {
    let budget = budget(0);
    let refused = budget.leak(7u64).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { limit: 0, remaining: 0, .. }));
    assert_eq!(budget.reserved(), 0);

    budget.set_limit(64 << 10).unwrap();
    assert_eq!((budget.limit(), budget.remaining()), (64 << 10, 64 << 10));
    assert_eq!(*budget.leak(7u64).unwrap(), 7);
    let stats = budget.stats();
    assert_eq!((stats.limit, stats.used, stats.allocations, stats.rejections), (64 << 10, 8, 1, 1), "{stats}");
    assert!(stats.reserved <= stats.limit);

    // The record exists now: the change goes to it, and every view of the budget shows it.
    budget.set_limit(96 << 10).unwrap();
    assert_eq!((budget.limit(), budget.stats().limit), (96 << 10, 96 << 10));
    assert_eq!(budget.remaining(), (96 << 10) - budget.reserved());
    let report = budget.report();
    assert_eq!(report.entries()[0].limit, 96 << 10, "{report}");
    assert!(report.to_string().contains("96.00 KiB"), "{report}");
    assert!(budget.to_string().ends_with("/ 96.00 KiB"), "{budget}");
    assert!(format!("{budget:?}").contains(&format!("limit: {}", 96 << 10)), "{budget:?}");
}

#[test]
fn a_limit_set_before_the_first_request_is_the_one_the_record_gets() {
    let budget = budget(1 << 20);
    budget.set_limit(100).unwrap();
    assert_eq!(budget.limit(), 100);
    // Too small for the record and a value: refused, nothing created.
    let error = budget.leak(1u64).unwrap_err().into_parts().1;
    assert!(matches!(error, LeakError::BudgetExceeded { limit: 100, .. }), "{error}");
    assert_eq!(budget.reserved(), 0);

    budget.set_limit(4096).unwrap();
    budget.leak(1u64).unwrap();
    let stats = budget.stats();
    assert_eq!(stats.limit, 4096);
    assert!(stats.reserved > LeakBudget::RECORD_BYTES && stats.reserved <= 4096, "{stats}");
}

#[test]
fn below_reserved_only_room_already_charged_serves() {
    let budget = budget(1 << 20);
    budget.leak(0u64).unwrap();
    let reserved = budget.reserved();
    budget.set_limit(0).unwrap();
    assert_eq!((budget.limit(), budget.remaining(), budget.reserved()), (0, 0, reserved));

    // Anything that needs a new charge is refused: a value too large for the chunk, a thread without a lane.
    let error = budget.leak([0u8; 8192]).unwrap_err().into_parts().1;
    assert!(matches!(error, LeakError::BudgetExceeded { limit: 0, remaining: 0, .. }), "{error}");
    let from_another_thread = thread::spawn(move || budget.leak(1u64).map(|_| ()).map_err(|r| r.into_parts().1));
    assert!(matches!(from_another_thread.join().unwrap(), Err(LeakError::BudgetExceeded { .. })));
    assert_eq!(budget.reserved(), reserved);

    // Small values still fit in this thread's chunk, charged before the limit was lowered; then it runs out.
    let mut served = 0;
    loop {
        match budget.leak(1u64) {
            Ok(_) => served += 1,
            Err(refused) => {
                assert!(matches!(refused.error(), LeakError::BudgetExceeded { limit: 0, .. }));
                break;
            }
        }
        assert_eq!(budget.reserved(), reserved, "nothing new is charged while reserved > limit");
        assert!(served < reserved / 8, "more u64s served than the bytes charged could hold");
    }
    assert!(served > 0, "the rest of the chunk serves");
    let stats = budget.stats();
    assert_eq!((stats.reserved, stats.peak_reserved, stats.rejections), (reserved, reserved, 3), "{stats}");

    // Raised again: served, and the new charges stay within the new limit.
    budget.set_limit(reserved + (64 << 10)).unwrap();
    assert_eq!(budget.leak_str(&"x".repeat(8192)).unwrap().len(), 8192);
    thread::spawn(move || budget.leak(2u64).map(|v| *v).unwrap()).join().unwrap();
    assert!(budget.reserved() > reserved && budget.reserved() <= budget.limit());
}

#[test]
fn a_limit_equal_to_reserved_refuses_new_charges_and_keeps_figures() {
    let budget = budget(1 << 20);
    budget.leak(0u8).unwrap();
    let before = budget.stats();
    budget.set_limit(before.reserved).unwrap();
    assert_eq!(budget.remaining(), 0);
    assert!(budget.leak_uninit_slice::<u8>(16 << 10).is_err());
    let after = budget.stats();
    assert_eq!((after.reserved, after.used, after.limit), (before.reserved, before.used, before.reserved));
}

#[test]
fn a_prepaid_childs_limit_may_change_until_its_record_exists() {
    let parent = budget(1 << 20);
    let child = leaked(LeakBudget::prepaid_child_of(parent, "prepaid child", 64 << 10));
    child.set_limit(32 << 10).unwrap();
    assert_eq!(child.limit(), 32 << 10);
    child.register().unwrap();
    // The limit last set is what was prepaid: the parent holds its own record and that limit.
    assert_eq!(parent.reserved(), LeakBudget::RECORD_BYTES + (32 << 10));

    let error = child.set_limit(64 << 10).unwrap_err();
    assert_eq!(error, LeakError::FixedLimit { budget: "prepaid child" });
    assert!(error.to_string().contains("prepaid child"), "{error}");
    assert_eq!((child.limit(), parent.reserved()), (32 << 10, LeakBudget::RECORD_BYTES + (32 << 10)));
    assert!(child.leak_uninit_slice::<u8>(40 << 10).is_err(), "the child keeps its prepaid limit");

    // A plain child's limit changes with a record too.
    let plain = leaked(LeakBudget::child_of(parent, "plain child", 64 << 10));
    plain.leak(1u8).unwrap();
    plain.set_limit(16 << 10).unwrap();
    assert_eq!(plain.limit(), 16 << 10);
}

#[test]
fn a_child_under_a_lowered_parent_is_refused_by_the_parent() {
    let parent = budget(1 << 20);
    let busy = parent.child("busy child", 1 << 20).unwrap();
    busy.leak(1u64).unwrap();
    let idle = parent.child("idle child", 1 << 20).unwrap();
    let reserved = parent.reserved();
    parent.set_limit(0).unwrap();

    // A child without a record cannot create it; one with a record cannot take a new chunk.
    let error = idle.leak(1u64).unwrap_err().into_parts().1;
    assert!(matches!(error, LeakError::BudgetExceeded { budget: "test", limit: 0, .. }), "{error}");
    assert_eq!(idle.reserved(), 0);
    let error = busy.leak_uninit_slice::<u8>(8192).unwrap_err();
    assert!(matches!(error, LeakError::BudgetExceeded { budget: "test", .. }), "{error}");
    assert_eq!(parent.reserved(), reserved);
    // The children's own limits did not change.
    assert_eq!((busy.limit(), idle.limit()), (1 << 20, 1 << 20));

    parent.set_limit(1 << 20).unwrap();
    idle.leak(1u64).unwrap();
    busy.leak_uninit_slice::<u8>(8192).unwrap();
    assert!(parent.reserved() > reserved);
}

#[test]
fn under_load_reserved_never_exceeds_the_bound_of_the_limit_in_force() {
    const WORKERS: usize = 4;
    let ended = bounded(|| {
        let rounds = scaled(24, 4);
        let budget = budget(32 << 10);
        budget.leak(0u8).unwrap();
        // Requests each worker has started: a worker whose count moved past a reading has finished the request it
        // was running at that reading.
        let started: [AtomicUsize; WORKERS] = Default::default();
        let stop = AtomicBool::new(false);
        // Odd while the limit is being changed; even once the change is done and `bound` holds: then reserved must
        // stay at or below `bound`, and the limit at `limit`.
        let epoch = AtomicUsize::new(0);
        let bound = AtomicUsize::new(32 << 10);
        let limit = AtomicUsize::new(32 << 10);
        let (served, checks) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let lowered_while_above = AtomicUsize::new(0);

        thread::scope(|s| {
            // Stops the workers and the monitor however the loop below ends, so a failed check cannot hang the scope.
            let _stop = StopOnDrop(&stop);
            for (t, counter) in started.iter().enumerate() {
                let (stop, served) = (&stop, &served);
                s.spawn(move || {
                    let mut rng = Rng::new(t as u64);
                    while !stop.load(SeqCst) {
                        counter.fetch_add(1, SeqCst);
                        let ok = match rng.below(4) {
                            0 => budget.leak(rng.next_u64()).is_ok(),
                            1 => budget.leak_str(&"s".repeat(rng.below(200))).is_ok(),
                            2 => budget.leak_slice_fill_with(rng.below(64), |i| i as u32).is_ok(),
                            _ => budget.leak_uninit_slice::<u8>(rng.below(3000)).is_ok(),
                        };
                        served.fetch_add(usize::from(ok), SeqCst);
                    }
                });
            }
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    let before = epoch.load(SeqCst);
                    if before % 2 == 1 {
                        thread::yield_now();
                        continue;
                    }
                    let (most, in_force) = (bound.load(SeqCst), limit.load(SeqCst));
                    let (reserved, read_limit) = (budget.reserved(), budget.limit());
                    if epoch.load(SeqCst) == before {
                        assert!(reserved <= most, "reserved {reserved} > bound {most} (limit {in_force})");
                        assert_eq!(read_limit, in_force);
                        checks.fetch_add(1, SeqCst);
                    }
                }
            });

            let wait_for_every_worker = |requests: usize| {
                let seen: Vec<usize> = started.iter().map(|c| c.load(SeqCst)).collect();
                for (counter, seen) in started.iter().zip(seen) {
                    while counter.load(SeqCst) <= seen + requests {
                        thread::yield_now();
                    }
                }
            };
            for round in 0..rounds {
                let reserved = budget.reserved();
                // Alternately below what is reserved, and some room above it.
                let new_limit = if round % 2 == 0 { reserved / 2 } else { reserved + (16 << 10) };
                epoch.fetch_add(1, SeqCst);
                budget.set_limit(new_limit).unwrap();
                // Requests running when `set_limit` returned may still charge under the old limit: wait for them.
                wait_for_every_worker(1);
                let reserved = budget.reserved();
                if reserved > new_limit {
                    lowered_while_above.fetch_add(1, SeqCst);
                }
                bound.store(reserved.max(new_limit), SeqCst);
                limit.store(new_limit, SeqCst);
                epoch.fetch_add(1, SeqCst);
                // Let the workers run under this limit for a while, the monitor checking.
                wait_for_every_worker(scaled(20, 2));
                assert!(budget.reserved() <= reserved.max(new_limit));
            }
        });
        let stats = budget.stats();
        assert!(stats.used <= stats.reserved && stats.peak_reserved >= stats.reserved, "{stats}");
        (served.into_inner(), checks.into_inner(), lowered_while_above.into_inner(), rounds)
    });
    let (served, checks, lowered_while_above, rounds) = ended.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    eprintln!("{rounds} changes of the limit, {served} requests served, {checks} checks of reserved");
    assert!(served > 0 && checks > 0, "{served} served, {checks} checks");
    assert!(lowered_while_above >= rounds / 2, "every other round lowers the limit below reserved");
}

/// Sets its flag when dropped: on the normal end of a scope and when a check in it panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}
