//! Loom models of the crate's concurrent protocols: loom runs each model under every interleaving of its threads (up
//! to `LOOM_MAX_PREEMPTIONS` preemptions) and fails on any data race, deadlock or failed assertion.
//!
//! Which protocol each model covers, how many executions it explores at the CI bound, what it asserts, and which
//! protocols have no model (and why) is the loom table in `docs/guarantees.md`.
//!
//! ```text
//! RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom
//! ```
//!
//! The thread that writes runs first: the main thread makes the changes a model races, spawned threads read. Loom's
//! first execution runs the main thread until it blocks, and loom backtracks from each load to the last store to the
//! same location; a reader that runs entirely before a writer which itself loads a location before storing to it
//! (every insert, charge and push does) leaves loom no store to backtrack from, and the interleavings where the write
//! comes first are never explored (tokio-rs/loom#166). `table.rs`'s four-doublings model explored 1 execution with
//! its reader on the main thread, and 2,354 with the roles swapped.
//!
//! Models written with [`model`] print `loom model <name>: <N> executions in <T> s` to standard error (shown with
//! `--nocapture`); those written with `loom::model` print loom's own `Completed in N iterations` when `LOOM_LOG=info`.
#![cfg(loom)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

mod budget;
mod cache;
mod chunks;
mod intern;
mod lanes;
mod levels;
mod limits;
mod once;
mod records;
mod report;
mod table;
mod tree;

/// A `'static` budget for one model execution (loom objects cannot live in a `static` across executions).
pub(crate) fn budget(name: &'static str, limit: usize) -> &'static leak_budget::LeakBudget {
    Box::leak(Box::new(leak_budget::LeakBudget::named(name, limit)))
}

/// A `'static` child budget for one model execution.
pub(crate) fn child(
    parent: &'static leak_budget::LeakBudget,
    name: &'static str,
    limit: usize,
) -> &'static leak_budget::LeakBudget {
    Box::leak(Box::new(leak_budget::LeakBudget::child_of(parent, name, limit)))
}

/// How a model is run: loom's defaults (and environment), with the changes a model needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Overrides `LOOM_MAX_PREEMPTIONS` for a model that would otherwise explode; `None` keeps the CI bound.
    pub(crate) preemptions: Option<usize>,
    /// Atomic operations allowed per execution (loom's default, 1,000, is too few for table splits and caches).
    pub(crate) max_branches: usize,
}

impl Bounds {
    /// The CI bound, with room for long executions.
    pub(crate) const CI: Self = Self { preemptions: None, max_branches: 100_000 };

    /// At most `preemptions` preemptions, whatever `LOOM_MAX_PREEMPTIONS` says.
    pub(crate) const fn preemptions(preemptions: usize) -> Self {
        Self { preemptions: Some(preemptions), max_branches: 100_000 }
    }
}

/// Runs `f` under every interleaving loom explores within `bounds`, and prints how many executions that took (the
/// figure loom's `Completed in N iterations` gives: `f` runs once per execution). Returns that count.
pub(crate) fn model(bounds: Bounds, f: impl Fn() + Sync + Send + 'static) -> usize {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = bounds.max_branches;
    if bounds.preemptions.is_some() {
        builder.preemption_bound = bounds.preemptions;
    }
    let executions = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&executions);
    let start = Instant::now();
    builder.check(move || {
        counted.fetch_add(1, Relaxed);
        f();
    });
    let executions = executions.load(Relaxed);
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    let bound = match (bounds.preemptions, builder.preemption_bound) {
        (Some(bound), _) => format!("{bound}, set by the model"),
        (None, Some(bound)) => format!("{bound}, from LOOM_MAX_PREEMPTIONS"),
        (None, None) => "none".to_owned(),
    };
    eprintln!(
        "loom model {name}: {executions} executions in {:.2} s (preemption bound {bound})",
        start.elapsed().as_secs_f64()
    );
    executions
}
