//! The process's resident set grows by at most the limit (plus a documented slack) while threads leak until full:
//! the allocator's own overhead, alignment padding included, is paid for by the budget too.

use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::thread;

use leak_budget::LeakBudget;

use crate::values::{leak_typed, leak_until_full, repeat_refused};
use crate::{assert_cap_held, lib, start_case};

/// Bytes of slack allowed on top of the limit for the process's resident set growth: the allocator's per-block
/// headers and page rounding (glibc maps blocks of 128 KiB and more one by one, each with a header page), its
/// per-thread arenas' metadata, the two threads' stacks, and the test's own transient buffers. Measured on glibc 2.36
/// with a 64 MiB limit and two threads: growth minus limit from -0.12 MiB to +0.24 MiB over ten runs (see
/// docs/guarantees.md); 2 MiB leaves room for allocator and kernel variation.
const RSS_SLACK: usize = 2 << 20;

/// The process's resident set in bytes, from `/proc/self/statm` (Linux only).
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Two threads leak random requests (every byte handed out is written, so its pages are resident) until the budget is
/// full, and keep asking; then this thread asks too. The resident set grows by at most the limit plus `RSS_SLACK`.
pub(crate) fn resident_memory_grows_by_at_most_the_limit() -> String {
    if cfg!(miri) || resident_bytes().is_none() {
        return "skipped: no /proc/self/statm here (Linux only, and not under Miri)".into();
    }
    let limit = 64 << 20;
    start_case(limit);
    let budget = LeakBudget::named("rss", limit);
    let before = resident_bytes().expect("statm");
    thread::scope(|scope| {
        for t in 0..2 {
            let budget = &budget;
            scope.spawn(move || {
                let run = leak_until_full(budget, 7 + t, false);
                for _ in 0..100_000 {
                    assert!(leak_typed::<[u64; 3]>(budget, 0).is_err());
                }
                repeat_refused(budget, &run.refused, 10);
            });
        }
    });
    let full = resident_bytes().expect("statm");
    for _ in 0..100_000 {
        assert!(leak_typed::<[u8; 100]>(&budget, 0).is_err());
    }
    let growth = full.max(resident_bytes().expect("statm")).saturating_sub(before);
    let summary = assert_cap_held(&budget);
    assert!(
        growth <= limit + RSS_SLACK,
        "resident set grew by {growth} bytes, more than the limit {limit} plus {RSS_SLACK} of slack"
    );
    format!(
        "RSS growth {growth} bytes for a {limit}-byte limit: {:+} bytes beyond the limit (slack allowed \
         {RSS_SLACK}); {summary}",
        growth as isize - limit as isize
    )
}

/// Small values with strict alignments, leaked until refused: the allocator's own alignment padding must be paid
/// for by the budget too, so the resident set still grows by at most the limit plus `RSS_SLACK` for each shape.
pub(crate) fn resident_memory_with_strict_alignments() -> String {
    if cfg!(miri) || resident_bytes().is_none() {
        return "skipped: no /proc/self/statm here (Linux only, and not under Miri)".into();
    }
    let limit = 2 << 20;
    let mut figures = Vec::new();
    for (size, align) in [(1, 1 << 10), (100, 4096), (4096, 4096), (1, 1 << 16), (24, 1 << 21)] {
        let layout = Layout::from_size_align(size, align).expect("valid");
        start_case(limit);
        let budget = LeakBudget::named("rss", limit);
        let before = resident_bytes().expect("statm");
        let mut served = 0;
        while let Ok(memory) = lib(|| budget.leak_layout(layout)) {
            // Touch every byte handed out, as a caller would.
            memory.fill(MaybeUninit::new(1));
            served += 1;
        }
        let growth = resident_bytes().expect("statm").saturating_sub(before);
        assert_cap_held(&budget);
        assert!(
            growth <= limit + RSS_SLACK,
            "{size} bytes aligned to {align}: {served} served, the resident set grew by {growth} bytes, more than the \
             limit {limit} plus {RSS_SLACK} of slack"
        );
        figures.push(format!("{size}B/align {align}: {served} served, RSS growth {growth}"));
    }
    format!("limit {limit} each; {}", figures.join("; "))
}
