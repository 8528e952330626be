//! Layer 2: the leak report, every budget as a tree with its figures.
//!
//! - `collect.rs` reads the figures so that they held together at one instant, and builds the tree;
//! - `render.rs` lays the report out as a table (its `Display`);
//! - `at_exit.rs` prints it, on demand or at exit.
//!
//! A report never reads a budget's `reserved`: it derives each total from the own counters, so its figures add up by
//! construction (see `collect.rs`).

mod at_exit;
mod collect;
mod render;

use crate::budget::LeakBudget;

pub use at_exit::{LEAK_BUDGET_REPORT_VAR, ReportAtExit, print_report, report_at_exit};

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
/// so `total.reserved <= limit` for every entry (unless [`set_limit`](LeakBudget::set_limit) lowered a limit below
/// what was already reserved); `used <= reserved` holds for every entry's own and total figures. See
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
    /// of 256 changed readings (`MAX_COLLECTS` in `collect.rs`). Only then is every total bounded by its limit (one
    /// lowered below what was reserved aside). See `is_consistent`.
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
    /// bytes given back and taken again while it was read; a consistent report never does (but where
    /// [`set_limit`](LeakBudget::set_limit) lowered a limit below what was already reserved: the report shows that
    /// state as it is).
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
}

impl<'a> IntoIterator for &'a Report {
    type Item = &'a ReportEntry;
    type IntoIter = core::slice::Iter<'a, ReportEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
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
    Report::snapshot(None)
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
        let mut report = Report::snapshot(Some(account));
        // Requests refused before the record existed that have not moved into it yet.
        let early = self.early_rejections();
        if let Some(root) = report.entries.first_mut() {
            root.own.rejections = root.own.rejections.saturating_add(early);
            root.total.rejections = root.total.rejections.saturating_add(early);
        }
        report
    }
}
