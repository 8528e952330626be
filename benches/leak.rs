//! Leaking 24-byte values and identifier-sized strings: leak-budget against `Box::leak`, bumpalo and typed-arena.
//!
//! ```text
//! cargo bench --bench leak                      # optional: LEAK_BUDGET_CORPUS=path/to/tokens.txt
//! ```
//!
//! Leaked memory is never reused, so every contender allocates fresh pages in every sample: leak-budget gets a new
//! budget per sample, bumpalo and typed-arena a new arena that is forgotten (not dropped) afterwards, and `Box::leak`
//! never frees. Nobody gets pages back from an earlier sample, as a program that leaks would not. Because nothing is
//! freed the process grows by roughly (operations measured x bytes per value); the short measurement times below keep
//! that to a few GiB.
//!
//! "2 threads" rows split the same number of operations over two threads and time them together (aggregate
//! nanoseconds per operation), so a design that scales shows about half the 1-thread time.

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use leak_budget::LeakBudget;

/// The 24-byte value of the value benchmarks.
type Value = [u64; 3];

fn fresh_budget() -> &'static LeakBudget {
    Box::leak(Box::new(LeakBudget::named("bench", usize::MAX / 2)))
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
}

/// Runs `work(thread_index, operations)` on `threads` threads at once and times them together, spawning excluded.
fn timed_on_threads(threads: usize, operations: u64, work: impl Fn(usize, u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let per_thread = operations / threads as u64;
        let workers: Vec<_> = (0..threads)
            .map(|index| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(index, per_thread);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        start.elapsed()
    })
}

fn values(c: &mut Criterion) {
    let mut group = c.benchmark_group("leak 24-byte values");
    configure(&mut group);
    group.bench_function("leak-budget LeakBudget::leak", |b| {
        b.iter_custom(|iters| {
            let budget = fresh_budget();
            let start = Instant::now();
            for i in 0..iters {
                black_box(budget.leak([i; 3]).unwrap());
            }
            start.elapsed()
        });
    });
    group.bench_function("bumpalo Bump::alloc", |b| {
        b.iter_custom(|iters| {
            let bump = bumpalo::Bump::new();
            let start = Instant::now();
            for i in 0..iters {
                black_box(bump.alloc([i; 3]));
            }
            let elapsed = start.elapsed();
            std::mem::forget(bump);
            elapsed
        });
    });
    group.bench_function("typed-arena Arena::alloc", |b| {
        b.iter_custom(|iters| {
            let arena = typed_arena::Arena::<Value>::new();
            let start = Instant::now();
            for i in 0..iters {
                black_box(arena.alloc([i; 3]));
            }
            let elapsed = start.elapsed();
            std::mem::forget(arena);
            elapsed
        });
    });
    group.bench_function("std Box::leak", |b| {
        b.iter(|| black_box(Box::leak(Box::new(black_box([7u64; 3])))));
    });
    group.bench_function("leak-budget LeakBudget::leak, 2 threads", |b| {
        b.iter_custom(|iters| {
            let budget = fresh_budget();
            timed_on_threads(2, iters, |_, n| {
                for i in 0..n {
                    black_box(budget.leak([i; 3]).unwrap());
                }
            })
        });
    });
    group.bench_function("bumpalo Bump::alloc, one Bump per thread, 2 threads", |b| {
        b.iter_custom(|iters| {
            timed_on_threads(2, iters, |_, n| {
                let bump = bumpalo::Bump::new();
                for i in 0..n {
                    black_box(bump.alloc([i; 3]));
                }
                std::mem::forget(bump);
            })
        });
    });
    group.bench_function("std Box::leak, 2 threads", |b| {
        b.iter_custom(|iters| {
            timed_on_threads(2, iters, |_, n| {
                for i in 0..n {
                    black_box(Box::leak(Box::new([i; 3])));
                }
            })
        });
    });
    group.finish();
}

fn strings(c: &mut Criterion) {
    let (tokens, label) = common::tokens();
    eprintln!("leak strings: {label}");
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let tokens = &tokens;
    let mut group = c.benchmark_group("leak identifier strings");
    configure(&mut group);
    group.bench_function("leak-budget LeakBudget::leak_str", |b| {
        b.iter_custom(|iters| {
            let budget = fresh_budget();
            let start = Instant::now();
            for token in tokens.iter().cycle().take(iters as usize) {
                black_box(budget.leak_str(token).unwrap());
            }
            start.elapsed()
        });
    });
    group.bench_function("bumpalo Bump::alloc_str", |b| {
        b.iter_custom(|iters| {
            let bump = bumpalo::Bump::new();
            let start = Instant::now();
            for token in tokens.iter().cycle().take(iters as usize) {
                black_box(bump.alloc_str(token));
            }
            let elapsed = start.elapsed();
            std::mem::forget(bump);
            elapsed
        });
    });
    group.bench_function("std Box::leak(Box<str>)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for token in tokens.iter().cycle().take(iters as usize) {
                black_box(Box::leak(Box::<str>::from(*token)));
            }
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, values, strings);
criterion_main!(benches);
