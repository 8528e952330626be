//! [`Stats`]: a snapshot of one budget's figures, and the byte-size formatting shared with the report.

use core::fmt;

/// A snapshot of a budget's figures, from [`LeakBudget::stats`](crate::LeakBudget::stats).
///
/// Each figure is exact when read. While other threads allocate, the figures are read one after another and may come
/// from slightly different instants; with no concurrent allocation, `used <= reserved <= peak_reserved` and
/// `reserved <= limit` hold exactly (the latter unless [`set_limit`](crate::LeakBudget::set_limit) lowered the limit
/// below what was already reserved).
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static BUDGET: LeakBudget = LeakBudget::named("config", 1 << 20);
/// BUDGET.leak_str("hello").unwrap();
/// let stats = BUDGET.stats();
/// assert_eq!(stats.allocations, 1);
/// assert_eq!(stats.used, 5);
/// assert!(stats.reserved >= stats.used && stats.reserved <= stats.limit);
/// println!("{stats}"); // a small table
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The budget's name.
    pub name: &'static str,
    /// The hard cap, in bytes.
    pub limit: usize,
    /// Bytes taken from the global allocator on the budget's behalf (chunks, dedicated blocks, bookkeeping,
    /// tables), plus what its children took.
    pub reserved: usize,
    /// Bytes handed out to callers, alignment padding included.
    pub used: usize,
    /// Values, strings and slices handed out (zero-sized ones are free and not counted).
    pub allocations: usize,
    /// Requests refused (saturating at `usize::MAX`).
    pub rejections: usize,
    /// The highest `reserved` has been.
    pub peak_reserved: usize,
    /// Blocks (chunks and dedicated blocks) taken from the global allocator.
    pub blocks: usize,
    /// Per-thread lanes created (each thread that allocates holds one while it runs).
    pub lanes: usize,
}

impl Stats {
    /// `limit - reserved`: what can still be charged.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(4096);
    /// assert_eq!(BUDGET.stats().remaining(), 4096);
    /// ```
    #[must_use]
    pub const fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.reserved)
    }

    /// `reserved / limit`, from 0.0 to 1.0 (1.0 for a zero limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(4096);
    /// assert_eq!(BUDGET.stats().utilisation(), 0.0);
    /// ```
    #[must_use]
    pub fn utilisation(&self) -> f64 {
        if self.limit == 0 { 1.0 } else { self.reserved as f64 / self.limit as f64 }
    }
}

impl fmt::Display for Stats {
    /// A small aligned table, for a command-line program to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = |part: usize, whole: usize| {
            if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
        };
        writeln!(f, "leak budget `{}`", self.name)?;
        writeln!(f, "  limit          {:>12}", Bytes(self.limit))?;
        writeln!(
            f,
            "  reserved       {:>12}  {:5.1}% of limit",
            Bytes(self.reserved),
            percent(self.reserved, self.limit)
        )?;
        writeln!(
            f,
            "  used           {:>12}  {:5.1}% of reserved",
            Bytes(self.used),
            percent(self.used, self.reserved)
        )?;
        writeln!(f, "  remaining      {:>12}", Bytes(self.remaining()))?;
        writeln!(f, "  peak reserved  {:>12}", Bytes(self.peak_reserved))?;
        writeln!(f, "  allocations    {:>12}", self.allocations)?;
        writeln!(f, "  rejections     {:>12}", self.rejections)?;
        write!(f, "  blocks, lanes  {:>12}", format!("{}, {}", self.blocks, self.lanes))
    }
}

/// A byte count printed with a binary unit (`512 B`, `1.50 KiB`, `64.00 MiB`); honours width and alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let text = if self.0 < 1024 {
            format!("{} B", self.0)
        } else {
            let mut value = self.0 as f64;
            let mut unit = 0;
            while value >= 1024.0 && unit < UNITS.len() - 1 {
                value /= 1024.0;
                unit += 1;
            }
            format!("{value:.2} {}", UNITS[unit])
        };
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pick_the_largest_binary_unit() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(1023).to_string(), "1023 B");
        assert_eq!(Bytes(1024).to_string(), "1.00 KiB");
        assert_eq!(Bytes(1536).to_string(), "1.50 KiB");
        assert_eq!(Bytes(64 << 20).to_string(), "64.00 MiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3.00 GiB");
        assert_eq!(format!("{:>9}|", Bytes(1024)), " 1.00 KiB|");
    }

    #[test]
    fn display_lists_every_figure() {
        let stats = Stats {
            name: "cfg",
            limit: 4096,
            reserved: 1024,
            used: 512,
            allocations: 3,
            rejections: 2,
            peak_reserved: 2048,
            blocks: 1,
            lanes: 1,
        };
        let table = stats.to_string();
        for needle in ["`cfg`", "4.00 KiB", "1.00 KiB", " 25.0% of limit", "512 B", " 50.0% of reserved", "3.00 KiB"] {
            assert!(table.contains(needle), "{needle:?} missing from\n{table}");
        }
        assert_eq!(stats.remaining(), 3072);
        assert!((stats.utilisation() - 0.25).abs() < f64::EPSILON);
    }
}
