//! The leak report: every budget as a tree, with its figures.
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
//! `reserved` at every level before counting their bytes as own, refunds do the opposite (`src/account.rs`), so at
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

use core::fmt;
use std::collections::HashMap;
use std::io::Write as _;

use crate::LeakBudget;
use crate::arena::account::Account;
use crate::arena::record::Record;
use crate::stats::Bytes;
use crate::sync::Backoff;

/// The environment variable that makes [`report_at_exit`]'s guard print the report: any value but empty, `0`,
/// `false`, `no` or `off` (in any case) turns it on.
pub const LEAK_BUDGET_REPORT_VAR: &str = "LEAK_BUDGET_REPORT";

/// How many changed readings in a row the report tolerates before it uses the last one.
const MAX_COLLECTS: usize = 256;

/// A snapshot of budgets as a tree: from [`report`] (every budget in the process) or [`LeakBudget::report`] (one
/// budget and everything under it).
///
/// Entries are in tree order: each budget is followed by its children, in the order they were created (roots, too,
/// oldest first). Each entry gives its parent's index, so a program can walk the tree; `Display` prints an aligned
/// table.
///
/// # What is in it
/// - Every budget that has a record: created on its first request that needs memory, or by
///   [`register`](LeakBudget::register). A budget that never charged a byte is not in the registry (nothing to
///   report); a registered budget with no activity is shown with its record's bytes and zero allocations.
/// - Budgets that were dropped: a local `LeakBudget` can be dropped, but what it took is never freed, so it is still
///   reported.
/// - Several budgets with the same name are separate entries; in the table, siblings that share a name get `#1`,
///   `#2`, … (oldest first) so the rows stay distinguishable.
///
/// # Consistency
/// The figures of a snapshot add up even while other threads allocate: each entry's `total.reserved` is
/// `own.reserved` plus each child's [`charged_to_parent`](ReportEntry::charged_to_parent), and `used`, `allocations`
/// and `rejections` totals are sums likewise. The reserved figures are read so that they held together at one instant,
/// so `total.reserved <= limit` for every entry; `used <= reserved` holds for every entry's own and total figures. See
/// `docs/tree.md` for how.
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
/// static CONFIG: LeakBudget = LeakBudget::child_of(&APP, "config", 64 << 10);
///
/// CONFIG.leak_str("listen = 0.0.0.0:80")?;
/// let report = APP.report();
/// let (app, config) = (report.find("app").unwrap(), report.find("config").unwrap());
/// assert_eq!(config.parent, Some(0));
/// assert_eq!(app.total.reserved, app.own.reserved + config.charged_to_parent());
/// assert_eq!(config.total.used, 19);
/// println!("{report}");
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    entries: Vec<ReportEntry>,
    /// Whether the figures were read at one instant (the double collect succeeded), rather than taken from the last
    /// of [`MAX_COLLECTS`] changed readings. Only then is every total bounded by its limit. See `is_consistent`.
    consistent: bool,
}

/// One budget in a [`Report`].
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
/// APP.leak(7u64)?;
/// let report = APP.report();
/// let app = &report.entries()[0];
/// assert_eq!((app.name, app.depth, app.parent, app.limit), ("app", 0, None, 1 << 20));
/// assert_eq!((app.own.used, app.own.allocations), (8, 1));
/// assert!(app.utilisation() > 0.0 && app.peak_reserved >= app.total.reserved);
/// # Ok::<(), leak_budget::Rejected<u64>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportEntry {
    /// The budget's name.
    pub name: &'static str,
    /// Index of the parent's entry in [`Report::entries`]; `None` for a root (or for the budget a
    /// [`LeakBudget::report`] was taken of).
    pub parent: Option<usize>,
    /// 0 for a root, 1 for its children, and so on.
    pub depth: usize,
    /// Whether the budget is a [prepaid](LeakBudget::prepaid_child_of) child: its parent counts its whole limit.
    pub prepaid: bool,
    /// The budget's cap, in bytes.
    pub limit: usize,
    /// What the budget took for itself and the requests made on it, apart from its children.
    pub own: ReportFigures,
    /// The budget and everything under it: `own` plus each child's share. `total.reserved` is what counts against
    /// `limit`.
    pub total: ReportFigures,
    /// The highest the budget's reserved bytes have ever been (children's included): at least `total.reserved`.
    pub peak_reserved: usize,
}

/// Figures of one budget in a [`Report`], either its own or its subtree's total.
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
/// APP.leak_str("abc")?;
/// let figures = APP.report().entries()[0].own;
/// assert_eq!((figures.used, figures.allocations, figures.rejections), (3, 1, 0));
/// assert!(figures.reserved >= LeakBudget::RECORD_BYTES + 3);
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportFigures {
    /// Bytes taken from the global allocator: record, lanes, chunks, dedicated blocks, tables. In a total, also the
    /// children's shares.
    pub reserved: usize,
    /// Bytes handed out to callers, alignment padding included.
    pub used: usize,
    /// Values, strings and slices handed out.
    pub allocations: usize,
    /// Requests refused (by this budget's limit or an ancestor's).
    pub rejections: usize,
}

impl ReportEntry {
    /// What this budget adds to its parent's `total.reserved`: its `limit` if it is prepaid, else its
    /// `total.reserved`.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    /// static CACHE: LeakBudget = LeakBudget::prepaid_child_of(&APP, "cache", 64 << 10);
    /// CACHE.register()?;
    /// let report = APP.report();
    /// let cache = report.find("cache").unwrap();
    /// assert_eq!(cache.charged_to_parent(), 64 << 10);
    /// assert_eq!(report.find("app").unwrap().total.reserved, LeakBudget::RECORD_BYTES + (64 << 10));
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub const fn charged_to_parent(&self) -> usize {
        if self.prepaid { self.limit } else { self.total.reserved }
    }

    /// `total.reserved / limit`, from 0.0 to 1.0 (1.0 for a zero limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 4096);
    /// APP.register()?;
    /// let app = APP.report().entries()[0];
    /// assert_eq!(app.utilisation(), LeakBudget::RECORD_BYTES as f64 / 4096.0);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn utilisation(&self) -> f64 {
        if self.limit == 0 { 1.0 } else { self.total.reserved as f64 / self.limit as f64 }
    }

    /// `limit - total.reserved`: what could still be charged when the report was taken (ancestors permitting).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 4096);
    /// APP.register()?;
    /// assert_eq!(APP.report().entries()[0].remaining(), 4096 - LeakBudget::RECORD_BYTES);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub const fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.total.reserved)
    }
}

impl Report {
    /// Every entry, in tree order (each budget followed by its children).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    /// static A: LeakBudget = LeakBudget::child_of(&APP, "a", 4096);
    /// static B: LeakBudget = LeakBudget::child_of(&A, "b", 4096);
    /// B.register()?;
    /// let names: Vec<_> = APP.report().entries().iter().map(|e| (e.name, e.depth)).collect();
    /// assert_eq!(names, [("app", 0), ("a", 1), ("b", 2)]);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn entries(&self) -> &[ReportEntry] {
        &self.entries
    }

    /// The first entry (in tree order) named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 4096);
    /// APP.register()?;
    /// assert_eq!(APP.report().find("app").unwrap().limit, 4096);
    /// assert!(APP.report().find("nope").is_none());
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn find(&self, name: &str) -> Option<&ReportEntry> {
        self.entries.iter().find(|entry| entry.name == name)
    }

    /// The children of the entry at `index`, with their indices, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    /// static A: LeakBudget = LeakBudget::child_of(&APP, "a", 4096);
    /// static B: LeakBudget = LeakBudget::child_of(&APP, "b", 4096);
    /// A.register()?;
    /// B.register()?;
    /// let report = APP.report();
    /// let children: Vec<_> = report.children(0).map(|(_, e)| e.name).collect();
    /// assert_eq!(children, ["a", "b"]);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    pub fn children(&self, index: usize) -> impl Iterator<Item = (usize, &ReportEntry)> {
        self.entries.iter().enumerate().filter(move |(_, entry)| entry.parent == Some(index))
    }

    /// An iterator over the entries, in tree order (as [`entries`](Self::entries)).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    /// APP.leak(1u8)?;
    /// let allocations: usize = APP.report().iter().map(|entry| entry.own.allocations).sum();
    /// assert_eq!(allocations, 1);
    /// # Ok::<(), leak_budget::Rejected<u8>>(())
    /// ```
    pub fn iter(&self) -> core::slice::Iter<'_, ReportEntry> {
        self.entries.iter()
    }

    /// Number of entries.
    ///
    /// # Examples
    ///
    /// ```
    /// static APP: leak_budget::LeakBudget = leak_budget::LeakBudget::named("app", 4096);
    /// assert_eq!(APP.report().len(), 1); // a budget's own report always has its entry
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the report has no entries (no budget in the process has charged anything yet).
    ///
    /// # Examples
    ///
    /// ```
    /// static APP: leak_budget::LeakBudget = leak_budget::LeakBudget::named("app", 4096);
    /// assert!(!APP.report().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the figures were read at one instant. This is the rule: a report retries while the counters change
    /// between its two readings, and only if they keep changing through 256 readings in a row (constant churn of
    /// chunks) does it use the last one. Such a report still adds up, but a total or peak may exceed its limit by
    /// bytes given back and taken again while it was read; a consistent report never does.
    ///
    /// # Examples
    ///
    /// ```
    /// static APP: leak_budget::LeakBudget = leak_budget::LeakBudget::named("app", 4096);
    /// APP.leak(7_u64).unwrap();
    /// let report = APP.report();
    /// assert!(report.is_consistent()); // nothing else was allocating
    /// assert!(report.entries()[0].total.reserved <= report.entries()[0].limit);
    /// ```
    #[must_use]
    pub const fn is_consistent(&self) -> bool {
        self.consistent
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
                let share = if account.prepaid { account.limit } else { child.total.reserved };
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
                limit: account.limit,
                own: node.own,
                total: node.total,
                peak_reserved: node.peak.max(node.total.reserved),
            });
            stack.extend(children[index].iter().rev().map(|&child| (child, Some(at), depth + 1)));
        }
        Self { entries, consistent }
    }

    /// This report's rows for the table: tree guides, names made unique among siblings.
    fn labels(&self) -> Vec<String> {
        let entries = &self.entries;
        // Whether each entry is the last of its siblings.
        let mut last = vec![true; entries.len()];
        let mut seen_parent: HashMap<Option<usize>, usize> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            if let Some(previous) = seen_parent.insert(entry.parent, index) {
                last[previous] = false;
            }
        }
        // Numbers for siblings that share a name: (parent, name) -> (count, next number).
        let mut same_name: HashMap<(Option<usize>, &str), (usize, usize)> = HashMap::new();
        for entry in entries {
            same_name.entry((entry.parent, entry.name)).or_insert((0, 1)).0 += 1;
        }
        let mut labels = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let mut guides = Vec::new();
            let mut ancestor = entry.parent;
            while let Some(at) = ancestor {
                if entries[at].parent.is_some() {
                    guides.push(if last[at] { "   " } else { "│  " });
                }
                ancestor = entries[at].parent;
            }
            let mut label: String = guides.iter().rev().copied().collect();
            if entry.parent.is_some() {
                label.push_str(if last[index] { "└─ " } else { "├─ " });
            }
            label.push_str(entry.name);
            let (count, next) = same_name.get_mut(&(entry.parent, entry.name)).expect("counted above");
            if *count > 1 {
                label.push_str(" #");
                label.push_str(&next.to_string());
                *next += 1;
            }
            if entry.prepaid {
                label.push_str(" (prepaid)");
            }
            labels.push(label);
        }
        labels
    }
}

impl<'a> IntoIterator for &'a Report {
    type Item = &'a ReportEntry;
    type IntoIter = core::slice::Iter<'a, ReportEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl fmt::Display for Report {
    /// An aligned table, one row per budget, children indented under their parent:
    ///
    /// ```text
    /// leak report: 3 budgets, 12.13 KiB reserved
    /// budget          limit  reserved    util      used      peak  allocs  refused
    /// app          1.00 MiB 12.13 KiB    1.2%   7.70 KiB 12.13 KiB     131        0
    /// ├─ config   64.00 KiB  4.43 KiB    6.9%      652 B  4.43 KiB      30        0
    /// └─ cache     8.00 KiB  7.49 KiB   93.6%   7.06 KiB  7.49 KiB     100       12
    /// ```
    ///
    /// Figures are totals: a budget's row includes everything under it. `reserved` is what counts against `limit`
    /// (a prepaid child counts its whole limit in its parent's row), `util` is `reserved / limit`, `peak` the highest
    /// `reserved` has been, `refused` the requests that were rejected.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEADERS: [&str; 8] = ["budget", "limit", "reserved", "util", "used", "peak", "allocs", "refused"];
        let roots_reserved: usize =
            self.entries.iter().filter(|entry| entry.parent.is_none()).map(|entry| entry.total.reserved).sum();
        let count = self.entries.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "leak report: {count} budget{plural}, {} reserved", Bytes(roots_reserved))?;
        if count == 0 {
            return Ok(());
        }
        let labels = self.labels();
        let rows: Vec<[String; 8]> = self
            .entries
            .iter()
            .zip(labels)
            .map(|(entry, label)| {
                [
                    label,
                    Bytes(entry.limit).to_string(),
                    Bytes(entry.total.reserved).to_string(),
                    format!("{:.1}%", 100.0 * entry.utilisation()),
                    Bytes(entry.total.used).to_string(),
                    Bytes(entry.peak_reserved).to_string(),
                    entry.total.allocations.to_string(),
                    entry.total.rejections.to_string(),
                ]
            })
            .collect();
        let mut widths = HEADERS.map(|header| header.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut line = |cells: [&str; 8]| -> fmt::Result {
            writeln!(f)?;
            write!(f, "{:<width$}", cells[0], width = widths[0])?;
            for (cell, width) in cells.iter().zip(widths).skip(1) {
                write!(f, "  {cell:>width$}")?;
            }
            Ok(())
        };
        line(HEADERS)?;
        for row in &rows {
            line(row.each_ref().map(String::as_str))?;
        }
        Ok(())
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

/// A snapshot of every budget in the process that has charged anything, as a tree: see [`Report`].
///
/// Roots (and children under each parent) come oldest first. Budgets without a record (that never needed memory, or
/// whose limit is too small for their own record) are not included.
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static CONFIG: LeakBudget = LeakBudget::named("doc-config", 1 << 20);
/// CONFIG.leak_str("debug = false")?;
///
/// let report = leak_budget::report();
/// let config = report.find("doc-config").unwrap();
/// assert_eq!((config.total.used, config.total.allocations), (13, 1));
/// eprintln!("{report}");
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
#[must_use]
pub fn report() -> Report {
    Report::build(Report::collect(None))
}

impl LeakBudget {
    /// A snapshot of this budget and everything under it: see [`Report`]. This budget is the report's only root
    /// (even if it has a parent), and always its first entry, with zero figures if it has no record yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    /// static CACHE: LeakBudget = LeakBudget::child_of(&APP, "cache", 4096);
    ///
    /// assert_eq!(CACHE.report().entries()[0].total.reserved, 0); // no record yet
    /// CACHE.register()?;
    /// assert!(CACHE.leak([0u8; 8192]).is_err());
    /// let report = APP.report();
    /// assert_eq!(report.find("cache").unwrap().total.rejections, 1);
    /// assert_eq!(report.find("app").unwrap().total.rejections, 1); // totals include children
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn report(&self) -> Report {
        let Some(account) = self.existing_record() else {
            let figures = ReportFigures { rejections: self.early_rejections(), ..ReportFigures::default() };
            let entry = ReportEntry {
                name: self.name(),
                parent: None,
                depth: 0,
                prepaid: self.is_prepaid(),
                limit: self.limit(),
                own: figures,
                total: figures,
                peak_reserved: 0,
            };
            return Report { entries: vec![entry], consistent: true };
        };
        let mut report = Report::build(Report::collect(Some(account)));
        // Requests refused before the record existed that have not moved into it yet.
        let early = self.early_rejections();
        if let Some(root) = report.entries.first_mut() {
            root.own.rejections = root.own.rejections.saturating_add(early);
            root.total.rejections = root.total.rejections.saturating_add(early);
        }
        report
    }
}

/// Prints the [`report`] of every budget to standard error, now. Write errors are ignored.
///
/// # Examples
///
/// ```
/// static CONFIG: leak_budget::LeakBudget = leak_budget::LeakBudget::named("config", 1 << 20);
/// CONFIG.leak_str("verbose = true").unwrap();
/// leak_budget::print_report();
/// ```
pub fn print_report() {
    let text = report().to_string();
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints the report to standard error when `main` ends, if the environment variable `LEAK_BUDGET_REPORT` asks for
/// it: keep the returned guard alive for the whole of `main`.
///
/// Rust runs nothing at process exit, so the report is printed when the guard is dropped: when `main` returns, or
/// when it unwinds from a panic (useful when the panic is an `expect` on a refused leak). The variable is read then:
/// any value but empty, `0`, `false`, `no` or `off` turns printing on ([`LEAK_BUDGET_REPORT_VAR`]). Nothing is
/// printed if the process ends through [`std::process::exit`] or an abort, which skip destructors: call
/// [`print_report`] before `exit` instead.
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static CONFIG: LeakBudget = LeakBudget::named("config", 1 << 20);
///
/// fn main() -> Result<(), leak_budget::LeakError> {
///     let _report = leak_budget::report_at_exit(); // `LEAK_BUDGET_REPORT=1 ./app` prints the table at the end
///     CONFIG.leak_str("threads = 8")?;
///     Ok(())
/// }
/// ```
pub fn report_at_exit() -> ReportAtExit {
    ReportAtExit { _private: () }
}

/// Guard returned by [`report_at_exit`]: prints the report to standard error when dropped, if `LEAK_BUDGET_REPORT`
/// is set (see [`report_at_exit`]).
///
/// # Examples
///
/// ```
/// let guard = leak_budget::report_at_exit();
/// drop(guard); // prints only if LEAK_BUDGET_REPORT is set
/// ```
#[derive(Debug)]
#[must_use = "the report is printed when the guard is dropped: bind it for the whole of `main` (`let _report = ...`)"]
pub struct ReportAtExit {
    _private: (),
}

impl Drop for ReportAtExit {
    fn drop(&mut self) {
        if report_requested(std::env::var_os(LEAK_BUDGET_REPORT_VAR).as_deref()) {
            print_report();
        }
    }
}

/// Whether a value of [`LEAK_BUDGET_REPORT_VAR`] asks for the report.
fn report_requested(value: Option<&std::ffi::OsStr>) -> bool {
    let Some(value) = value else { return false };
    let value = value.to_string_lossy();
    let value = value.trim();
    !(value.is_empty() || ["0", "false", "no", "off"].iter().any(|off| value.eq_ignore_ascii_case(off)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

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

    #[test]
    fn only_a_set_variable_that_is_not_off_requests_the_report() {
        for on in ["1", "yes", "true", "ON", " 1 "] {
            assert!(report_requested(Some(OsStr::new(on))), "{on:?}");
        }
        for off in ["", " ", "0", "false", "No", "OFF"] {
            assert!(!report_requested(Some(OsStr::new(off))), "{off:?}");
        }
        assert!(!report_requested(None));
    }
}
