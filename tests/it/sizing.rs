//! The overhead figures the README quotes, measured through the library's own figures (`stats()`, `reserved()`,
//! `RECORD_BYTES`) rather than assumed, and held in ranges that a regression in the bookkeeping would break. Each test
//! prints its figures: `cargo test --test it -- sizing:: --nocapture`.
//!
//! Interners and caches hash with a random seed per instance, so how many values fit before the first refusal varies
//! a little from one instance to the next: those figures are taken over several instances.

use core::mem::size_of;

use leak_budget::{Interner, LeakBudget, LeakError, LeakLazy, LeakOnce, StaticCache, Stats};

use crate::support::{budget, leaked, scaled};

/// A fresh budget of `limit` bytes after its first `u64`.
fn after_one_u64(limit: usize) -> (&'static LeakBudget, Stats) {
    let budget = budget(limit);
    budget.leak(1u64).unwrap();
    (budget, budget.stats())
}

#[test]
fn a_budgets_first_value_costs_its_record_a_lane_and_a_chunk() {
    const RECORD: usize = LeakBudget::RECORD_BYTES;
    let (_, tiny) = after_one_u64(256);
    let (_, small) = after_one_u64(4 << 10);
    let (_, medium) = after_one_u64(64 << 10);
    let (large_budget, large) = after_one_u64(1 << 20);
    eprintln!(
        "first u64: record {RECORD} B; reserved in 256 B: {}, 4 KiB: {}, 64 KiB: {}, 1 MiB: {}",
        tiny.reserved, small.reserved, medium.reserved, large.reserved
    );
    for stats in [tiny, small, medium, large] {
        assert_eq!((stats.used, stats.allocations, stats.blocks), (8, 1, 1), "{stats}");
    }

    // Too small for a lane: the record and a block of the value's own (the value and a small header).
    assert_eq!(tiny.lanes, 0);
    let block = tiny.reserved - RECORD;
    assert!((8..=40).contains(&block), "{tiny}");
    // From 1 MiB up, a lane and its first chunk of 4 KiB.
    assert_eq!(large.lanes, 1);
    let lane = large.reserved - RECORD - 4096;
    assert!((64..=256).contains(&lane), "{large}");
    // Below that, the chunk is at most 1/32 of the limit (but 1 KiB at least), and 1/8 of the room left.
    assert_eq!(medium.reserved, RECORD + lane + (64 << 10) / 32, "{medium}");
    assert!(small.reserved <= RECORD + lane + 1024 && small.reserved > RECORD + lane, "{small}");
    #[cfg(target_pointer_width = "64")]
    assert_eq!((RECORD, block, lane, small.reserved), (128, 24, 128, 736));

    // The chunk serves many values: a hundred more charge nothing. Another thread pays for its own lane and chunk.
    for n in 0..100u64 {
        large_budget.leak(n).unwrap();
    }
    assert_eq!(large_budget.reserved(), large.reserved);
    std::thread::spawn(move || large_budget.leak(2u64).map(|_| ()).unwrap()).join().unwrap();
    assert_eq!(large_budget.reserved(), large.reserved + lane + 4096);
}

#[test]
fn an_interner_in_a_4_kib_budget_holds_about_a_hundred_8_byte_strings() {
    let runs = scaled(64, 2);
    let mut counts = Vec::new();
    let mut first_costs = Vec::new();
    let mut bytes_per_string = 0.0;
    for _ in 0..runs {
        let budget = budget(4 << 10);
        let strings = leaked(Interner::<str>::in_budget(budget));
        strings.intern("00000000").unwrap();
        first_costs.push(budget.reserved());
        let mut count = 1;
        let error = loop {
            match strings.intern(&format!("{count:08}")) {
                Ok(_) => count += 1,
                Err(error) => break error,
            }
        };
        assert!(matches!(error, LeakError::BudgetExceeded { .. }), "{error}");
        let stats = budget.stats();
        assert!(stats.reserved <= 4096, "{stats}");
        assert!((0..count).all(|n| strings.get(&format!("{n:08}")).is_some()));
        // The first sixteen fit in the first bucket, far from the limit.
        assert!(count >= 16, "{count} strings\n{stats}");
        bytes_per_string += stats.used as f64 / count as f64 / runs as f64;
        counts.push(count);
    }
    counts.sort_unstable();
    let mean = counts.iter().sum::<usize>() as f64 / runs as f64;
    let first = first_costs[0];
    assert!(first_costs.iter().all(|&cost| cost == first), "the first string costs the same in every interner");

    // A table's shards follow its budget's limit: one in 4 KiB, sixteen from 1 MiB.
    let large = budget(1 << 20);
    let strings = leaked(Interner::<str>::in_budget(large));
    strings.intern("00000000").unwrap();
    eprintln!(
        "Interner<str> in 4 KiB: the first string reserves {first} B (in 1 MiB: {} B); 8-byte strings until the \
         first refusal: mean {mean:.1}, min {}, median {}, max {} over {runs} interners; {bytes_per_string:.1} B \
         used per string",
        large.reserved(),
        counts[0],
        counts[runs / 2],
        counts[runs - 1]
    );
    assert!(first <= 4096 / 3, "one shard in a small budget: {first} B");
    assert!(large.reserved() > first + 4096, "sixteen shards in a large one: {} B", large.reserved());
    if !cfg!(miri) {
        assert!(mean >= 95.0, "mean {mean} over {runs} interners: {counts:?}");
        assert!(counts[runs / 2] >= 90, "{counts:?}");
    }
    assert!(counts[runs - 1] <= 4096 / 24, "more strings than their entries could hold: {counts:?}");
}

/// Sequential keys, as a memoized function sees them. With most hash seeds about 1,550 entries fit; with an unlucky
/// seed a directory doubles early (to 16 KiB here) and the cache is full with a few hundred: the floor below allows
/// for that, the state's own cost is the same for every seed.
#[test]
fn a_static_cache_of_u64_in_64_kib_holds_about_1500_entries() {
    let runs = scaled(8, 1);
    let mut counts = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..runs {
        let budget = budget(64 << 10);
        let cache = leaked(StaticCache::<u64, u64>::in_budget(budget));
        assert_eq!(budget.reserved(), 0, "nothing before the first insert");
        cache.get_or_insert_with(&0, |&k| k);
        firsts.push(budget.reserved());
        let mut count = 1;
        while cache.try_get_or_insert_with(&count, |&k| k * 3).is_ok() {
            count += 1;
        }
        let stats = budget.stats();
        assert!(stats.reserved <= stats.limit, "{stats}");
        assert_eq!(cache.len() as u64, count);
        assert!(cache.is_full());
        assert!((0..count).all(|k| cache.get(&k) == Some(&(if k == 0 { 0 } else { k * 3 }))));
        counts.push(count);
    }
    counts.sort_unstable();
    let first = firsts[0];
    eprintln!(
        "StaticCache<u64, u64> in 64 KiB: the first entry reserves {first} B (the budget's record, a lane and chunk, \
         the cache's state); sequential keys until the first refusal: min {}, median {}, max {} over {runs} caches",
        counts[0],
        counts[runs / 2],
        counts[runs - 1]
    );
    assert!(firsts.iter().all(|&cost| cost == first), "{firsts:?}");
    assert!(first > 4096 && first <= 6 << 10, "the cache's state and first entry: {first} B");
    #[cfg(target_pointer_width = "64")]
    assert_eq!(first, 5504);
    assert!(counts[runs - 1] <= (64 << 10) / 32, "more entries than their bytes could hold: {counts:?}");
    if !cfg!(miri) {
        assert!(counts[0] >= 256, "{counts:?}");
    }
}

#[test]
fn once_cells_and_lazies_cost_their_value_and_nothing_more() {
    let shape = |stats: Stats| (stats.reserved, stats.used, stats.allocations, stats.blocks, stats.lanes);
    for limit in [256, 1 << 20] {
        let (_, plain) = after_one_u64(limit);
        let once_budget = budget(limit);
        let once = LeakOnce::<u64>::in_budget(once_budget);
        once.get_or_init(|| 1).unwrap();
        let lazy_budget = budget(limit);
        let lazy = LeakLazy::<u64>::in_budget(lazy_budget, || 1);
        assert_eq!(*lazy, 1);
        assert_eq!(shape(once_budget.stats()), shape(plain), "LeakOnce in {limit} B");
        assert_eq!(shape(lazy_budget.stats()), shape(plain), "LeakLazy in {limit} B");
    }
    let (once, lazy) = (size_of::<LeakOnce<u64>>(), size_of::<LeakLazy<u64>>());
    eprintln!("size_of: LeakOnce<u64> {once} B, LeakLazy<u64> {lazy} B; once set, each charges only its value");
    assert_eq!(lazy, once + size_of::<fn() -> u64>());
    assert!(once <= 5 * size_of::<usize>(), "the cell, its budget and its owner: {once}");
    #[cfg(target_pointer_width = "64")]
    assert_eq!((once, lazy), (40, 48));
}
