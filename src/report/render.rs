//! The report as a table: tree guides, unique labels, sizes in binary units.

use core::fmt;
use std::collections::HashMap;

use super::Report;
use crate::stats::Bytes;

impl Report {
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
