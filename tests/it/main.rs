//! The integration tests that can share a process, in one test binary (as once_cell and bumpalo arrange theirs): one
//! module per concept, selected with libtest filters on module paths (`cargo test --test it -- budget:: intern::`).
//!
//! Test binaries of their own, outside this one: `tests/cap/` (a counting `#[global_allocator]`),
//! `tests/alloc_failure.rs` and `tests/alloc_reentry.rs` (allocators that fail or re-enter on command),
//! `tests/at_exit.rs` (the main thread's destructors at process exit) and `tests/loom/` (`--cfg loom` only). A global
//! allocator, like the main thread, is process-wide, so each of those needs its process to itself.
//!
//! Nothing here depends on being alone in its process: budgets looked up in the process-wide report
//! (`leak_budget::report()`) have names no other module uses, and tests that start a child process select themselves
//! by their full path.
// `static` budgets need `const` constructors, which the loom build does not have; the loom suite is `tests/loom`.
#![cfg(not(loom))]

#[path = "../support/mod.rs"]
mod support;

// Shared with the fuzz target (fuzz/fuzz_targets/budget.rs), which includes the same file; its byte decoder is for
// the fuzz target only.
#[allow(dead_code)]
#[path = "../model/mod.rs"]
mod model;

mod adversarial;
mod api_soundness;
mod budget;
mod cache;
mod cycles;
mod intern;
mod limits;
mod once;
mod properties;
mod properties_components;
mod scan;
#[cfg(feature = "serde")]
mod serde;
mod sizing;
mod stress;
mod tree;
