//! Loom models of creating budgets' records (accounts): a grandchild's first request creates its ancestors' records
//! while a request into its parent creates the same ones, and requests refused before a record exists (counted in
//! `early_rejections`) racing the record's creation, which hands them over to it.

use leak_budget::{LeakBudget, Report};
use loom::thread;

use crate::{Bounds, budget, child};

/// Every entry's total is its own bytes plus its children's shares, and within its limit.
fn assert_adds_up(report: &Report) {
    for (index, entry) in report.entries().iter().enumerate() {
        let shares: usize = report.children(index).map(|(_, child)| child.charged_to_parent()).sum();
        assert_eq!(entry.total.reserved, entry.own.reserved + shares, "{report}");
        assert!(entry.total.reserved <= entry.limit, "{report}");
    }
}

#[test]
fn records_created_concurrently_down_a_tree_are_created_once_each() {
    // Nothing has a record yet: the leaf's first request creates the root's, the middle's and its own, while a
    // request into the middle creates the root's and the middle's.
    crate::model(Bounds::CI, || {
        let root = budget("root", 64 << 10);
        let middle = child(root, "middle", 64 << 10);
        let leaf = child(middle, "leaf", 64 << 10);
        let deep = thread::spawn(move || *leaf.leak(1u64).unwrap());
        assert_eq!(*middle.leak(2u64).unwrap(), 2);
        assert_eq!(deep.join().unwrap(), 1);

        let report = root.report();
        assert_adds_up(&report);
        let names: Vec<&str> = report.iter().map(|entry| entry.name).collect();
        assert_eq!(names, ["root", "middle", "leaf"], "one record each");
        assert_eq!(report.entries()[0].total.reserved, root.reserved());
        assert_eq!(root.reserved(), LeakBudget::RECORD_BYTES + middle.reserved());
        for (budget, allocations) in [(root, 0), (middle, 1), (leaf, 1)] {
            let stats = budget.stats();
            assert_eq!((stats.allocations, stats.used), (allocations, 8 * allocations), "{stats:?}");
        }
        assert_eq!(report.entries()[0].total.allocations, 2);
    });
}

#[test]
fn requests_refused_while_the_record_is_created_are_counted_once_everywhere() {
    // A child whose limit fits its record, a lane and a small value, not a 600-byte one. One thread's 600-byte request
    // is refused before the child has a record (so it is counted in `early_rejections`), while another thread's small
    // request creates the record, which takes the early rejections over (`early_rejections.swap(0)`).
    //
    // The interleaving that fails: the refused request's `refuse()` finds no record (`existing_account()` is null),
    // then the other thread creates the record, swaps `early_rejections` (still 0) into it and publishes it, then the
    // refused request adds its rejection to `early_rejections`, where nothing moves it again. `stats()` and the
    // child's own report add `early_rejections` and count it; a report of the parent (or `leak_budget::report()`)
    // only reads records, and misses it for good.
    crate::model(Bounds::CI, || {
        let parent = budget("parent", 64 << 10);
        parent.register().unwrap();
        let lane_and_chunk = LeakBudget::max_charge_for(core::alloc::Layout::new::<u64>());
        let small = child(parent, "small", LeakBudget::RECORD_BYTES + lane_and_chunk);
        let refused = thread::spawn(move || small.leak([0u8; 600]).is_err());
        assert_eq!(*small.leak(7u64).unwrap(), 7);
        assert!(refused.join().unwrap(), "600 bytes never fit");

        assert_eq!(small.stats().rejections, 1);
        assert_eq!(small.report().entries()[0].total.rejections, 1);
        let report = parent.report();
        let entry = report.find("small").expect("the small budget has a record");
        assert_eq!(entry.total.rejections, 1, "the parent's report counts the refusal\n{report}");
        assert_eq!(report.entries()[0].total.rejections, 1, "{report}");
    });
}
