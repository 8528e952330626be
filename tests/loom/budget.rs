//! Loom models of the core: charging, per-thread lanes, lane hand-off and statistics.

use leak_budget::{LeakBudget, LeakError};
use loom::thread;

use crate::budget;

/// What one thread's first leak of a 600-byte value (large enough to take a dedicated block, whose charge is exact,
/// rather than a chunk) charges on a fresh budget: its lane and its dedicated block. Measured on a
/// scratch budget, because the record and lane sizes differ under loom.
fn lane_plus_large() -> usize {
    let scratch = budget("scratch", 1 << 20);
    scratch.leak([0u8; 600]).unwrap();
    scratch.reserved() - LeakBudget::RECORD_BYTES
}

fn range<T>(value: &T) -> (usize, usize) {
    (core::ptr::from_ref(value).addr(), size_of::<T>())
}

#[test]
fn concurrent_leaks_are_disjoint_aligned_and_within_the_limit() {
    loom::model(|| {
        let budget = budget("disjoint", 64 << 10);
        let workers: Vec<_> = (0..2u8)
            .map(|t| {
                thread::spawn(move || {
                    let small = budget.leak(u64::from(t) + 1).unwrap();
                    let large = budget.leak([t; 600]).unwrap();
                    assert_eq!(core::ptr::from_ref(small).addr() % 8, 0);
                    assert!(budget.reserved() <= budget.limit());
                    (small, large)
                })
            })
            .collect();
        let leaked: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let mut ranges = Vec::new();
        for (t, (small, large)) in leaked.iter().enumerate() {
            assert_eq!(**small, t as u64 + 1);
            assert!(large.iter().all(|&b| usize::from(b) == t));
            ranges.push(range(*small));
            ranges.push(range(*large));
        }
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap: {ranges:?}");
        }
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (4, 2 * (8 + 600)));
        assert!(stats.reserved <= stats.limit && stats.peak_reserved <= stats.limit);
    });
}

#[test]
fn two_threads_racing_for_the_last_bytes_one_wins_and_the_loser_charges_nothing_for_it() {
    loom::model(|| {
        let one = lane_plus_large();
        // Room for the record, two lanes, but only one large value.
        let lane_bytes = one - large_charge();
        let budget = budget("race", LeakBudget::RECORD_BYTES + one + lane_bytes);
        let workers: Vec<_> = (0..2u8).map(|t| thread::spawn(move || budget.leak([t; 600]).is_ok())).collect();
        let wins = workers.into_iter().map(|w| w.join().unwrap()).filter(|&won| won).count();
        assert_eq!(wins, 1, "exactly one thread gets the last bytes");
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used, stats.rejections), (1, 600, 1));
        // The loser may have created its lane before seeing there was no room for the value; nothing else.
        let lane_bytes = one - large_charge();
        assert_eq!(stats.reserved, LeakBudget::RECORD_BYTES + large_charge() + stats.lanes * lane_bytes);
        assert!(stats.reserved <= stats.limit);
    });
}

/// What a 600-byte value's dedicated block charges: its size rounded to 8, plus a 16-byte block header.
fn large_charge() -> usize {
    600_usize.next_multiple_of(8) + 16
}

#[test]
fn the_first_request_on_two_threads_creates_one_record() {
    loom::model(|| {
        let budget = budget("first", 64 << 10);
        let workers: Vec<_> = (0..2u32).map(|t| thread::spawn(move || *budget.leak(t).unwrap())).collect();
        let mut values: Vec<u32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        values.sort_unstable();
        assert_eq!(values, [0, 1]);
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (2, 8));
        // Two lanes if the threads overlapped; one if the first exited (releasing its lane) before the second began.
        assert!((1..=2).contains(&stats.lanes), "{stats:?}");
        assert!(stats.reserved <= stats.limit);
    });
}

#[test]
fn a_lane_released_by_an_exiting_thread_is_adopted_safely() {
    loom::model(|| {
        let budget = budget("handoff", 64 << 10);
        let first = thread::spawn(move || budget.leak(1u64).unwrap());
        let second = thread::spawn(move || budget.leak(2u64).unwrap());
        let (a, b) = (first.join().unwrap(), second.join().unwrap());
        assert_eq!((*a, *b), (1, 2));
        assert_ne!(core::ptr::from_ref(a), core::ptr::from_ref(b));
        let third = thread::spawn(move || budget.leak(3u64).unwrap()).join().unwrap();
        assert_eq!(*third, 3);
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (3, 24));
        // The third thread always adopts a released lane; the first two need two only if they overlapped.
        assert!((1..=2).contains(&stats.lanes), "{stats:?}");
    });
}

#[test]
fn statistics_read_during_a_chunk_switch_are_never_torn() {
    loom::model(|| {
        // A chunk takes at most 1/8 of the room (at most 512 bytes here), so each 256-byte value gets a chunk of its
        // own and the second leak switches chunks.
        let budget = budget("switch", 4096);
        let writer = thread::spawn(move || {
            budget.leak([1u64; 32]).unwrap();
            budget.leak([2u64; 32]).unwrap();
        });
        let seen = budget.used();
        assert!(seen == 0 || seen == 256 || seen == 512, "torn read: {seen}");
        writer.join().unwrap();
        let stats = budget.stats();
        assert_eq!((stats.used, stats.allocations), (512, 2));
        assert!(stats.blocks >= 2, "the second value needed a new chunk: {stats:?}");
    });
}

#[test]
fn a_zero_budget_refuses_concurrently_without_charging() {
    loom::model(|| {
        let budget = budget("zero", 0);
        let workers: Vec<_> =
            (0..2u8).map(|t| thread::spawn(move || budget.leak(t).unwrap_err().into_parts())).collect();
        for (t, worker) in workers.into_iter().enumerate() {
            let (value, error) = worker.join().unwrap();
            assert_eq!(usize::from(value), t);
            assert!(matches!(error, LeakError::BudgetExceeded { limit: 0, .. }));
        }
        let stats = budget.stats();
        assert_eq!((stats.reserved, stats.rejections), (0, 2));
    });
}
