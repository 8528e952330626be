//! The hit path of a memo cache: `StaticCache` against a `HashMap` behind `parking_lot::RwLock`, `once_map::OnceMap`
//! and `elsa::sync::FrozenMap`, on 1 and 2 threads, in the same run.
//!
//! ```text
//! cargo bench -p leak-budget-benches --bench cache
//! ```
//!
//! Every contender holds the same 1,000 `u64` keys with 32-byte values, and every timed look-up is a hit (keys drawn
//! from a fixed pseudo-random stream, so hashing and branch prediction see varied keys). Each does what a memoizing
//! caller does on a hit: `StaticCache::get_or_insert_with`, `RwLock::read` then `HashMap::get`, `OnceMap::insert`
//! (its get-or-insert), and `FrozenMap::get` (its `insert_with_key` takes the write lock even on a hit).
//! `StaticCache::get` (no hit counter) is shown too. `StaticCache`, the `RwLock<HashMap>` and `OnceMap` hash with
//! foldhash, so the rows compare synchronisation rather than hashers; `FrozenMap` cannot take a hasher and uses
//! SipHash.
//!
//! "2 threads" rows split the same number of look-ups over two threads, all hitting the same keys, and time them
//! together (aggregate nanoseconds per look-up), so a design that scales shows about half the 1-thread time.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::timed_on_threads;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use leak_budget::{LeakBudget, StaticCache};
use parking_lot::RwLock;

type Value = [u64; 4];
type Hasher = foldhash::fast::RandomState;

const KEYS: u64 = 1000;

fn value_of(key: u64) -> Value {
    [key; 4]
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
}

/// Times `operations` look-ups of the keys of `stream` (cycled) on `threads` threads.
fn time_lookups(threads: usize, operations: u64, stream: &[u64], lookup: impl Fn(u64) + Sync) -> Duration {
    let run = |n: u64| {
        for &key in stream.iter().cycle().take(n as usize) {
            lookup(key);
        }
    };
    if threads == 1 {
        let start = Instant::now();
        run(operations);
        start.elapsed()
    } else {
        timed_on_threads(threads, operations, run)
    }
}

fn hits(c: &mut Criterion) {
    // A fixed xorshift stream of keys.
    let mut state = 0x5eed_cac4e_u64;
    let stream: Vec<u64> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % KEYS
        })
        .collect();
    let stream = &stream;

    let budget: &'static LeakBudget = Box::leak(Box::new(LeakBudget::named("bench", 64 << 20)));
    let cache: &'static StaticCache<u64, Value> = Box::leak(Box::new(StaticCache::in_budget(budget)));
    let locked: RwLock<HashMap<u64, &'static Value, Hasher>> = RwLock::new(HashMap::default());
    let once_map: once_map::sync::OnceMap<u64, Box<Value>, Hasher> =
        once_map::sync::OnceMap::with_hasher(Hasher::default());
    let frozen: elsa::sync::FrozenMap<u64, Box<Value>> = elsa::sync::FrozenMap::new();
    for key in 0..KEYS {
        assert!(cache.get_or_insert_with(&key, |&k| value_of(k)).is_static());
        locked.write().insert(key, Box::leak(Box::new(value_of(key))));
        once_map.insert(key, |&k| Box::new(value_of(k)));
        frozen.insert(key, Box::new(value_of(key)));
    }

    let mut group = c.benchmark_group("cache hit path, u64 keys");
    configure(&mut group);
    for threads in [1, 2] {
        let suffix = if threads == 1 { String::new() } else { format!(", {threads} threads") };
        group.bench_function(format!("leak-budget StaticCache::get_or_insert_with{suffix}"), |b| {
            b.iter_custom(|iters| {
                time_lookups(threads, iters, stream, |key| {
                    black_box(cache.get_or_insert_with(black_box(&key), |&k| value_of(k)));
                })
            });
        });
        group.bench_function(format!("leak-budget StaticCache::get{suffix}"), |b| {
            b.iter_custom(|iters| {
                time_lookups(threads, iters, stream, |key| {
                    black_box(cache.get(&black_box(key)));
                })
            });
        });
        group.bench_function(format!("parking_lot RwLock<HashMap>::read().get{suffix}"), |b| {
            b.iter_custom(|iters| {
                time_lookups(threads, iters, stream, |key| {
                    let found = locked.read().get(&black_box(key)).copied();
                    black_box(found.unwrap_or_else(|| *locked.write().entry(key).or_insert_with(|| unreachable!())));
                })
            });
        });
        group.bench_function(format!("once_map OnceMap::insert (hit){suffix}"), |b| {
            b.iter_custom(|iters| {
                time_lookups(threads, iters, stream, |key| {
                    black_box(once_map.insert(black_box(key), |&k| Box::new(value_of(k))));
                })
            });
        });
        group.bench_function(format!("elsa FrozenMap::get{suffix}"), |b| {
            b.iter_custom(|iters| {
                time_lookups(threads, iters, stream, |key| {
                    let key = black_box(key);
                    black_box(
                        frozen.get(&key).unwrap_or_else(|| frozen.insert_with_key(key, |&k| Box::new(value_of(k)))),
                    );
                })
            });
        });
    }
    group.finish();
    eprintln!("cache stats after the run: {}", cache.stats());
}

criterion_group!(benches, hits);
criterion_main!(benches);
