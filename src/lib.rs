#![doc = include_str!("../README.md")]
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    missing_docs,
    missing_debug_implementations
)]
#![warn(clippy::pedantic)]
#![allow(clippy::module_name_repetitions, clippy::cast_precision_loss)]
#![doc(test(attr(deny(warnings))))]

mod account;
mod arena;
mod budget;
mod cache;
mod config;
mod error;
mod global;
mod intern;
mod lane;
mod once;
mod report;
mod stats;
mod sync;
mod table;
mod tree;

pub use budget::LeakBudget;
pub use config::{DEFAULT_GLOBAL_LIMIT, LEAK_BUDGET_VAR, parse_size};
pub use error::{LeakError, Rejected};
pub use global::{leak, leak_str};
pub use stats::Stats;

/// The largest alignment a budget accepts: 2^29, the largest alignment a Rust type can have.
pub const MAX_ALIGN: usize = 1 << 29;
