//! Budget trees and the leak report: charges reach every ancestor atomically, children's limits are ceilings, prepaid
//! children, the registry, and a report whose figures add up while other threads allocate.

use core::alloc::Layout;
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::thread;

use leak_budget::{Interner, LeakBudget, LeakError, Report, ReportEntry};

use crate::support::{leaked, scaled};

/// A `'static` root budget for one test, kept reachable by [`leaked`].
fn root(name: &'static str, limit: usize) -> &'static LeakBudget {
    leaked(LeakBudget::named(name, limit))
}

/// A layout served from a dedicated block (too large for a lane's chunk), so that its charge is exactly predictable.
fn dedicated(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Checks every figure of a snapshot: sums, caps, used within reserved.
fn assert_adds_up(report: &Report) {
    assert_adds_up_where(report, |_| true);
}

/// [`assert_adds_up`], checking the caps only of the entries for which `limit_fixed` holds: `set_limit` may have
/// lowered another's limit below what it holds, which only stops it from growing.
fn assert_adds_up_where(report: &Report, limit_fixed: impl Fn(&ReportEntry) -> bool) {
    // Each entry's children, gathered in one pass: `Report::children` scans every entry, and the process-wide report
    // holds every budget the other modules of this test binary registered (tens of thousands after the property tests).
    let mut children_of: Vec<Vec<&ReportEntry>> = vec![Vec::new(); report.len()];
    for entry in report.entries() {
        if let Some(parent) = entry.parent {
            children_of[parent].push(entry);
        }
    }
    for (index, entry) in report.entries().iter().enumerate() {
        let children = &children_of[index];
        let shares: usize = children.iter().map(|child| child.charged_to_parent()).sum();
        assert_eq!(entry.total.reserved, entry.own.reserved + shares, "{} in\n{report}", entry.name);
        assert_eq!(entry.total.used, entry.own.used + children.iter().map(|c| c.total.used).sum::<usize>());
        let allocations = children.iter().map(|c| c.total.allocations).sum::<usize>();
        assert_eq!(entry.total.allocations, entry.own.allocations + allocations);
        let rejections = children.iter().map(|c| c.total.rejections).sum::<usize>();
        assert_eq!(entry.total.rejections, entry.own.rejections + rejections);
        // Bounded by the limit when read at one instant; a report that fell back after constant churn only adds up.
        let bounded = |figure: usize| !report.is_consistent() || !limit_fixed(entry) || figure <= entry.limit;
        assert!(bounded(entry.total.reserved), "{} over its limit in\n{report}", entry.name);
        assert!(entry.own.used <= entry.own.reserved, "{} uses more than it reserved in\n{report}", entry.name);
        assert!(entry.total.used <= entry.total.reserved, "{}", entry.name);
        assert!(entry.peak_reserved >= entry.total.reserved && bounded(entry.peak_reserved));
        if let Some(parent) = entry.parent {
            assert_eq!(report.entries()[parent].depth + 1, entry.depth);
            assert!(parent < index, "a parent comes before its children");
        }
    }
}

/// With no other thread allocating, a report's figures are the budgets' live figures.
fn assert_report_matches(report: &Report, budgets: &[&LeakBudget]) {
    for budget in budgets {
        let entry = report.find(budget.name()).unwrap_or_else(|| panic!("{} missing from\n{report}", budget.name()));
        let stats = budget.stats();
        assert_eq!(entry.total.reserved, stats.reserved, "{}", budget.name());
        assert_eq!((entry.own.used, entry.own.allocations), (stats.used, stats.allocations), "{}", budget.name());
        assert_eq!(entry.own.rejections, stats.rejections, "{}", budget.name());
        assert_eq!(entry.peak_reserved, stats.peak_reserved.max(stats.reserved), "{}", budget.name());
        assert_eq!((entry.limit, entry.prepaid), (budget.limit(), budget.is_prepaid()));
    }
}

#[test]
fn a_charge_reaches_every_ancestor() {
    let app = root("chain-top", 1 << 20);
    let mid = app.child("mid", 512 << 10).unwrap();
    let leaf = mid.child("leaf", 256 << 10).unwrap();
    leaf.leak_str("warm-up").unwrap();
    let before = [app.reserved(), mid.reserved(), leaf.reserved()];

    // A value too large for the lane's chunk takes a dedicated block: one charge, made at all three levels.
    leaf.leak_layout(dedicated(6000)).unwrap();
    let after = [app.reserved(), mid.reserved(), leaf.reserved()];
    let charged = after[2] - before[2];
    assert!(charged >= 6000);
    assert_eq!([after[0] - before[0], after[1] - before[1]], [charged, charged]);

    // Each level holds its own bytes plus its child's: the report shows the split, and it matches the live figures.
    let report = app.report();
    assert_adds_up(&report);
    assert_report_matches(&report, &[app, mid, leaf]);
    let names: Vec<_> = report.entries().iter().map(|entry| (entry.name, entry.depth)).collect();
    assert_eq!(names, [("chain-top", 0), ("mid", 1), ("leaf", 2)]);
    // `child` leaked each handle into the parent: the top holds mid's, mid holds leaf's.
    assert_eq!(report.find("chain-top").unwrap().own.allocations, 1);
    assert_eq!(report.find("mid").unwrap().own.used, size_of::<LeakBudget>());
}

#[test]
fn a_request_that_fits_the_child_but_not_the_parent_fails_and_changes_neither() {
    let app = root("parent", 16 << 10);
    let child = app.child("roomy-child", 1 << 20).unwrap();
    child.leak(1u64).unwrap(); // the child's record, lane and first chunk
    let (app_before, child_before) = (app.stats(), child.stats());
    let room = app.remaining();
    assert!(room > 2048 && room < child.remaining(), "room {room}");

    let err = child.leak_layout(dedicated(room + 1)).unwrap_err();
    match err {
        LeakError::BudgetExceeded { budget, remaining, limit, .. } => {
            assert_eq!((budget, remaining, limit), ("parent", room, 16 << 10));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(app.stats(), app_before, "the parent is unchanged");
    let child_after = child.stats();
    assert_eq!(child_after.rejections, child_before.rejections + 1);
    assert_eq!((child_after.reserved, child_after.used, child_after.allocations), {
        (child_before.reserved, child_before.used, child_before.allocations)
    });

    // What does fit the parent is served, and charged to both.
    child.leak_layout(dedicated(room - 64)).unwrap();
    assert!(app.remaining() < 64 && app.reserved() <= app.limit());
    assert_eq!(app.reserved() - app_before.reserved, child.reserved() - child_before.reserved);
    assert_adds_up(&app.report());
}

#[test]
fn a_refusal_by_a_grandparent_rolls_back_every_level() {
    let top = root("top", 32 << 10);
    let mid = top.child("mid-level", 1 << 20).unwrap();
    let leaf = mid.child("leaf-level", 1 << 20).unwrap();
    leaf.leak(0u8).unwrap();
    let before = [top.stats(), mid.stats(), leaf.stats()];
    let room = top.remaining();

    let err = leaf.leak_layout(dedicated(room + 1)).unwrap_err();
    assert!(matches!(err, LeakError::BudgetExceeded { budget: "top", .. }), "{err:?}");
    assert_eq!([top.stats(), mid.stats()], [before[0], before[1]]);
    assert_eq!(leaf.reserved(), before[2].reserved);
}

#[test]
fn a_childs_limit_is_a_ceiling_not_a_reservation() {
    let app = root("small-app", 64 << 10);
    // Both children may each grow to 1 MiB, sixteen times what their parent has in all.
    let first = app.child("first", 1 << 20).unwrap();
    let second = app.child("second", 1 << 20).unwrap();
    assert_eq!((first.reserved(), second.reserved()), (0, 0), "creating a child reserves nothing");

    let mut refused = None;
    for _ in 0..1000 {
        if let Err(rejected) = first.leak([0u8; 1024]) {
            refused = Some(rejected.into_inner());
            break;
        }
    }
    assert!(refused.is_some(), "the parent's cap stops the child");
    assert!(first.reserved() < first.limit() && app.reserved() <= app.limit());
    assert!(app.remaining() < LeakBudget::max_charge_for(Layout::new::<[u8; 1024]>()));
    // The first child took what the parent had: the second is refused by the parent, not by its own limit.
    let err = second.leak([0u8; 1024]).unwrap_err();
    assert!(matches!(err.error(), LeakError::BudgetExceeded { budget: "small-app", .. }), "{err}");
    assert_adds_up(&app.report());
}

#[test]
fn a_prepaid_child_takes_its_limit_up_front_and_never_fails_for_its_parent() {
    let app = root("prepaid-parent", 256 << 10);
    let cache = app.prepaid_child("prepaid-cache", 64 << 10).unwrap();
    assert!(cache.is_prepaid());
    // The parent's record, and the child's whole limit: the child's handle lives in the child's own bytes.
    assert_eq!(app.reserved(), LeakBudget::RECORD_BYTES + (64 << 10));
    assert_eq!(app.used(), 0);

    // A sibling takes everything the parent has left...
    let greedy = app.child("greedy", 1 << 20).unwrap();
    while greedy.leak([0u8; 512]).is_ok() {}
    let app_reserved = app.reserved();

    // ...and the prepaid child still uses (almost) all of its limit, without charging the parent again.
    let mut values = 0;
    let err = loop {
        match cache.leak([1u8; 1024]) {
            Ok(_) => values += 1,
            Err(rejected) => break rejected.into_parts().1,
        }
    };
    assert!(values >= 56, "only {values} KiB fit in a 64 KiB prepaid child");
    assert!(matches!(err, LeakError::BudgetExceeded { budget: "prepaid-cache", .. }), "{err:?}");
    assert_eq!(app.reserved(), app_reserved);
    assert!(cache.reserved() <= cache.limit());

    let report = app.report();
    assert_adds_up(&report);
    assert_report_matches(&report, &[app, cache, greedy]);
    assert_eq!(report.find("prepaid-cache").unwrap().charged_to_parent(), 64 << 10);
}

#[test]
fn a_prepaid_child_the_parent_cannot_afford_is_refused_cleanly() {
    let app = root("thrifty", 64 << 10);
    app.register().unwrap();
    let before = app.stats();
    let err = app.prepaid_child("too-big", 128 << 10).unwrap_err();
    assert!(matches!(err, LeakError::BudgetExceeded { budget: "thrifty", .. }), "{err:?}");
    // Too small to hold its own record and handle: refused before anything is charged, naming the child.
    let err = app.prepaid_child("too-small", 64).unwrap_err();
    assert!(matches!(err, LeakError::BudgetExceeded { budget: "too-small", limit: 64, .. }), "{err:?}");
    assert_eq!(app.stats(), before);
    let report = app.report();
    assert!(report.find("too-big").is_none() && report.find("too-small").is_none(), "{report}");
}

#[test]
fn a_static_prepaid_child_is_charged_on_first_use() {
    static OWNER: LeakBudget = LeakBudget::named("static-owner", 256 << 10);
    static PAID: LeakBudget = LeakBudget::prepaid_child_of(&OWNER, "static-paid", 128 << 10);
    static UNAFFORDABLE: LeakBudget = LeakBudget::prepaid_child_of(&OWNER, "static-unaffordable", 1 << 20);

    assert_eq!((OWNER.reserved(), PAID.reserved()), (0, 0));
    PAID.leak(5u32).unwrap();
    assert_eq!(OWNER.reserved(), LeakBudget::RECORD_BYTES + (128 << 10));
    assert!(core::ptr::eq(PAID.parent().unwrap(), &OWNER));

    let err = UNAFFORDABLE.leak(5u32).unwrap_err();
    assert!(matches!(err.error(), LeakError::BudgetExceeded { budget: "static-owner", .. }), "{err}");
    assert_eq!((UNAFFORDABLE.reserved(), OWNER.reserved()), (0, LeakBudget::RECORD_BYTES + (128 << 10)));
    assert_eq!(UNAFFORDABLE.stats().rejections, 1);
}

#[test]
fn a_runtime_child_is_paid_for_by_its_parent() {
    let app = root("handle-payer", 1 << 20);
    let child = app.child("handle", 4096).unwrap();
    assert_eq!((app.used(), app.stats().allocations), (size_of::<LeakBudget>(), 1));
    assert_eq!((child.reserved(), child.parent().map(LeakBudget::name)), (0, Some("handle-payer")));

    let broke = root("broke", 0);
    let err = broke.child("never", 4096).unwrap_err();
    assert!(matches!(err, LeakError::BudgetExceeded { budget: "broke", .. }));
    assert_eq!(broke.stats().rejections, 1);
}

#[test]
fn an_interner_in_a_child_budget_is_charged_to_the_child_and_its_parent() {
    static APP: LeakBudget = LeakBudget::named("interner-app", 1 << 20);
    static SYMBOLS: LeakBudget = LeakBudget::child_of(&APP, "interner-symbols", 64 << 10);
    static WORDS: Interner<str> = Interner::in_budget(&SYMBOLS);

    let mut refused = 0;
    for i in 0..scaled(20_000, 200) {
        if WORDS.intern(&format!("identifier_{i}")).is_err() {
            refused += 1;
        }
    }
    let report = APP.report();
    assert_adds_up(&report);
    assert_report_matches(&report, &[&APP, &SYMBOLS]);
    let symbols = report.find("interner-symbols").unwrap();
    assert!(symbols.total.reserved > 0 && symbols.total.reserved <= 64 << 10);
    assert_eq!(report.find("interner-app").unwrap().total.reserved, LeakBudget::RECORD_BYTES + symbols.total.reserved);
    assert_eq!(symbols.total.rejections, refused);
    if !cfg!(miri) {
        assert!(refused > 0, "the child's cap stops the interner:\n{report}");
    }
}

#[test]
fn the_registry_sees_every_budget_that_charged_and_only_those() {
    static REG_ROOT: LeakBudget = LeakBudget::named("reg-root", 1 << 20);
    static REG_STATIC: LeakBudget = LeakBudget::child_of(&REG_ROOT, "reg-static", 64 << 10);
    static REG_IDLE: LeakBudget = LeakBudget::child_of(&REG_ROOT, "reg-idle", 64 << 10);
    static REG_UNUSED: LeakBudget = LeakBudget::child_of(&REG_ROOT, "reg-unused", 64 << 10);
    static REG_LATE: LeakBudget = LeakBudget::child_of(&REG_ROOT, "reg-late", 64 << 10);

    REG_STATIC.leak_str("static").unwrap();
    REG_IDLE.register().unwrap();
    let runtime = REG_ROOT.child("reg-runtime", 64 << 10).unwrap();
    runtime.leak(1u16).unwrap();
    thread::spawn(|| REG_ROOT.child("reg-from-thread", 4096).unwrap().leak(2u16).unwrap()).join().unwrap();
    {
        let dropped = LeakBudget::named("reg-dropped", 1 << 20);
        dropped.leak_str("still held").unwrap();
    }
    // Refused before it had a record (too large even for an empty budget), then used: the refusal is reported.
    assert!(REG_LATE.leak([0u8; 128 << 10]).is_err());
    REG_LATE.leak(1u8).unwrap();
    assert_eq!(REG_UNUSED.limit(), 64 << 10);

    let report = leak_budget::report();
    // The process-wide report holds the other modules' budgets too, some of them with lowered limits
    // (tests/it/limits.rs): their sums are checked, their caps only for this test's budgets.
    assert_adds_up_where(&report, |entry| entry.name.starts_with("reg-"));
    let parent_name = |name: &str| {
        let entry = report.find(name).unwrap_or_else(|| panic!("{name} missing"));
        entry.parent.map(|parent| report.entries()[parent].name)
    };
    for child in ["reg-static", "reg-idle", "reg-runtime", "reg-from-thread", "reg-late"] {
        assert_eq!(parent_name(child), Some("reg-root"), "{child}");
    }
    assert_eq!(parent_name("reg-root"), None);
    assert_eq!(parent_name("reg-dropped"), None);
    assert!(report.find("reg-unused").is_none(), "a budget that never charged is not registered");
    let dropped = report.find("reg-dropped").unwrap();
    assert_eq!((dropped.own.used, dropped.own.allocations), (10, 1));
    let idle = report.find("reg-idle").unwrap();
    assert_eq!((idle.total.reserved, idle.total.allocations), (LeakBudget::RECORD_BYTES, 0));
    assert_eq!(report.find("reg-late").unwrap().own.rejections, 1);
    // Children in creation order.
    let root = report.entries().iter().position(|entry| entry.name == "reg-root").unwrap();
    let children: Vec<_> = report.children(root).map(|(_, child)| child.name).collect();
    assert_eq!(children, ["reg-static", "reg-idle", "reg-runtime", "reg-from-thread", "reg-late"]);
}

#[test]
fn a_budget_report_covers_its_subtree_only() {
    let app = root("subtree-app", 1 << 20);
    let inner = app.child("subtree-inner", 64 << 10).unwrap();
    let leaf = inner.child("subtree-leaf", 16 << 10).unwrap();
    let sibling = app.child("subtree-sibling", 64 << 10).unwrap();
    leaf.leak(1u32).unwrap();
    sibling.leak(1u32).unwrap();

    let report = inner.report();
    let names: Vec<_> = report.entries().iter().map(|entry| (entry.name, entry.parent, entry.depth)).collect();
    assert_eq!(names, [("subtree-inner", None, 0), ("subtree-leaf", Some(0), 1)]);
    assert_report_matches(&report, &[inner, leaf]);

    // Without a record: one entry of zeros, with the refusals it has had.
    let fresh = root("subtree-fresh", 8);
    assert!(fresh.leak(()).is_ok() && fresh.leak(1u64).is_err());
    let report = fresh.report();
    assert_eq!(report.len(), 1);
    let entry = report.entries()[0];
    assert_eq!((entry.total.reserved, entry.total.rejections, entry.limit), (0, 1, 8));
}

#[test]
fn the_report_adds_up_while_other_threads_allocate() {
    // Limits scaled with the work, so that the caps are reached under Miri too.
    let app = root("busy-app", scaled(2 << 20, 96 << 10));
    let a = app.child("busy-a", scaled(1 << 20, 48 << 10)).unwrap();
    let a1 = a.child("busy-a1", scaled(128 << 10, 16 << 10)).unwrap();
    let b = app.prepaid_child("busy-b", scaled(256 << 10, 24 << 10)).unwrap();
    let c = app.child("busy-c", 8 << 20).unwrap(); // a ceiling above its parent's limit
    let budgets = [a, a1, b, c];
    // Records first: a budget is in the report from its first charge, and the reporter below may run before any
    // worker has charged all four (then the report has fewer than five entries).
    for budget in budgets {
        budget.register().unwrap();
    }
    let done = AtomicBool::new(false);
    let successes: [AtomicUsize; 4] = Default::default();
    let rounds = scaled(3000, 40);

    let reports = thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let successes = &successes;
                scope.spawn(move || {
                    for round in 0..rounds {
                        let which = (worker + round) % budgets.len();
                        let size = [8, 24, 200, 1500, 5000][(round * 7 + worker) % 5];
                        if budgets[which].leak_layout(Layout::from_size_align(size, 8).unwrap()).is_ok() {
                            successes[which].fetch_add(1, Relaxed);
                        }
                    }
                })
            })
            .collect();
        let reporter = scope.spawn(|| {
            let mut taken = 0;
            let mut last_allocations: HashMap<&str, usize> = HashMap::new();
            loop {
                // Read the flag first: the last report is taken after every worker has finished.
                let finished = done.load(Relaxed);
                let report = app.report();
                assert_adds_up(&report);
                assert_eq!(report.len(), 5, "{report}");
                for entry in &report {
                    let last = last_allocations.insert(entry.name, entry.total.allocations).unwrap_or(0);
                    assert!(entry.total.allocations >= last, "allocations never go backwards");
                }
                for budget in [app, a, a1, b, c] {
                    assert!(budget.reserved() <= budget.limit());
                }
                taken += 1;
                if finished {
                    return taken;
                }
            }
        });
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Relaxed);
        reporter.join().unwrap()
    });
    assert!(reports >= 1);

    let report = app.report();
    assert_adds_up(&report);
    assert_report_matches(&report, &[app, a, a1, b, c]);
    for (budget, successes) in budgets.iter().zip(&successes) {
        // `a` also holds the handle of `a1`; the prepaid `b` holds its own.
        let handles = usize::from(budget.name() == "busy-a" || budget.name() == "busy-b");
        assert_eq!(report.find(budget.name()).unwrap().own.allocations, successes.load(Relaxed) + handles);
    }
    assert!(report.find("busy-app").unwrap().total.rejections > 0, "the caps were reached:\n{report}");
}

#[test]
fn the_report_prints_an_aligned_tree() {
    // Rows come in the order the budgets' records were created (on first use, or `register`).
    let app = root("table-app", 1 << 20);
    let config = app.child("config", 64 << 10).unwrap();
    config.register().unwrap();
    let symbols = app.child("symbols", 256 << 10).unwrap();
    let long = symbols.child("long", 64 << 10).unwrap();
    long.register().unwrap();
    let first = app.child("worker", 8 << 10).unwrap();
    first.register().unwrap();
    let second = app.child("worker", 8 << 10).unwrap();
    second.register().unwrap();
    let cache = app.prepaid_child("cache", 128 << 10).unwrap();
    config.leak_str("a = 1").unwrap();
    long.leak_str("a long name").unwrap();
    first.leak(1u8).unwrap();
    second.leak(2u8).unwrap();
    cache.leak([0u8; 100]).unwrap();
    while first.leak([0u8; 1024]).is_ok() {}

    let report = app.report();
    let table = report.to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + report.len(), "{table}");
    assert!(lines[0].starts_with("leak report: 7 budgets, "), "{table}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(header, ["budget", "limit", "reserved", "util", "used", "peak", "allocs", "refused"]);
    // Every row is as wide as the header, and each figure ends where its title ends (right-aligned).
    let header_chars: Vec<char> = lines[1].chars().collect();
    let ends: Vec<usize> = (6..header_chars.len())
        .filter(|&i| header_chars[i] != ' ' && header_chars.get(i + 1).is_none_or(|&c| c == ' '))
        .collect();
    assert_eq!(ends.len(), 7, "{table}");
    for line in &lines[2..] {
        let chars: Vec<char> = line.chars().collect();
        assert_eq!(chars.len(), header_chars.len(), "{table}");
        for &end in &ends {
            assert!(chars[end] != ' ' && chars.get(end + 1).is_none_or(|&c| c == ' '), "column misaligned:\n{table}");
        }
    }
    let expected =
        ["table-app", "├─ config", "├─ symbols", "│  └─ long", "├─ worker #1", "├─ worker #2", "└─ cache (prepaid)"];
    let mut rows = Vec::new();
    for (line, label) in lines[2..].iter().zip(expected) {
        let cells = line.strip_prefix(label).unwrap_or_else(|| panic!("{label:?} expected in\n{table}"));
        assert!(cells.starts_with("  "), "{table}");
        rows.push(cells.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect::<Vec<_>>());
    }
    for (row, entry) in rows.iter().zip(report.entries()) {
        assert_eq!(row.len(), 7, "{table}");
        assert_eq!(row[5], entry.total.allocations.to_string());
        assert_eq!(row[6], entry.total.rejections.to_string());
    }
    // Limits, and the full worker's refusals.
    assert_eq!([rows[0][0], rows[1][0], rows[4][0], rows[6][0]], ["1.00 MiB", "64.00 KiB", "8.00 KiB", "128.00 KiB"]);
    assert_ne!(rows[4][6], "0");
    assert_eq!(rows[5][6], "0");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn report_at_exit_prints_to_stderr_only_when_the_variable_asks() {
    // The child runs this test alone, by the name libtest gives it: its path in the binary, crate name left out.
    let module = module_path!().split_once("::").map_or("", |(_, module)| module);
    let test = format!("{module}::report_at_exit_prints_to_stderr_only_when_the_variable_asks");
    const CHILD: &str = "LEAK_BUDGET_TREE_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        static PROBE: LeakBudget = LeakBudget::named("exit-report-probe", 4096);
        let _report = leak_budget::report_at_exit();
        PROBE.leak(1u8).unwrap();
        return;
    }
    for value in [Some("1"), Some("0"), None] {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args(["--exact", &test, "--nocapture", "--test-threads=1"]).env(CHILD, "1");
        match value {
            Some(value) => command.env(leak_budget::LEAK_BUDGET_REPORT_VAR, value),
            None => command.env_remove(leak_budget::LEAK_BUDGET_REPORT_VAR),
        };
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let printed = stderr.contains("exit-report-probe") && stderr.contains("leak report: ");
        assert_eq!(printed, value == Some("1"), "LEAK_BUDGET_REPORT={value:?}, stderr:\n{stderr}");
    }
}
