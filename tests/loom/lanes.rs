//! Loom model of lane eviction: a thread holds lanes for at most four budgets; a fifth evicts the least recently used
//! lane, releasing it, and another thread may adopt it at once while the evicting thread comes back to that budget.
//!
//! The borrowed lane of a late thread-local destructor (`lane::alloc` once `Held` is destroyed) has no model: loom 0.7
//! marks every thread-local of an ending thread destroyed before it runs any destructor, including `FRONT` (a `const`
//! thread-local with no destructor, which std never destroys), so a leak from a loom thread-local destructor on a
//! thread that leaked before panics in the fast path's `FRONT.with` ("cannot access a (mock) TLS value during or after
//! it is destroyed") before it reaches the borrowed lane. On a thread that never leaked, `FRONT` and `Held` are
//! created afresh during that phase and never dropped, so the leak takes a lane through `Held` (not a borrowed one)
//! and never releases it. (Both checked with a model that was then removed.) Native tests cover the path:
//! `tests/it/adversarial.rs` `thread_local_destructors_leak_after_the_thread_state_is_gone`, `tests/it/budget.rs`
//! `leaking_from_a_thread_local_destructor_works` and `tests/at_exit.rs`.

use std::sync::atomic::{AtomicBool as SeenFlag, Ordering::Relaxed as Seen};

use leak_budget::LeakBudget;
use loom::thread;

use crate::{Bounds, budget};

fn addr(value: &u64) -> usize {
    core::ptr::from_ref(value).addr()
}

static SEEN_ADOPTED_BY_THE_OTHER: SeenFlag = SeenFlag::new(false);
static SEEN_ADOPTED_BACK: SeenFlag = SeenFlag::new(false);

#[test]
fn a_lane_evicted_by_a_fifth_budget_is_adopted_safely() {
    // Few accesses conflict (the evicted lane's `taken` flag and the lane list): at a bound of 8 loom explores all
    // 28 orders of them it distinguishes (as many as with no bound), in a few milliseconds.
    crate::model(Bounds::preemptions(8), || {
        let budgets: [&'static LeakBudget; 5] = core::array::from_fn(|_| budget("evict", 64 << 10));
        for budget in budgets {
            budget.register().unwrap();
        }
        // The main thread holds a lane for each of the first four: its cache is full, and budget 0's lane is the
        // least recently used.
        let first: &'static u64 = budgets[0].leak(1u64).unwrap();
        for budget in &budgets[1..4] {
            budget.leak(0u64).unwrap();
        }
        // The other thread leaks twice into budget 0: in the evicted lane if it finds it free, else in a lane of its
        // own. Were the main thread to keep bumping in its evicted lane (a stale fast path), the two threads would
        // write the lane's private state at once, which loom reports.
        let other = thread::spawn(move || -> [&'static u64; 2] {
            [budgets[0].leak(2u64).unwrap(), budgets[0].leak(4u64).unwrap()]
        });
        // The fifth budget evicts budget 0's lane (released: the other thread may adopt it), then the main thread
        // needs a lane for budget 0 again, and bumps in it twice (the second time on the fast path).
        assert_eq!(*budgets[4].leak(5u64).unwrap(), 5);
        let again: [&'static u64; 2] = [budgets[0].leak(3u64).unwrap(), budgets[0].leak(5u64).unwrap()];
        let theirs = other.join().unwrap();

        assert_eq!([*first, *theirs[0], *theirs[1], *again[0], *again[1]], [1, 2, 4, 3, 5]);
        let mut addresses = [first, theirs[0], theirs[1], again[0], again[1]].map(addr);
        addresses.sort_unstable();
        assert!(addresses.windows(2).all(|pair| pair[0] + 8 <= pair[1]), "overlap: {addresses:?}");
        let stats = budgets[0].stats();
        assert_eq!((stats.allocations, stats.used), (5, 40), "{stats:?}");
        let (first, theirs, theirs_last, again) = (addr(first), addr(theirs[0]), addr(theirs[1]), addr(again[0]));
        // The evicted lane is free for whichever thread looks first; a thread that finds it taken makes its own.
        // (One lane in all if the other thread adopted it and released it on exit before the main thread came back.)
        // A thread that adopts a lane continues in its chunk, just below the last value there.
        assert!((1..=2).contains(&stats.lanes), "{stats:?}");
        if theirs == first - 8 {
            SEEN_ADOPTED_BY_THE_OTHER.store(true, Seen);
        } else if again == first - 8 {
            SEEN_ADOPTED_BACK.store(true, Seen);
        } else {
            assert_eq!(again, theirs_last - 8, "the main thread adopted the lane the other thread made and released");
        }
    });
    assert!(SEEN_ADOPTED_BY_THE_OTHER.load(Seen), "some execution has the other thread adopt the evicted lane");
    assert!(SEEN_ADOPTED_BACK.load(Seen), "some execution has the main thread take it back");
}
