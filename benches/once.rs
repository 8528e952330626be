//! The cost of reading an initialised once-cell: `LeakOnce::get` (and a `leak_once!` call site) against
//! `std::sync::OnceLock::get` and `once_cell::sync::OnceCell::get`, in one group so each is a line of the same run.
//!
//! ```text
//! cargo bench -p leak-budget-benches --bench once
//! ```

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use leak_budget::{LeakBudget, LeakOnce};

fn get_initialised(c: &mut Criterion) {
    let budget: &'static LeakBudget = Box::leak(Box::new(LeakBudget::named("bench", 1 << 20)));
    let leak_once: LeakOnce<u64> = LeakOnce::in_budget(budget);
    leak_once.get_or_init(|| 42).expect("the budget has room for a u64");
    let once_lock: OnceLock<u64> = OnceLock::new();
    once_lock.get_or_init(|| 42);
    let once_cell: once_cell::sync::OnceCell<u64> = once_cell::sync::OnceCell::new();
    once_cell.get_or_init(|| 42);

    let mut group = c.benchmark_group("once/get_initialised");
    group.bench_function("LeakOnce::get", |b| b.iter(|| *black_box(&leak_once).get().unwrap()));
    group.bench_function("OnceLock::get", |b| b.iter(|| *black_box(&once_lock).get().unwrap()));
    group.bench_function("once_cell::sync::OnceCell::get", |b| b.iter(|| *black_box(&once_cell).get().unwrap()));
    // A call site is a hidden `static`, which loom builds cannot initialise at compile time.
    #[cfg(not(loom))]
    group.bench_function("leak_once!", |b| b.iter(|| *leak_budget::leak_once!(in budget, 42_u64).unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = get_initialised
}
criterion_main!(benches);
