//! Loom models: budget trees and the report.
//!
//! - Two children of one parent race for the parent's last bytes while the main thread watches every level: exactly
//!   one child's request fails (the one whose charge reached the parent second), the failed request leaves its child
//!   as it was, every level stays within its limit, and the totals add up.
//! - A report taken while two children race: whatever the interleaving, its figures add up and stay within limits.
//! - First requests on a child and on its parent at once: the child's creates the parent's record (top-down) while
//!   the other thread may be creating it too; each record is created once, and every charge lands once.

use core::alloc::Layout;

use leak_budget::{LeakBudget, LeakError, Report};
use loom::thread;

use crate::budget;

/// A first request: too large for a lane's first chunk, so it takes a lane and a dedicated block.
const FIRST: usize = 600;
/// A second request on the same lane: a dedicated block again (the lane still has no chunk).
const SECOND: usize = 1200;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// A `'static` child for one model execution.
fn child(parent: &'static LeakBudget, name: &'static str, limit: usize) -> &'static LeakBudget {
    Box::leak(Box::new(LeakBudget::child_of(parent, name, limit)))
}

/// What a thread's first and second request charge (lane and block, then block), measured on a scratch budget, so
/// the model does not depend on the sizes of loom's atomics.
fn costs() -> (usize, usize) {
    let scratch = budget("scratch", 1 << 20);
    scratch.leak_layout(layout(FIRST)).unwrap();
    let first = scratch.reserved() - LeakBudget::RECORD_BYTES;
    scratch.leak_layout(layout(SECOND)).unwrap();
    (first, scratch.reserved() - LeakBudget::RECORD_BYTES - first)
}

fn assert_adds_up(report: &Report) {
    for (index, entry) in report.entries().iter().enumerate() {
        let shares: usize = report.children(index).map(|(_, child)| child.charged_to_parent()).sum();
        assert_eq!(entry.total.reserved, entry.own.reserved + shares, "{report}");
        assert!(entry.total.reserved <= entry.limit, "{report}");
        assert!(entry.own.used <= entry.own.reserved, "{report}");
    }
}

#[test]
fn two_children_race_for_the_parents_last_bytes() {
    loom::model(|| {
        let (first, second) = costs();
        let record = LeakBudget::RECORD_BYTES;
        // Room for both first requests and one second request, not two.
        let parent = budget("parent", 3 * record + 2 * first + second + second / 2);
        // Ceilings far above what the parent can give.
        let (a, b) = (child(parent, "a", 1 << 20), child(parent, "b", 1 << 20));
        a.register().unwrap();
        b.register().unwrap();

        let racers: Vec<_> = [a, b]
            .into_iter()
            .map(|budget| {
                thread::spawn(move || {
                    budget.leak_layout(layout(FIRST)).expect("the first requests always fit");
                    budget.leak_layout(layout(SECOND)).map(|_| ())
                })
            })
            .collect();

        for level in [parent, a, b] {
            assert!(level.reserved() <= level.limit());
        }

        let results: Vec<Result<(), LeakError>> = racers.into_iter().map(|racer| racer.join().unwrap()).collect();
        let failed: Vec<usize> = (0..2).filter(|&i| results[i].is_err()).collect();
        assert_eq!(failed.len(), 1, "exactly one request fails: {results:?}");
        let (loser, winner) = if failed[0] == 0 { (a, b) } else { (b, a) };
        match results[failed[0]].clone().unwrap_err() {
            LeakError::BudgetExceeded { budget, requested, remaining, .. } => {
                assert_eq!(budget, "parent", "the parent refuses, not the child");
                assert_eq!(requested, second);
                assert!(remaining < second);
            }
            other => panic!("unexpected {other:?}"),
        }
        // The failed request changed nothing but its child's rejection count.
        assert_eq!(loser.reserved(), record + first);
        assert_eq!(loser.stats().rejections, 1);
        assert_eq!(winner.reserved(), record + first + second);
        assert_eq!(parent.reserved(), record + a.reserved() + b.reserved());
        assert!(parent.reserved() <= parent.limit());

        let report = parent.report();
        assert_adds_up(&report);
        assert_eq!(report.entries()[0].total.reserved, parent.reserved());
        assert_eq!(report.entries()[0].total.rejections, 1);
    });
}

#[test]
fn a_report_taken_during_the_race_adds_up() {
    loom::model(|| {
        let (first, _) = costs();
        let record = LeakBudget::RECORD_BYTES;
        // Room for one child's first request, not both.
        let parent = budget("parent", 3 * record + first + first / 2);
        let (a, b) = (child(parent, "a", 1 << 20), child(parent, "b", 1 << 20));
        a.register().unwrap();
        b.register().unwrap();

        let racers: Vec<_> =
            [a, b].into_iter().map(|budget| thread::spawn(move || budget.leak_layout(layout(FIRST)).is_ok())).collect();
        let report = parent.report();
        assert_adds_up(&report);
        assert_eq!(report.len(), 3);

        let served = racers.into_iter().map(|racer| racer.join().unwrap()).filter(|&ok| ok).count();
        assert!(served <= 1);
        let report = parent.report();
        assert_adds_up(&report);
        assert_eq!(report.entries()[0].total.reserved, parent.reserved());
    });
}

#[test]
fn first_requests_on_a_child_and_its_parent_create_each_record_once() {
    loom::model(|| {
        // What a thread's first leak of a `u64` charges besides the record: its lane and a first chunk.
        let scratch = budget("scratch", 64 << 10);
        scratch.leak(0u64).unwrap();
        let first = scratch.reserved() - LeakBudget::RECORD_BYTES;
        let record = LeakBudget::RECORD_BYTES;

        let parent = budget("parent", 64 << 10);
        let kid = child(parent, "child", 64 << 10);
        let workers: Vec<_> =
            [kid, parent].into_iter().map(|budget| thread::spawn(move || *budget.leak(7u64).unwrap())).collect();
        for worker in workers {
            assert_eq!(worker.join().unwrap(), 7);
        }
        // One record each (a second parent record would have been charged too), and each thread's lane and chunk.
        assert_eq!(kid.reserved(), record + first);
        assert_eq!(parent.reserved(), 2 * record + 2 * first);
        let report = parent.report();
        assert_adds_up(&report);
        assert_eq!(report.len(), 2);
        assert_eq!(report.entries()[0].total.reserved, parent.reserved());
    });
}
