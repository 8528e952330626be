//! Loom model of charges up a tree of three levels racing a prepaid child's creation for the root's last bytes, with a
//! report taken during the race.
//!
//! `root` ← `middle` ← `leaf`, and `prepaid` (a prepaid child of `middle`). A leak into `leaf` charges `leaf`, then
//! `middle`, then `root`, and rolls the lower levels back if `root` refuses; registering `prepaid` charges its whole
//! limit to `middle` and `root` the same way. The root has room for one of the two, never both.

use core::alloc::Layout;

use leak_budget::{LeakBudget, LeakError, Report};
use loom::thread;

use crate::{Bounds, budget, child};

/// A value that takes a dedicated block, whose charge is exact: 600 bytes and a 16-byte header.
const LARGE: usize = 600;
const BLOCK: usize = LARGE + 16;
/// The prepaid child's limit.
const PREPAID: usize = 1024;

fn layout() -> Layout {
    Layout::from_size_align(LARGE, 8).unwrap()
}

/// What a thread's first `LARGE` request charges: a lane and the block. Measured on a scratch budget, because the
/// lane's size differs under loom.
fn lane_and_block() -> usize {
    let scratch = budget("scratch", 1 << 20);
    scratch.leak_layout(layout()).unwrap();
    scratch.reserved() - LeakBudget::RECORD_BYTES
}

/// Every entry's total is its own bytes plus its children's shares, and within its limit.
fn assert_adds_up(report: &Report) {
    for (index, entry) in report.entries().iter().enumerate() {
        let shares: usize = report.children(index).map(|(_, child)| child.charged_to_parent()).sum();
        assert_eq!(entry.total.reserved, entry.own.reserved + shares, "{report}");
        assert!(entry.total.reserved <= entry.limit, "{report}");
        assert!(entry.own.used <= entry.own.reserved, "{report}");
    }
}

#[test]
fn charges_up_three_levels_race_a_prepaid_childs_creation_for_the_roots_last_bytes() {
    crate::model(Bounds::CI, || {
        let record = LeakBudget::RECORD_BYTES;
        let first = lane_and_block();
        // Records of root, middle and leaf, and room for the prepaid child's limit and the leaf's block, less one byte:
        // whichever charges the root first makes the other's last charge fail there. (Room for the block alone is the
        // right figure: a leaf with no room for a lane is still served, in a block of its own, while the block fits.)
        let root = budget("root", 3 * record + PREPAID + BLOCK - 1);
        let middle = child(root, "middle", 1 << 20);
        let leaf = child(middle, "leaf", 1 << 20);
        let prepaid: &'static LeakBudget =
            Box::leak(Box::new(LeakBudget::prepaid_child_of(middle, "prepaid", PREPAID)));
        leaf.register().unwrap();
        assert_eq!(root.reserved(), 3 * record);

        let leaker = thread::spawn(move || leaf.leak_layout(layout()).map(|_| ()));
        let registered = prepaid.register();
        // Taken while the leaf's charges may be under way, some of them perhaps to be rolled back.
        let report = root.report();
        assert_adds_up(&report);
        assert!(report.is_consistent());
        let leaked = leaker.join().unwrap();

        assert!(registered.is_ok() != leaked.is_ok(), "exactly one fits: {registered:?} {leaked:?}");
        for refused in [&registered, &leaked].into_iter().filter_map(|result| result.as_ref().err()) {
            assert!(matches!(refused, LeakError::BudgetExceeded { budget: "root", .. }), "{refused:?}");
        }
        let prepaid_share = if registered.is_ok() { PREPAID } else { 0 };
        if leaked.is_err() {
            // Refused before its lane was made (the check saw the prepaid child's charge), or after: then only the
            // block's charge was rolled back, at every level.
            assert!(leaf.reserved() == record || leaf.reserved() == first - BLOCK + record, "{}", leaf.reserved());
            assert_eq!(leaf.stats().rejections, 1);
        } else {
            assert_eq!(leaf.reserved(), record + first);
            assert_eq!((prepaid.reserved(), prepaid.stats().rejections), (0, 0), "a refused register changes nothing");
        }
        assert_eq!(middle.reserved(), record + leaf.reserved() + prepaid_share);
        assert_eq!(root.reserved(), record + middle.reserved());
        for level in [root, middle, leaf, prepaid] {
            assert!(level.reserved() <= level.limit());
        }
        let report = root.report();
        assert_adds_up(&report);
        assert_eq!(report.entries()[0].total.reserved, root.reserved());
        assert_eq!(report.len(), 3 + usize::from(registered.is_ok()));

        // A prepaid child's own charges stop at itself.
        if registered.is_ok() {
            let before = (middle.reserved(), root.reserved());
            prepaid.leak(1u64).unwrap();
            assert_eq!((middle.reserved(), root.reserved()), before);
        }
    });
}
