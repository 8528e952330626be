//! Interning a real token stream (every identifier of a source tree, in order): leak-budget against ustr, lasso,
//! internment, symbol_table, string-interner and a plain `HashSet` + `Box::leak`, in the same run.
//!
//! ```text
//! # without LEAK_BUDGET_CORPUS: a generated stream
//! LEAK_BUDGET_CORPUS=/path/to/idents.txt cargo bench -p leak-budget-benches --bench intern
//! ```
//!
//! Build workloads run each sample in a fresh child process (this binary, re-executed), which times only the
//! interning and reports it: every contender starts from an empty table (ustr and internment have one table per
//! process, which could not otherwise be reset) on fresh pages. The hit path runs in this process on a warm interner.
//! Throughput is tokens per second; ns per token is its inverse. "2 threads, same stream" counts both threads'
//! tokens.

mod common;

use std::time::Duration;

use common::interners::{Contender, Local, Workload, child_main, timed_in_child};
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, tokens: usize) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(tokens as u64));
}

fn in_children(c: &mut Criterion, title: &str, workload: Workload, tokens: usize, thread_safe_only: bool) {
    let mut group = c.benchmark_group(title);
    configure(&mut group, tokens);
    for contender in Contender::ALL {
        if thread_safe_only && !contender.thread_safe() {
            continue;
        }
        group.bench_function(contender.name(), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| timed_in_child(workload, contender)).sum());
        });
    }
    group.finish();
}

fn hit_path(c: &mut Criterion, tokens: &[&str]) {
    let mut group = c.benchmark_group("intern hit path (all present), 1 thread");
    configure(&mut group, tokens.len());
    for contender in Contender::ALL {
        let mut interner = Local::new(contender);
        interner.intern_all(tokens);
        group.bench_function(contender.name(), |b| b.iter(|| interner.intern_all(tokens)));
        std::mem::forget(interner);
    }
    group.finish();
}

/// Interning N distinct identifier-like keys into a fresh interner, each once (every one a miss), for N = 10^5, 10^6
/// and 10^7: the cost of growing the table, which the corpus (97% hits) hides. A fresh process per sample; one sample
/// is one whole run, so criterion's samples are flat.
fn misses_at_scale(c: &mut Criterion) {
    for count in [100_000_usize, 1_000_000, 10_000_000] {
        let mut group = c.benchmark_group(format!("intern misses at scale, {count} distinct keys, 1 thread"));
        group
            .sample_size(10)
            .sampling_mode(criterion::SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Elements(count as u64));
        for contender in [Contender::LeakBudget, Contender::StringInterner, Contender::Ustr] {
            group.bench_function(contender.name(), |b| {
                b.iter_custom(|iters| {
                    (0..iters).map(|_| common::timed_in_child(&format!("misses-{count}:{}", contender.name()))).sum()
                });
            });
        }
        group.finish();
    }
}

fn main() {
    if child_main() {
        return;
    }
    let (owned, label) = common::tokens();
    eprintln!("token stream: {label}");
    let tokens: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut criterion = Criterion::default().configure_from_args();
    in_children(&mut criterion, "intern build, 1 thread", Workload::Build, tokens.len(), false);
    in_children(
        &mut criterion,
        "intern build, 2 threads, same stream",
        Workload::SameStreamTwoThreads,
        2 * tokens.len(),
        true,
    );
    in_children(
        &mut criterion,
        "intern build, 2 threads, disjoint halves",
        Workload::HalvesTwoThreads,
        tokens.len(),
        true,
    );
    hit_path(&mut criterion, &tokens);
    misses_at_scale(&mut criterion);
    criterion.final_summary();
}
