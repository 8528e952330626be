//! A budget can never be its own ancestor at run time: a parent chain that leads back to itself (`static A:
//! LeakBudget = LeakBudget::child_of(&A, ..)`, or `A → B → A`) is found on first use and every request that charges or
//! registers is refused with `LeakError::ParentCycle`, never a hang, a stack overflow or a made-up figure; and every
//! walk up a tree is iterative, so a 1,000-deep tree works on a 64 KiB stack.
//!
//! Every case runs on a thread of its own and fails on a timeout, so that a hang fails the suite instead of stalling
//! it (a stack overflow aborts the binary, which fails it too).

use core::alloc::Layout;
use std::panic::resume_unwind;
use std::time::Duration;

use leak_budget::{LeakBudget, LeakError};

use crate::support::{bounded_with, leaked};

/// How long a case may take before it counts as hung. Generous: the cases take milliseconds natively, and under Miri
/// the deep trees take a minute or two.
const TIMEOUT: Duration = Duration::from_secs(if cfg!(miri) { 3600 } else { 120 });

/// A small stack: a walk that recursed once per level of a 1,000-deep tree would overflow it.
const SMALL_STACK: usize = 64 << 10;

/// Levels of the deep tree: 1,000 natively, where a walk that recursed would overflow the small stack. Under Miri,
/// which checks the walks for undefined behaviour rather than for their stack use, 100: creating a tree charges each
/// record to every level above it, so its cost grows with the square of the depth (1,000 levels took 12 minutes).
const DEPTH: usize = if cfg!(miri) { 100 } else { 1000 };

/// Runs `body` on a thread with a [`SMALL_STACK`] and returns its result. Fails if it does not finish within
/// [`TIMEOUT`] (a hang) or if it panics.
fn on_small_stack<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    bounded_with(Some(SMALL_STACK), TIMEOUT, body).unwrap_or_else(|panic| resume_unwind(panic))
}

fn cycle(budget: &'static str) -> LeakError {
    LeakError::ParentCycle { budget }
}

/// Every request that charges or registers is refused with `ParentCycle` naming `on_cycle`; nothing is charged,
/// refused requests are counted, `const` accessors and figures keep answering, and its own report lists it with zeros.
fn assert_refuses_everything(budget: &'static LeakBudget, on_cycle: &'static str) {
    let expected = cycle(on_cycle);
    let refused = budget.leak(String::from("kept")).unwrap_err();
    assert_eq!(refused.error(), &expected);
    assert_eq!(refused.into_inner(), "kept", "the value comes back");
    assert_eq!(budget.leak_with(|| -> u64 { unreachable!("not called when refused") }).unwrap_err(), expected);
    assert_eq!(budget.leak_str("text").unwrap_err(), expected);
    assert_eq!(budget.leak_slice(&[1u16, 2, 3]).unwrap_err(), expected);
    assert_eq!(budget.leak_vec(vec![1u8; 64]).unwrap_err().into_inner(), [1u8; 64]);
    assert_eq!(budget.leak_uninit::<[u8; 1024]>().unwrap_err(), expected);
    assert_eq!(budget.leak_uninit_slice::<u32>(10).unwrap_err(), expected);
    assert_eq!(budget.leak_layout(Layout::from_size_align(100, 64).unwrap()).unwrap_err(), expected);
    // Zero-sized requests charge nothing, so they need no tree: served, as on any budget.
    assert_eq!(budget.leak_str("").unwrap(), "");
    budget.leak(()).unwrap();
    let requests = 8;
    assert_eq!(budget.register().unwrap_err(), expected, "register is refused, and not counted");
    // A child made at run time is leaked into the budget: refused (and counted) too.
    assert_eq!(budget.child("run-time", 4096).unwrap_err(), expected);
    // A prepaid child registers itself first: refused, not counted.
    assert_eq!(budget.prepaid_child("run-time-prepaid", 64 << 10).unwrap_err(), expected);

    // The accessors and figures answer, with what is there: nothing but the refusals.
    let stats = budget.stats();
    assert_eq!((stats.name, stats.limit), (budget.name(), budget.limit()));
    assert_eq!((stats.reserved, stats.used, stats.allocations, stats.peak_reserved), (0, 0, 0, 0), "{stats}");
    assert_eq!(stats.rejections, requests + 1, "{stats}");
    assert_eq!((budget.reserved(), budget.used(), budget.remaining()), (0, 0, budget.limit()));
    assert!(budget.parent().is_some());
    let report = budget.report();
    assert_eq!(report.len(), 1, "{report}");
    let entry = &report.entries()[0];
    assert_eq!(
        (entry.name, entry.limit, entry.total.reserved, entry.total.rejections),
        (budget.name(), budget.limit(), 0, stats.rejections)
    );
    assert!(report.to_string().contains(budget.name()));
    assert!(format!("{budget:?}").contains(budget.name()));
    assert!(budget.to_string().starts_with(&format!("{}: 0 B / ", budget.name())), "{budget}");

    let message = expected.to_string();
    assert!(message.contains(&format!("`{on_cycle}`")) && message.contains("leads back to itself"), "{message}");
}

/// The report of every budget in the process can be taken, and does not list budgets without a record.
fn assert_not_in_the_process_report(names: &[&str]) {
    let report = leak_budget::report();
    for name in names {
        assert!(report.find(name).is_none(), "{name} has no record, so it is not in the process report");
    }
}

static SELF_PARENT: LeakBudget = LeakBudget::child_of(&SELF_PARENT, "self-parent", 1 << 20);

#[test]
fn a_budget_that_is_its_own_parent_refuses_every_request() {
    on_small_stack(|| {
        assert!(core::ptr::eq(SELF_PARENT.parent().unwrap(), &SELF_PARENT));
        assert_refuses_everything(&SELF_PARENT, "self-parent");
        assert_not_in_the_process_report(&["self-parent"]);
    });
}

static PING: LeakBudget = LeakBudget::child_of(&PONG, "ping", 1 << 20);
static PONG: LeakBudget = LeakBudget::prepaid_child_of(&PING, "pong", 64 << 10);
/// Not on the cycle, but its chain runs into it: the error names the first budget of the chain that is on the cycle.
static UNDER_PING: LeakBudget = LeakBudget::child_of(&PING, "under-ping", 1 << 20);

#[test]
fn two_budgets_that_are_each_others_parent_refuse_every_request() {
    on_small_stack(|| {
        assert_refuses_everything(&PING, "ping");
        assert_refuses_everything(&PONG, "pong");
        assert_refuses_everything(&UNDER_PING, "ping");
        assert_not_in_the_process_report(&["ping", "pong", "under-ping"]);
    });
}

/// With no limit to stop it, a recursive walk of the chain would never end.
static BOTTOMLESS: LeakBudget = LeakBudget::child_of(&BOTTOMLESS, "bottomless", usize::MAX);
static BOTTOMLESS_PREPAID: LeakBudget = LeakBudget::prepaid_child_of(&BOTTOMLESS_PREPAID, "bottomless-2", usize::MAX);

#[test]
fn a_self_parent_without_a_limit_is_refused_without_overflowing_the_stack() {
    on_small_stack(|| {
        assert_eq!(BOTTOMLESS.leak(1u8).unwrap_err().into_parts(), (1, cycle("bottomless")));
        assert_eq!(BOTTOMLESS.leak_uninit_slice::<u8>(1 << 30).unwrap_err(), cycle("bottomless"));
        assert_eq!(BOTTOMLESS.register().unwrap_err(), cycle("bottomless"));
        assert_eq!(BOTTOMLESS_PREPAID.leak_str("x").unwrap_err(), cycle("bottomless-2"));
        assert_eq!(BOTTOMLESS_PREPAID.register().unwrap_err(), cycle("bottomless-2"));
        assert_eq!((BOTTOMLESS.reserved(), BOTTOMLESS.stats().rejections), (0, 2));
    });
}

/// A chain of `depth` budgets made at run time: `[root, child, grandchild, …]`.
fn chain(depth: usize, root_limit: usize, prepaid_at: Option<usize>) -> Vec<&'static LeakBudget> {
    let mut chain = vec![leaked(LeakBudget::named("deep-root", root_limit))];
    for level in 1..depth {
        let parent = *chain.last().unwrap();
        let child = if prepaid_at == Some(level) {
            LeakBudget::prepaid_child_of(parent, "deep-prepaid", 1 << 20)
        } else {
            LeakBudget::child_of(parent, "deep", usize::MAX)
        };
        chain.push(leaked(child));
    }
    chain
}

#[test]
fn a_thousand_deep_tree_works_on_a_small_stack() {
    on_small_stack(|| {
        let chain = chain(DEPTH, 1 << 20, None);
        let deepest = *chain.last().unwrap();
        let value = deepest.leak(42u64).unwrap();
        assert_eq!(*value, 42);
        // Every level holds the records of the levels at and below it, plus what the deepest took (its lane, a chunk).
        let taken = deepest.reserved() - LeakBudget::RECORD_BYTES;
        assert!(taken > 0);
        for (level, budget) in chain.iter().enumerate() {
            let records = DEPTH - level;
            let expected = records * LeakBudget::RECORD_BYTES + taken;
            let stats = budget.stats();
            assert_eq!((stats.reserved, stats.peak_reserved), (expected, expected), "level {level}");
            let own = if level + 1 == DEPTH { (8, 1) } else { (0, 0) };
            assert_eq!((stats.used, stats.allocations), own, "level {level}");
        }
        assert!(chain[0].reserved() <= chain[0].limit());

        // A request that the deepest level could take but the root cannot: every level is rolled back.
        let before: Vec<usize> = chain.iter().map(|budget| budget.reserved()).collect();
        let room = chain[0].remaining();
        let err = deepest.leak_uninit_slice::<u8>(room + 1).unwrap_err();
        assert!(matches!(err, LeakError::BudgetExceeded { budget: "deep-root", .. }), "{err}");
        let after: Vec<usize> = chain.iter().map(|budget| budget.reserved()).collect();
        assert_eq!(before, after);

        // The report lists every level, one under the other, and its totals are the live figures.
        let report = chain[0].report();
        assert_eq!(report.len(), DEPTH);
        for (level, (entry, budget)) in report.entries().iter().zip(&chain).enumerate() {
            assert_eq!((entry.depth, entry.total.reserved), (level, budget.reserved()));
            assert_eq!(entry.parent, level.checked_sub(1));
        }
        if !cfg!(miri) {
            // A thousand rows of tree guides: quadratic text, too slow for Miri.
            assert_eq!(report.to_string().lines().count(), DEPTH + 2);
        }
    });
}

#[test]
fn a_deep_tree_with_a_prepaid_level_registers_on_a_small_stack() {
    on_small_stack(|| {
        // `DEPTH` levels (fewer under Miri: a tree's creation takes a number of steps quadratic in its depth).
        let depth = DEPTH;
        let prepaid_at = depth / 2;
        let chain = chain(depth, 4 << 20, Some(prepaid_at));
        let deepest = *chain.last().unwrap();
        deepest.register().unwrap();
        let below = depth - prepaid_at;
        for (level, budget) in chain.iter().enumerate() {
            let expected = if level >= prepaid_at {
                (depth - level) * LeakBudget::RECORD_BYTES
            } else {
                // The prepaid level charged its limit instead of the records at and below it.
                (prepaid_at - level) * LeakBudget::RECORD_BYTES + (1 << 20)
            };
            assert_eq!(budget.reserved(), expected, "level {level}");
        }
        assert_eq!(chain[prepaid_at].reserved(), below * LeakBudget::RECORD_BYTES);
    });
}
