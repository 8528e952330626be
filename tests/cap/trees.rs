//! A budget tree (plain and prepaid children, made statically and at run time, and grandchildren) leaking and interning
//! on every level at once: at every allocation, the bytes each subtree holds stay within its root's limit.

use std::panic::resume_unwind;
use std::sync::Barrier;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;

use leak_budget::{Interned, Interner, LeakBudget, LeakError};

use crate::components::{FULL_STREAK, distinct_string, range_of};
use crate::support::{Rng, leaked, scaled};
use crate::values::{Leaked, intact, random_request};
use crate::{
    CALLS, HELD, MAX_HELD, NO_PARENT, OVER_LEVEL_LIMIT, OVER_LIMIT, OWN, SUBTREE, TABLE_FULL, add_level,
    assert_disjoint_and_counted, assert_no_counted_block_freed, charging, lib, lib_at, start_case,
    warm_up_process_state,
};

/// One budget of the tree case: its level and its parent's, the budget, and an interner charging it.
struct Node {
    level: usize,
    parent: usize,
    budget: &'static LeakBudget,
    interner: &'static Interner<str>,
}

/// What one tree worker saw: what it leaked and interned, its requests and its refusals.
#[derive(Default)]
struct TreeRun {
    leaked: Vec<Leaked>,
    interned: Vec<(Interned<str>, String)>,
    requests: usize,
    refusals: usize,
}

/// Leaks random requests and interns distinct strings (half each) into `node` until [`FULL_STREAK`] refusals in a
/// row. Every refusal must name `node`'s budget or an ancestor its charges reach (`charged`): a prepaid budget's
/// charges stop at it.
fn tree_worker(node: &Node, charged: &[&str], seed: u64) -> TreeRun {
    charging(node.level);
    let mut rng = Rng::new(seed);
    let mut run = TreeRun::default();
    let mut streak = 0;
    while streak < FULL_STREAK {
        assert!(run.requests < 50_000_000, "a finite budget must fill up");
        run.requests += 1;
        let refused = if rng.below(2) == 0 {
            let (layout, result) = random_request(node.budget, &mut rng);
            match result {
                Ok(leaked) => {
                    assert_eq!(leaked.bytes.as_ptr().addr() % layout.align(), 0, "{layout:?} misaligned");
                    if !leaked.bytes.is_empty() {
                        run.leaked.push(leaked);
                    }
                    None
                }
                Err(error) => Some(error),
            }
        } else {
            let text = distinct_string(&mut rng, node.level as u64, run.requests);
            match lib(|| node.interner.intern(&text)) {
                Ok(handle) => {
                    assert_eq!(&*handle, text);
                    run.interned.push((handle, text));
                    None
                }
                Err(error) => Some(error),
            }
        };
        match refused {
            None => streak = 0,
            Some(LeakError::BudgetExceeded { budget, .. }) => {
                assert!(charged.contains(&budget), "{} was refused by {budget}, not on its charge path", charged[0]);
                streak += 1;
                run.refusals += 1;
            }
            Some(other) => panic!("unexpected error: {other}"),
        }
    }
    run
}

/// A root with plain and prepaid children made both ways (`child_of`/`prepaid_child_of` and `child`/`prepaid_child`),
/// a grandchild below a plain child and one below a prepaid child, all leaking and interning at once until full. At
/// every allocation, the bytes each subtree holds stay within its root's limit; at the end each budget's `reserved`
/// is exactly its own bytes plus its children's shares (a plain child's `reserved`, a prepaid child's `limit`).
pub(crate) fn trees_never_exceed_any_level() -> String {
    warm_up_process_state();
    let limit = scaled(4 << 20, 64 << 10);
    start_case(limit);
    // Levels: 0 root; 1 `a` (plain, a ceiling above the root's limit); 2 `b` (prepaid); 3 `c` (plain, made by
    // `child`); 4 `d` (prepaid, made by `prepaid_child`); 5 `g` below `a`; 6 `h` below prepaid `b`.
    let shapes: [(&str, usize, usize, bool); 7] = [
        ("root", NO_PARENT, limit, false),
        ("a", 0, 2 * limit, false),
        ("b", 0, limit / 4, true),
        ("c", 0, limit / 3, false),
        ("d", 0, limit / 8, true),
        ("g", 1, limit / 4, false),
        ("h", 2, limit / 8, false),
    ];
    for (level, &(_, parent, limit, _)) in shapes.iter().enumerate() {
        add_level(level, parent, limit);
    }
    let root = leaked(LeakBudget::named("root", limit));
    let a = leaked(LeakBudget::child_of(root, "a", shapes[1].2));
    let b = leaked(LeakBudget::prepaid_child_of(root, "b", shapes[2].2));
    // Records first, each charged at its own level (a record is its budget's own bytes).
    lib_at(0, || root.register()).expect("the root's record fits");
    lib_at(1, || a.register()).expect("a's record fits");
    lib_at(2, || b.register()).expect("b's limit fits in the root");
    // A child made at run time has its handle leaked into its parent; a prepaid one into its own bytes.
    let c = lib_at(0, || root.child("c", shapes[3].2)).expect("c's handle fits");
    let d = lib_at(4, || root.prepaid_child("d", shapes[4].2)).expect("d's limit fits in the root");
    let g = lib_at(1, || a.child("g", shapes[5].2)).expect("g's handle fits");
    let h = lib_at(2, || b.child("h", shapes[6].2)).expect("h's handle fits");
    let budgets = [root, a, b, c, d, g, h];
    for (budget, &(name, _, limit, prepaid)) in budgets.iter().zip(&shapes) {
        assert_eq!((budget.name(), budget.limit(), budget.is_prepaid()), (name, limit, prepaid));
    }
    let nodes: Vec<Node> = budgets
        .iter()
        .zip(&shapes)
        .enumerate()
        .map(|(level, (&budget, &(_, parent, _, _)))| Node {
            level,
            parent,
            budget,
            interner: leaked(Interner::in_budget(budget)),
        })
        .collect();
    // The budgets each level's charges reach: itself, then up to and including the first prepaid level.
    let charged: Vec<Vec<&str>> = (0..nodes.len())
        .map(|level| {
            let mut path = vec![shapes[level].0];
            let mut at = level;
            while !shapes[at].3 && shapes[at].1 != NO_PARENT {
                at = shapes[at].1;
                path.push(shapes[at].0);
            }
            path
        })
        .collect();
    let barrier = Barrier::new(nodes.len());
    let runs: Vec<TreeRun> = thread::scope(|scope| {
        let workers: Vec<_> = nodes
            .iter()
            .zip(&charged)
            .map(|(node, charged)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    tree_worker(node, charged, 40 + node.level as u64)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| resume_unwind(panic))).collect()
    });

    // Every value handed out is intact, disjoint from the others and inside counted memory; handles resolve.
    let calls = CALLS.load(SeqCst);
    let mut ranges = Vec::new();
    for (node, run) in nodes.iter().zip(&runs) {
        assert!(run.leaked.iter().all(|l| intact(l.bytes, l.seed, l.ascii)), "leaked contents were overwritten");
        ranges.extend(run.leaked.iter().map(|l| (l.bytes.as_ptr().addr(), l.bytes.len())));
        for (handle, text) in &run.interned {
            assert!(node.interner.get(text).is_some_and(|found| found == *handle) && **handle == **text);
            ranges.push(range_of(*handle));
        }
        assert_eq!(node.interner.len(), run.interned.len());
    }
    assert_eq!(CALLS.load(SeqCst), calls);
    assert_disjoint_and_counted(ranges);

    // Each level: within its limit, and its reserved is exactly its own bytes plus its children's shares.
    assert_eq!(TABLE_FULL.load(SeqCst), 0, "the block table overflowed: enlarge SLOTS");
    assert_eq!(OVER_LEVEL_LIMIT.load(SeqCst), 0, "an allocation took some level's bytes above its limit");
    assert_eq!(OVER_LIMIT.load(SeqCst), 0, "an allocation took the bytes held above the root's limit");
    assert_no_counted_block_freed();
    let mut figures = Vec::new();
    for node in &nodes {
        let stats = node.budget.stats();
        assert!(stats.reserved <= stats.limit && stats.peak_reserved <= stats.limit, "{stats}");
        let children: usize = nodes
            .iter()
            .filter(|child| child.parent == node.level)
            .map(|child| if child.budget.is_prepaid() { child.budget.limit() } else { child.budget.reserved() })
            .sum();
        let own = OWN[node.level].load(SeqCst);
        assert_eq!(
            stats.reserved,
            own + children,
            "{}: reserved must be its own bytes ({own}) plus its children's shares ({children})\n{stats}",
            stats.name
        );
        assert!(SUBTREE[node.level].load(SeqCst) <= stats.limit);
        figures.push(format!("{} {}/{}", stats.name, stats.reserved, stats.limit));
    }
    let held = HELD.load(SeqCst);
    let prepaid_unused: usize = nodes
        .iter()
        .filter(|node| node.parent == 0 && node.budget.is_prepaid())
        .map(|node| node.budget.limit() - SUBTREE[node.level].load(SeqCst))
        .sum();
    assert_eq!(root.reserved(), held + prepaid_unused, "the root reserves what is held plus prepaid bytes not used");
    let (requests, refusals) = runs.iter().fold((0, 0), |(r, f), run| (r + run.requests, f + run.refusals));
    format!(
        "root limit {limit}, max held {} ({:.2}%), held {held} + {prepaid_unused} prepaid unused = root reserved; \
         reserved/limit: {}; {} threads, {requests} requests, {refusals} refusals, {} allocator calls",
        MAX_HELD.load(SeqCst),
        100.0 * MAX_HELD.load(SeqCst) as f64 / limit as f64,
        figures.join(", "),
        nodes.len(),
        CALLS.load(SeqCst)
    )
}
