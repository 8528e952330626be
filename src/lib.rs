// The README's links point to docs.rs, for GitHub and crates.io; these definitions come first, and the first
// definition of a link wins, so in the crate's own docs the same links resolve to its items.
#![doc = include_str!("readme_links.md")]
#![doc = include_str!("../README.md")]
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    missing_docs,
    missing_debug_implementations
)]
#![warn(clippy::pedantic)]
#![allow(
    // Byte counts shown as percentages and sizes.
    clippy::cast_precision_loss,
    // Hash bits become indices and tags on purpose.
    clippy::cast_possible_truncation,
    // Raw allocations are cast to the types their layouts were computed for; each site says why it is aligned.
    clippy::cast_ptr_alignment,
    // Only on the allocation and look-up fast paths, where inlining was measured to matter.
    clippy::inline_always
)]
#![doc(test(attr(deny(warnings))))]
// On docs.rs, items behind a feature say which one.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod arena;
mod budget;
mod cache;
#[cfg(doctest)]
mod compile_fail_tests;
mod config;
mod error;
mod hash;
mod intern;
mod lazy;
mod marker;
mod once;
mod report;
mod stats;
mod sync;
mod table;

pub use budget::global::{leak, leak_str};
pub use budget::{LeakBudget, MAX_ALIGN};
pub use cache::{CacheStats, Cached, StaticCache};
pub use config::{DEFAULT_GLOBAL_LIMIT, LEAK_BUDGET_VAR, parse_size};
pub use error::{LeakError, Rejected, TryWithError};
#[cfg(not(loom))]
pub use intern::intern;
pub use intern::{Internable, Interned, Interner, Iter as InternerIter};
pub use once::{InitError, LeakLazy, LeakOnce};
pub use report::{
    LEAK_BUDGET_REPORT_VAR, Report, ReportAtExit, ReportEntry, ReportFigures, print_report, report, report_at_exit,
};
pub use stats::Stats;

/// Items the crate's macros expand to. Not public API: no stability promise.
#[doc(hidden)]
pub mod __private {
    pub use crate::once::LeakOnceSite;
}
