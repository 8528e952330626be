//! Builds a budget tree at run time and drives it with operations decoded from the input: a fresh root, then up to
//! seven children and prepaid children, each made with the `const fn` constructors called at run time
//! (`LeakBudget::child_of`, `prepaid_child_of`, the handle kept reachable in `fuzz/common/mod.rs`'s handles budget) or
//! with `LeakBudget::child` and `prepaid_child` (whose handles live in the tree itself); leaks of sizes up to 4 KiB
//! and alignments up to 8 KiB at any node, strings, `register`, and `report` of any node. Checked after every step:
//! - at every node, `used <= reserved <= peak_reserved <= limit`; a parent's `reserved` is at least the sum of what
//!   its children charged to it (their `reserved`, or a prepaid child's whole limit once it has a record);
//! - `report()` of the root (or of the node reported) lists exactly the nodes that have a record, in tree order (each
//!   parent followed by its children in the order their records were made), with their names, limits, depths and
//!   parents, and figures that add up (`total = own + children's shares`) and match each node's live figures; it was
//!   read at one instant, and its `Display` has a row per entry;
//! - a leak returns aligned memory of the size asked, moves only its node's `used` (by the size plus less than one
//!   alignment of padding) and `allocations`, and `reserved` only along the chain it charges; a refusal is
//!   `BudgetExceeded` from a budget on that chain, changes nothing but the node's rejection count, and never happens
//!   while every budget the request would charge has a record and at least `max_charge_for(layout)` left;
//! - `register` creates a record (charging the parent the record's size, or a prepaid child's limit), is free the
//!   second time, and when refused changes nothing and counts no rejection (but for the records of ancestors that had
//!   none, which a refused registration makes and keeps: see `fuzz/artifacts-notes/README.md`); creating children
//!   changes nothing but what `child`/`prepaid_child` document;
//! - at the end, every byte leaked still holds its pattern and no two leaks overlap.
//!
//! The root's limit is zero, tiny, below 48 KiB, plenty (96 KiB), or near a value its `reserved` reached with plenty.
//!
//! ```text
//! cargo +nightly fuzz run tree -- -fork=1 -max_total_time=660 -rss_limit_mb=4096 -timeout=60 -detect_leaks=0
//! cargo +nightly fuzz run tree -- -fork=1 -max_total_time=150 -rss_limit_mb=4096 -timeout=60
//! ```
//!
//! Everything leaked stays leaked; as for `budget`, runs need `-fork` to keep each process's memory bounded. `-fork`
//! starts a process per job, and libFuzzer runs LeakSanitizer after every input that allocates more than it frees
//! (every input here) up to 1,000 times per process, so with leak detection on a run does little but scan for leaks (a
//! few dozen executions a second instead of a thousand or more). Hence the long run without it, and a shorter one with
//! it.

#![no_main]

use core::alloc::Layout;

use core::mem::MaybeUninit;

use leak_budget::{LeakBudget, LeakError, Stats};
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::{Input, Limit, check_figures};

const NAMES: [&str; 4] = ["a", "b", "c", "a"];
const MAX_NODES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Make {
    /// `keep(LeakBudget::child_of(..))` or `keep(LeakBudget::prepaid_child_of(..))`.
    Const,
    /// `parent.child(..)` or `parent.prepaid_child(..)`.
    Runtime,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Child { parent: usize, prepaid: bool, make: Make, name: usize, limit: usize },
    Leak { node: usize, size: usize, align_shift: u32 },
    Str { node: usize, len: usize },
    Register { node: usize },
    Report { node: usize },
}

impl Op {
    fn decode(input: &mut Input<'_>) -> Option<Op> {
        let node = usize::from(input.u8()?);
        Some(match input.below(16)? {
            0 | 1 => {
                let prepaid = input.bool()?;
                let make = if input.bool()? { Make::Const } else { Make::Runtime };
                let name = input.below(NAMES.len())?;
                let raw = usize::from(input.u16()?);
                let limit = match input.below(4)? {
                    0 => raw % 512,
                    1 => raw % (16 << 10),
                    2 => raw,
                    _ => raw << 16,
                };
                Op::Child { parent: node, prepaid, make, name, limit }
            }
            2..=8 => {
                let raw = usize::from(input.u16()?);
                // Mostly small, sometimes up to 4 KiB; alignments mostly small, up to 8 KiB.
                let size = if raw & 0x8000 == 0 { raw & 0x7f } else { raw & 0xfff };
                let shift = input.u8()?;
                let align_shift = if shift & 0x80 == 0 { u32::from(shift % 5) } else { u32::from(shift % 14) };
                Op::Leak { node, size, align_shift }
            }
            9 | 10 => Op::Str { node, len: input.below(200)? },
            11 | 12 => Op::Register { node },
            _ => Op::Report { node },
        })
    }
}

#[derive(Debug)]
struct Node {
    budget: &'static LeakBudget,
    parent: Option<usize>,
}

/// A leaked block and the byte it was filled with.
struct Leaked {
    bytes: &'static [u8],
    fill: u8,
}

struct Model {
    nodes: Vec<Node>,
    /// Nodes that have a record, in the order the records were made.
    records: Vec<usize>,
    leaked: Vec<Leaked>,
    fills: u8,
}

impl Model {
    fn new(limit: usize) -> Self {
        let root = common::budget("root", limit);
        Self { nodes: vec![Node { budget: root, parent: None }], records: Vec::new(), leaked: Vec::new(), fills: 0 }
    }

    fn budget(&self, node: usize) -> &'static LeakBudget {
        self.nodes[node].budget
    }

    fn stats(&self) -> Vec<Stats> {
        self.nodes.iter().map(|node| node.budget.stats()).collect()
    }

    /// `node` and its ancestors, nearest first.
    fn chain(&self, node: usize) -> Vec<usize> {
        let mut chain = vec![node];
        while let Some(parent) = self.nodes[*chain.last().expect("never empty")].parent {
            chain.push(parent);
        }
        chain
    }

    /// The budgets a request on `node` charges, as far as they have records: `node` and its ancestors up to the
    /// first prepaid one with a record (which charges only itself).
    fn charged(&self, node: usize) -> Vec<usize> {
        let mut charged = Vec::new();
        for at in self.chain(node) {
            charged.push(at);
            let budget = self.budget(at);
            if budget.is_prepaid() && budget.reserved() > 0 {
                break;
            }
        }
        charged
    }

    /// What a child has charged its parent.
    fn share(budget: &LeakBudget) -> usize {
        if budget.is_prepaid() && budget.reserved() > 0 { budget.limit() } else { budget.reserved() }
    }

    /// Checks that `error` is a refusal for lack of room by one of `budgets` (whose figures are unchanged since).
    fn check_refusal_by(error: &LeakError, budgets: &[&LeakBudget]) {
        let LeakError::BudgetExceeded { budget: name, requested, remaining, limit, .. } = *error else {
            panic!("only refusals for lack of room are expected: {error}");
        };
        assert!(requested > remaining, "{error}");
        assert!(
            budgets.iter().any(|b| b.name() == name && b.limit() == limit && b.remaining() == remaining),
            "{error} does not come from any of {:?}",
            budgets.iter().map(|b| (b.name(), b.limit(), b.remaining())).collect::<Vec<_>>()
        );
    }

    fn chain_budgets(&self, node: usize) -> Vec<&'static LeakBudget> {
        self.chain(node).into_iter().map(|at| self.budget(at)).collect()
    }

    /// A request on `node` for `layout`, made by `request`, which returns the bytes it was given, each set to `fill`.
    fn request(
        &mut self,
        node: usize,
        layout: Layout,
        request: impl FnOnce(&'static LeakBudget, u8) -> Result<&'static [u8], LeakError>,
    ) {
        let before = self.stats();
        let charged = self.charged(node);
        let recorded = self.chain(node).iter().all(|&at| self.budget(at).reserved() > 0);
        let room = charged.iter().all(|&at| self.budget(at).remaining() >= LeakBudget::max_charge_for(layout));
        // A letter, so that a string can be filled with it too.
        self.fills = self.fills.wrapping_add(1);
        let fill = b'a' + self.fills % 26;
        let result = request(self.budget(node), fill);
        let after = self.stats();
        match result {
            Ok(bytes) => {
                assert_eq!(bytes.len(), layout.size());
                assert_eq!(bytes.as_ptr().addr() % layout.align(), 0, "misaligned for {layout:?}");
                for (at, (b, a)) in before.iter().zip(&after).enumerate() {
                    if layout.size() == 0 {
                        assert_eq!(a, b, "a zero-sized request is free");
                        continue;
                    }
                    assert_eq!(a.rejections, b.rejections);
                    if at == node {
                        assert_eq!(a.allocations, b.allocations + 1);
                        let padding = a.used - b.used - layout.size();
                        assert!(a.used >= b.used + layout.size() && padding < layout.align(), "{layout:?}: {b} -> {a}");
                    } else {
                        assert_eq!((a.used, a.allocations), (b.used, b.allocations), "only the node's figures move");
                    }
                    if !self.chain(node).contains(&at) {
                        assert_eq!(a.reserved, b.reserved, "only the chain is charged");
                    }
                }
                if !bytes.is_empty() {
                    self.leaked.push(Leaked { bytes, fill });
                }
            }
            Err(error) => {
                Self::check_refusal_by(&error, &self.chain_budgets(node));
                for (at, (b, a)) in before.iter().zip(&after).enumerate() {
                    let mut expected = *b;
                    if at == node {
                        expected.rejections += 1;
                    }
                    assert_eq!(*a, expected, "a refusal changes nothing but the node's rejection count ({layout:?})");
                }
                assert!(!(recorded && room), "{layout:?} refused with room in every budget it charges: {error}");
            }
        }
    }

    fn leak(&mut self, node: usize, size: usize, align_shift: u32) {
        let layout = Layout::from_size_align(size, 1 << align_shift).expect("a valid layout");
        self.request(node, layout, |budget, fill| {
            let memory: &'static mut [MaybeUninit<u8>] = budget.leak_layout(layout)?;
            for byte in memory.iter_mut() {
                byte.write(fill);
            }
            // SAFETY: every byte of `memory` was just initialised, and `MaybeUninit<u8>` has the layout of `u8`.
            Ok(unsafe { &*(core::ptr::from_mut(memory) as *const [u8]) })
        });
    }

    fn string(&mut self, node: usize, len: usize) {
        self.request(node, Layout::array::<u8>(len).expect("small"), |budget, fill| {
            let text = char::from(fill).to_string().repeat(len);
            let leaked = budget.leak_str(&text)?;
            assert_eq!(leaked, text);
            Ok(leaked.as_bytes())
        });
    }

    fn child(&mut self, parent: usize, prepaid: bool, make: Make, name: &'static str, limit: usize) {
        let before = self.stats();
        let had_record = self.budget(parent).reserved() > 0;
        let parent_budget = self.budget(parent);
        let result = match (make, prepaid) {
            (Make::Const, false) => Ok(common::keep(LeakBudget::child_of(parent_budget, name, limit))),
            (Make::Const, true) => Ok(common::keep(LeakBudget::prepaid_child_of(parent_budget, name, limit))),
            (Make::Runtime, false) => parent_budget.child(name, limit),
            (Make::Runtime, true) => parent_budget.prepaid_child(name, limit),
        };
        let after = self.stats();
        match result {
            Ok(child) => {
                assert!(core::ptr::eq(child.parent().expect("a child"), parent_budget));
                assert_eq!((child.name(), child.limit(), child.is_prepaid()), (name, limit, prepaid));
                for (at, (b, a)) in before.iter().zip(&after).enumerate() {
                    assert_eq!(a.rejections, b.rejections);
                    match make {
                        Make::Const => assert_eq!(a, b, "a child made by a constructor charges nothing"),
                        // The handle is leaked into the parent.
                        Make::Runtime if !prepaid => {
                            let allocations = b.allocations + usize::from(at == parent);
                            assert_eq!(a.allocations, allocations);
                        }
                        // The child's whole limit is charged to the parent; the handle lives in the child.
                        Make::Runtime => {
                            assert_eq!((a.used, a.allocations), (b.used, b.allocations));
                            if at == parent && had_record {
                                assert_eq!(a.reserved, b.reserved + limit, "a prepaid child's limit is charged");
                            }
                        }
                    }
                }
                match make {
                    Make::Runtime if prepaid => {
                        let stats = child.stats();
                        assert!(stats.reserved >= LeakBudget::RECORD_BYTES && stats.allocations == 1, "{stats}");
                    }
                    _ => assert_eq!(child.reserved(), 0, "a new child has no record yet"),
                }
                self.nodes.push(Node { budget: child, parent: Some(parent) });
            }
            Err(error) => {
                if prepaid {
                    // Refused before anything was charged: by the child's own limit (too small for its record and
                    // handle), or by the parent's chain; a refused registration is not counted as a rejection.
                    let own = LeakBudget::prepaid_child_of(parent_budget, name, limit);
                    let mut budgets = self.chain_budgets(parent);
                    budgets.push(&own);
                    Self::check_refusal_by(&error, &budgets);
                    self.check_refused_registration(Some(parent), &before, &after);
                } else {
                    Self::check_refusal_by(&error, &self.chain_budgets(parent));
                    for (at, (b, a)) in before.iter().zip(&after).enumerate() {
                        let mut expected = *b;
                        if at == parent {
                            expected.rejections += 1;
                        }
                        assert_eq!(*a, expected, "a refused child changes nothing but the parent's rejection count");
                    }
                }
            }
        }
    }

    fn register(&mut self, node: usize) {
        let before = self.stats();
        let budget = self.budget(node);
        let had_record = budget.reserved() > 0;
        let parent_had_record = self.nodes[node].parent.is_some_and(|parent| self.budget(parent).reserved() > 0);
        let result = budget.register();
        let after = self.stats();
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((a.used, a.allocations, a.rejections), (b.used, b.allocations, b.rejections));
        }
        match result {
            Ok(()) if had_record => assert_eq!(after, before, "registering again changes nothing"),
            Ok(()) => {
                assert_eq!(budget.reserved(), LeakBudget::RECORD_BYTES, "a record and nothing else");
                if let (Some(parent), true) = (self.nodes[node].parent, parent_had_record) {
                    let share = if budget.is_prepaid() { budget.limit() } else { LeakBudget::RECORD_BYTES };
                    assert_eq!(after[parent].reserved, before[parent].reserved + share, "the parent pays the share");
                }
            }
            Err(error) => {
                Self::check_refusal_by(&error, &self.chain_budgets(node));
                self.check_refused_registration(self.nodes[node].parent, &before, &after);
            }
        }
    }

    /// After a refused registration (by `register`, or the one `prepaid_child` makes): nothing changed and no
    /// rejection was counted, up the tree too (`register` checks the room before it creates any ancestor's record;
    /// the kept input `tree-refused-prepaid-child-creates-parent-record` in `fuzz/artifacts-notes/` found the case).
    fn check_refused_registration(&self, _top: Option<usize>, before: &[Stats], after: &[Stats]) {
        for (b, a) in before.iter().zip(after) {
            assert_eq!(a, b, "a refused registration changes nothing and counts no rejection");
        }
    }

    /// Notes the records made by the last step: ancestors' records are made before their children's.
    fn note_records(&mut self) {
        let mut new: Vec<usize> =
            (0..self.nodes.len()).filter(|&at| self.budget(at).reserved() > 0 && !self.records.contains(&at)).collect();
        new.sort_by_key(|&at| self.chain(at).len());
        self.records.extend(new);
    }

    /// Checks the figures every node must keep, and that parents cover their children.
    fn check_tree(&self) {
        for (at, node) in self.nodes.iter().enumerate() {
            check_figures(node.budget);
            let children: usize = (0..self.nodes.len())
                .filter(|&child| self.nodes[child].parent == Some(at))
                .map(|child| Self::share(self.budget(child)))
                .sum();
            assert!(node.budget.reserved() >= children, "node {at} holds less than its children charged it");
            if node.budget.reserved() == 0 {
                assert_eq!(children, 0, "a node without a record has children with records");
            }
        }
    }

    /// Checks `node`'s report against the tree and the live figures.
    fn check_report(&self, node: usize) {
        let budget = self.budget(node);
        let report = budget.report();
        assert!(report.is_consistent(), "nothing else runs, so the report is read at one instant");
        let entries = report.entries();
        // Expected: `node` and its descendants that have records, in tree order, children by record age.
        let mut expected: Vec<(usize, Option<usize>, usize)> = Vec::new();
        if budget.reserved() == 0 {
            expected.push((node, None, 0));
        } else {
            let mut stack = vec![(node, None, 0)];
            while let Some((at, parent, depth)) = stack.pop() {
                let index = expected.len();
                expected.push((at, parent, depth));
                let children: Vec<usize> =
                    self.records.iter().copied().filter(|&child| self.nodes[child].parent == Some(at)).collect();
                stack.extend(children.into_iter().rev().map(|child| (child, Some(index), depth + 1)));
            }
        }
        assert_eq!(entries.len(), expected.len(), "{report}");
        for (entry, &(at, parent, depth)) in entries.iter().zip(&expected) {
            let budget = self.budget(at);
            let stats = budget.stats();
            assert_eq!(
                (entry.name, entry.limit, entry.prepaid, entry.parent, entry.depth),
                (budget.name(), budget.limit(), budget.is_prepaid(), parent, depth),
                "{report}"
            );
            assert_eq!(entry.total.reserved, budget.reserved(), "{report}");
            assert_eq!(entry.own.used, stats.used, "{report}");
            assert_eq!(entry.own.allocations, stats.allocations, "{report}");
            assert_eq!(entry.own.rejections, stats.rejections, "{report}");
            assert!(entry.peak_reserved >= entry.total.reserved && entry.peak_reserved <= entry.limit, "{report}");
            assert!(entry.total.reserved <= entry.limit && entry.own.used <= entry.own.reserved, "{report}");
            if at != node {
                assert_eq!(entry.charged_to_parent(), Self::share(budget), "{report}");
            }
        }
        for (index, entry) in entries.iter().enumerate() {
            let mut total = entry.own;
            for (_, child) in report.children(index) {
                total.reserved += child.charged_to_parent();
                total.used += child.total.used;
                total.allocations += child.total.allocations;
                total.rejections += child.total.rejections;
            }
            assert_eq!(entry.total, total, "figures add up: {report}");
        }
        let table = report.to_string();
        assert_eq!(table.lines().count(), 2 + entries.len(), "{table}");
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Child { parent, prepaid, make, name, limit } => {
                if self.nodes.len() < MAX_NODES {
                    self.child(parent % self.nodes.len(), prepaid, make, NAMES[name], limit);
                }
            }
            Op::Leak { node, size, align_shift } => self.leak(node % self.nodes.len(), size, align_shift),
            Op::Str { node, len } => self.string(node % self.nodes.len(), len),
            Op::Register { node } => self.register(node % self.nodes.len()),
            Op::Report { node } => self.check_report(node % self.nodes.len()),
        }
        self.note_records();
        self.check_tree();
        self.check_report(0);
    }

    /// Every leak still holds its fill, and no two overlap.
    fn finish(&self) {
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(self.leaked.len());
        for leaked in &self.leaked {
            assert!(leaked.bytes.iter().all(|&byte| byte == leaked.fill), "a leak was overwritten");
            ranges.push((leaked.bytes.as_ptr().addr(), leaked.bytes.len()));
        }
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "leaks overlap: {pair:?}");
        }
    }

    /// Runs `ops` on a fresh tree whose root has `limit` and returns the root's `reserved` after each step.
    fn run(limit: usize, ops: &[Op]) -> Vec<usize> {
        let mut model = Model::new(limit);
        let mut reserved = Vec::with_capacity(ops.len());
        for &op in ops {
            model.apply(op);
            reserved.push(model.budget(0).reserved());
        }
        model.finish();
        reserved
    }
}

const PLENTY: usize = 96 << 10;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let limit = Limit::decode(&mut input, 48 << 10, PLENTY);
    let mut ops = Vec::new();
    while ops.len() < 48 {
        match Op::decode(&mut input) {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    let limit = limit.bytes(|| Model::run(PLENTY, &ops));
    Model::run(limit, &ops);
});
