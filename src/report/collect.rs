//! Reading every budget's figures so that they held together at one instant (the double collect), and building the
//! tree from them.
//!
//! # How a snapshot stays consistent
//! Each budget's record keeps, next to the `reserved` counter that enforces its cap, two counters that only grow:
//! `own_charged` (bytes it charged for itself: record, lanes, chunks, dedicated blocks, tables) and `own_refunded`
//! (bytes of those given back, or handed over to a child it was charged for on the child's creation). A report never
//! reads `reserved`: it reads `own = own_charged - own_refunded` for every budget and *derives* each total, bottom-up,
//! as `own + Σ children's share` (a child's share is its total, or its limit if it is prepaid). So the figures of a
//! snapshot add up by construction.
//!
//! To also be figures that held *together*, at one instant, the report reads the registry head and all the counters,
//! reads the counters again, then the head again, and keeps the reading only if nothing changed (a "double collect";
//! counters that only grow cannot change and change back; for a report of one budget, only newly registered
//! descendants count as a change of the head). All those operations are `SeqCst`, and charges raise
//! `reserved` at every level before counting their bytes as own, refunds do the opposite (`src/arena/account.rs`), so at
//! that instant every budget's `reserved` was at least its derived total: each total is `<= limit`. A reading that
//! changed is retried; only the process's slow paths (a lane taking a chunk, a large value, a new lane, record or
//! table) change these counters, so a retry is rare. After [`MAX_COLLECTS`] changed readings in a row the last one is used: it still adds
//! up, but a total may then exceed what was reserved at any one instant by bytes given back and charged again while
//! the report was being read.
//!
//! `used`, `allocations` and `rejections` change on every request (they are not counters a charge moves), so they are
//! read once, before the counters, each the exact value at the moment it was read. Every byte counted in
//! `used` was charged before the report could see it (`Acquire` loads of lanes and dedicated-block counters), so
//! `used <= reserved` holds for every budget's own figures and totals.

use std::collections::HashMap;

use super::{Report, ReportEntry, ReportFigures};
use crate::arena::account::Account;
use crate::arena::record::Record;
use crate::sync::Backoff;

/// How many changed readings in a row the report tolerates before it uses the last one.
const MAX_COLLECTS: usize = 256;

impl Report {
    /// A consistent snapshot of every budget, or of `root` and its descendants.
    pub(super) fn snapshot(root: Option<&'static Record>) -> Self {
        Self::build(Self::collect(root))
    }

    /// Takes a snapshot of the registered budgets; with `root`, of that account and its descendants only.
    /// The nodes of every budget (or of `root` and its descendants), and whether their figures held together.
    fn collect(root: Option<&'static Record>) -> (Vec<Node>, bool) {
        let backoff = Backoff::new();
        let mut changed = 0;
        loop {
            let head = Record::registry();
            // A budget's descendants were all registered after it (a parent's record is created first), so a report
            // of one budget walks the registry (newest first) down to that budget only.
            let mut all: Vec<&'static Record> = Vec::new();
            for record in head.iter() {
                all.push(record);
                if root.is_some_and(|root| core::ptr::eq(record, root)) {
                    break;
                }
            }
            // Oldest first, so every parent comes before its children.
            all.reverse();
            let mut nodes = select(&all, root);
            // `used` and friends first: every byte they count was charged before, so the own counters read next
            // cover it.
            for node in &mut nodes {
                let (used, allocations, _lanes) = node.record.used_and_allocations();
                node.own.used = used;
                node.own.allocations = allocations;
                node.own.rejections = node.record.account.rejections();
                node.peak = node.record.account.peak();
            }
            let mut previous = read_own(&nodes);
            loop {
                let current = read_own(&nodes);
                // Registered since the first reading: for a report of one budget, only its new descendants matter.
                let newer = Record::registry();
                let head_changed = newer != head && newer.since(head).any(|record| within(record, root));
                let consistent = current == previous && !head_changed;
                if consistent || changed >= MAX_COLLECTS {
                    for (node, &(refunded, charged)) in nodes.iter_mut().zip(&current) {
                        node.own.reserved = charged.wrapping_sub(refunded);
                    }
                    return (nodes, consistent);
                }
                changed += 1;
                backoff.snooze();
                if head_changed {
                    break;
                }
                previous = current;
            }
        }
    }

    /// Builds the report: totals bottom-up, then entries in tree order.
    fn build((mut nodes, consistent): (Vec<Node>, bool)) -> Self {
        for node in &mut nodes {
            node.total = node.own;
        }
        // Children come after their parent, so going backwards every child's total is complete before it is added.
        for index in (0..nodes.len()).rev() {
            if let Some(parent) = nodes[index].parent {
                let child = &nodes[index];
                let account = &child.record.account;
                let share = if account.prepaid { account.limit() } else { child.total.reserved };
                let (used, allocations, rejections) =
                    (child.total.used, child.total.allocations, child.total.rejections);
                let total = &mut nodes[parent].total;
                total.reserved = total.reserved.saturating_add(share);
                total.used = total.used.saturating_add(used);
                total.allocations = total.allocations.saturating_add(allocations);
                total.rejections = total.rejections.saturating_add(rejections);
            }
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut roots = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            match node.parent {
                Some(parent) => children[parent].push(index),
                None => roots.push(index),
            }
        }
        let mut entries = Vec::with_capacity(nodes.len());
        let mut stack: Vec<(usize, Option<usize>, usize)> = roots.iter().rev().map(|&root| (root, None, 0)).collect();
        while let Some((index, parent, depth)) = stack.pop() {
            let node = &nodes[index];
            let at = entries.len();
            let account = &node.record.account;
            entries.push(ReportEntry {
                name: account.name,
                parent,
                depth,
                prepaid: account.prepaid,
                limit: account.limit(),
                own: node.own,
                total: node.total,
                peak_reserved: node.peak.max(node.total.reserved),
            });
            stack.extend(children[index].iter().rev().map(|&child| (child, Some(at), depth + 1)));
        }
        Self { entries, consistent }
    }
}

/// One budget being reported, before the tree is laid out.
#[derive(Debug)]
struct Node {
    record: &'static Record,
    /// Index of the parent's node.
    parent: Option<usize>,
    own: ReportFigures,
    total: ReportFigures,
    peak: usize,
}

/// The records of `all` (oldest first) that are `root` or below it (all of them without `root`), with their parents'
/// indices.
fn select(all: &[&'static Record], root: Option<&'static Record>) -> Vec<Node> {
    // Keyed by account: an account knows its parent's account.
    let mut index_of: HashMap<*const Account, usize> = HashMap::new();
    let mut nodes = Vec::new();
    for &record in all {
        let key = core::ptr::from_ref(&record.account);
        let parent = record.account.parent.and_then(|parent| index_of.get(&core::ptr::from_ref(parent)).copied());
        let is_root = root.is_some_and(|root| core::ptr::eq(record, root));
        if root.is_none() || is_root || parent.is_some() {
            // The report's root has no parent in the report.
            let parent = if is_root { None } else { parent };
            index_of.insert(key, nodes.len());
            nodes.push(Node {
                record,
                parent,
                own: ReportFigures::default(),
                total: ReportFigures::default(),
                peak: 0,
            });
        }
    }
    nodes
}

/// Whether `record` is `root` or below it (any record without `root`).
fn within(record: &'static Record, root: Option<&'static Record>) -> bool {
    let Some(root) = root else { return true };
    core::iter::successors(Some(&record.account), |account| account.parent)
        .any(|account| core::ptr::eq(account, core::ptr::from_ref(&root.account)))
}

/// Each node's own counters, `(own_refunded, own_charged)`.
fn read_own(nodes: &[Node]) -> Vec<(usize, usize)> {
    nodes.iter().map(|node| node.record.account.own_counters()).collect()
}

#[cfg(test)]
mod tests {
    use crate::budget::LeakBudget;

    /// Children that give bytes back and take them again, racing for room in their parent that fits one block at a
    /// time: a report that read each child's figure at a different moment could see two blocks held at once, over
    /// the parent's limit (with `MAX_COLLECTS = 0`, this test fails within a few seconds of rounds). The double collect
    /// keeps only readings that held together.
    #[test]
    #[cfg(not(loom))]
    fn totals_stay_within_limits_while_bytes_are_given_back_and_taken_again() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

        const BLOCK: usize = 4096;
        let rounds = if cfg!(miri) { 30 } else { 300_000 };
        let top: &'static LeakBudget = Box::leak(Box::new(LeakBudget::named("churn", 1 << 20)));
        // Two racers, read far apart: idle siblings in between (the report reads in creation order).
        let first = top.child("racer", 1 << 20).unwrap().record().unwrap();
        for _ in 0..64 {
            top.child("idle", 4096).unwrap().register().unwrap();
        }
        let racers = [first, top.child("racer", 1 << 20).unwrap().record().unwrap()];
        // Leave room in the parent for one block and a half.
        let filler = top.child("filler", 1 << 20).unwrap().record().unwrap();
        filler.account.charge(top.remaining() - (BLOCK + BLOCK / 2)).unwrap();

        let running = AtomicUsize::new(racers.len());
        let reports = std::thread::scope(|scope| {
            for &racer in &racers {
                let running = &running;
                scope.spawn(move || {
                    for _ in 0..rounds {
                        if racer.account.charge(BLOCK).is_ok() {
                            // Hold the block for a moment, so that reports often catch it held.
                            for _ in 0..64 {
                                core::hint::spin_loop();
                            }
                            racer.account.refund(BLOCK);
                        }
                    }
                    running.fetch_sub(1, Relaxed);
                });
            }
            let (mut consistent, mut fallbacks) = (0, 0);
            while running.load(Relaxed) > 0 || consistent == 0 {
                let report = top.report();
                // Every report adds up; only one read at one instant is bounded by the limits (a reading taken after
                // `MAX_COLLECTS` changes may count a block given back by one racer and taken by the other).
                assert_eq!(
                    report.entries()[0].total.reserved,
                    report.entries()[0].own.reserved + {
                        report.children(0).map(|(_, child)| child.charged_to_parent()).sum::<usize>()
                    }
                );
                if !report.consistent {
                    fallbacks += 1;
                    continue;
                }
                let held = report.entries().iter().filter(|entry| entry.own.reserved >= BLOCK && entry.name == "racer");
                assert!(held.count() <= 1, "two blocks held at once:\n{report}");
                for entry in &report {
                    assert!(entry.total.reserved <= entry.limit, "{report}");
                }
                consistent += 1;
            }
            (consistent, fallbacks)
        });
        // Under this constant churn a fifth to a quarter of the reports fall back (natively); the others are checked.
        assert!(reports.0 > 0, "{} consistent reports, {} fallbacks", reports.0, reports.1);
        assert_eq!(top.report().entries()[0].total.reserved, top.reserved());
    }
}
