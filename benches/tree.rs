//! A leak into a child budget at depth 2 against a leak into a root, on the fast path: 24-byte values.
//!
//! ```text
//! cargo bench -p leak-budget-benches --bench tree
//! # one row per process, to alternate rows:
//! cargo bench -p leak-budget-benches --bench tree -- --exact "tree: leak 24-byte values/root"
//! ```
//!
//! A leak into a child bumps in the calling thread's lane exactly as a leak into a root does; the tree is only walked
//! when the lane takes a new chunk (every few thousand values here), so the two should cost the same.
//!
//! Leaked memory is never reused, so each sample leaks into a fresh, very large tree (nothing is ever refused) and
//! touches fresh pages, for both rows alike. The process grows by (operations measured x 24 bytes); the short warm-up
//! and measurement times below keep that near 1 GiB per row.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use leak_budget::LeakBudget;

/// The 24-byte value.
type Value = [u64; 3];

/// A fresh root, and `depth` children under it (each child of the previous one); returns the deepest budget.
fn fresh_tree(depth: usize) -> &'static LeakBudget {
    let mut budget: &'static LeakBudget = Box::leak(Box::new(LeakBudget::named("bench-root", usize::MAX / 2)));
    for _ in 0..depth {
        budget = budget.child("bench-child", usize::MAX / 2).expect("the tree is far from its limit");
    }
    budget
}

fn fast_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree: leak 24-byte values");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(50))
        .measurement_time(Duration::from_millis(200))
        .throughput(Throughput::Elements(1));
    for (name, depth) in [("root", 0), ("child at depth 1", 1), ("child at depth 2", 2)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let budget = fresh_tree(depth);
                // The record, the lane and the first chunk are created here, outside the timing.
                budget.leak::<Value>([0; 3]).unwrap();
                let start = Instant::now();
                for i in 0..iters {
                    black_box(budget.leak::<Value>([i; 3]).unwrap());
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fast_path);
criterion_main!(benches);
