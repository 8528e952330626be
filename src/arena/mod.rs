//! Layer 1: where a budget's bytes come from, and how they are counted.
//!
//! Inside the folder a file uses only the files listed before it:
//! - `account.rs`: the hard cap and the counters; a charge goes up the budget tree, all or nothing;
//! - `block.rs`: the only caller of the global allocator: chunks, dedicated blocks, bookkeeping allocations;
//! - `lane.rs`: a bump region held by one thread at a time, and what one request can charge;
//! - `record.rs`: what a budget owns (account, blocks, lanes) and the registry of every budget's record;
//! - `local.rs`: the per-thread lane cache, the allocation fast path.
//!
//! Every byte is charged before it is allocated (`docs/design.md`, "Memory accounting").

pub(crate) mod account;
pub(crate) mod block;
pub(crate) mod lane;
pub(crate) mod local;
pub(crate) mod record;
