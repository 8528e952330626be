//! Loom models of every concurrent protocol in the crate: loom runs each model under every interleaving of its
//! threads (up to `LOOM_MAX_PREEMPTIONS` preemptions) and fails on any data race, deadlock or failed assertion.
//!
//! ```text
//! RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom
//! ```
#![cfg(loom)]

mod budget;
mod cache;
mod intern;
mod once;
mod tree;

/// A `'static` budget for one model execution (loom objects cannot live in a `static` across executions).
pub(crate) fn budget(name: &'static str, limit: usize) -> &'static leak_budget::LeakBudget {
    Box::leak(Box::new(leak_budget::LeakBudget::named(name, limit)))
}
