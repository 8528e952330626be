//! `LeakBudget`: leaking, refusals, accounting and bad input; `leak_try_with` and the slice builders.

use core::alloc::Layout;
use core::fmt;
use core::mem::size_of;
use std::cell::Cell;
use std::error::Error as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use leak_budget::{LeakBudget, LeakError, MAX_ALIGN, Rejected, Stats, TryWithError};

use crate::support::{bounded_with, budget, leaked, panic_message, scaled, without_rejections};

/// Asserts that no two `[start, start + len)` ranges overlap.
fn assert_disjoint(mut ranges: Vec<(usize, usize)>) {
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((a, a_len), (b, _)) = (pair[0], pair[1]);
        assert!(a + a_len <= b, "ranges {a:#x}+{a_len} and {b:#x} overlap");
    }
}

#[test]
fn leaked_values_are_intact_aligned_and_disjoint() {
    #[repr(align(64))]
    #[derive(Debug, PartialEq)]
    struct Wide(u8);

    let budget = budget(1 << 20);
    let mut ranges = Vec::new();
    for i in 0..scaled(2000, 200) {
        let byte: &'static mut u8 = budget.leak(i as u8).unwrap();
        let word: &'static mut u64 = budget.leak(i as u64 * 3).unwrap();
        let wide: &'static mut Wide = budget.leak(Wide(i as u8)).unwrap();
        let text: &'static str = budget.leak_str(&format!("item-{i}")).unwrap();
        assert_eq!((*byte, *word, wide.0, text), (i as u8, i as u64 * 3, i as u8, format!("item-{i}").as_str()));
        assert_eq!(core::ptr::from_ref(word).addr() % align_of::<u64>(), 0); // 8 on 64-bit targets, 4 on i686
        assert_eq!(core::ptr::from_ref(wide).addr() % 64, 0);
        ranges.push((core::ptr::from_ref(byte).addr(), 1));
        ranges.push((core::ptr::from_ref(word).addr(), 8));
        ranges.push((core::ptr::from_ref(wide).addr(), 64));
        ranges.push((text.as_ptr().addr(), text.len()));
    }
    assert_disjoint(ranges);
    let stats = budget.stats();
    assert_eq!(stats.allocations, scaled(2000, 200) * 4);
    assert!(stats.used <= stats.reserved && stats.reserved <= stats.limit, "{stats}");
}

#[test]
fn figures_track_each_request() {
    let budget = budget(1 << 20);
    assert_eq!((budget.reserved(), budget.used(), budget.remaining()), (0, 0, 1 << 20));
    budget.leak(7u32).unwrap();
    let after_one = budget.stats();
    assert_eq!((after_one.used, after_one.allocations, after_one.rejections), (4, 1, 0));
    assert!(after_one.reserved >= LeakBudget::RECORD_BYTES + 4);
    assert_eq!(after_one.peak_reserved, after_one.reserved);
    assert_eq!(budget.remaining(), budget.limit() - after_one.reserved);

    budget.leak_slice(&[1u16, 2, 3]).unwrap();
    let after_two = budget.stats();
    assert_eq!((after_two.used, after_two.allocations), (10, 2));
    // The second value fits in the first chunk: nothing new is charged.
    assert_eq!(after_two.reserved, after_one.reserved);
}

#[test]
fn refused_value_comes_back_and_nothing_else_changes() {
    let budget = budget(16 << 10);
    budget.leak(1u8).unwrap();
    let before = budget.stats();
    let precious = vec![String::from("keep me"); 4000];
    let refused: Rejected<Vec<String>> = budget.leak_vec(precious).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { budget: "test", limit: 16384, .. }));
    let after = budget.stats();
    assert_eq!(without_rejections(after), without_rejections(before));
    assert_eq!(after.rejections, before.rejections + 1);
    let back = refused.into_inner();
    assert_eq!((back.len(), back[3999].as_str()), (4000, "keep me"));
}

#[test]
fn budget_exceeded_says_what_was_asked_what_was_left_and_what_to_do() {
    let budget = budget(4096);
    let error = budget.leak([0u8; 8192]).unwrap_err().into_parts().1;
    let LeakError::BudgetExceeded { budget: name, requested, value, remaining, limit, global } = error.clone() else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!((name, value, remaining, limit, global), ("test", 8192, 4096, 4096, false));
    assert!(requested > 8192);
    let message = error.to_string();
    let bookkeeping = (requested - value).to_string();
    for needle in
        ["`test`", "8192-byte value", &requested.to_string(), &bookkeeping, "4096", "raise this budget's limit"]
    {
        assert!(message.contains(needle), "{needle:?} missing from {message:?}");
    }
    // The advice about LEAK_BUDGET is for the global budget only.
    assert!(!message.contains("LEAK_BUDGET"), "{message}");
}

#[test]
fn a_refusal_that_needs_no_bookkeeping_names_one_figure() {
    // A table's growth or a child's record is not one value: `value` equals `requested`, and the message gives one
    // figure.
    let error =
        LeakError::BudgetExceeded { budget: "b", requested: 100, value: 100, remaining: 10, limit: 50, global: false };
    let message = error.to_string();
    assert!(message.contains("this request needs 100 bytes, but only 10 of its 50 bytes remain"), "{message}");
}

#[test]
fn only_the_global_budgets_refusals_advise_leak_budget() {
    let child = LeakBudget::global().child("tiny child", 0).unwrap();
    let message = child.leak(1u64).unwrap_err().error().to_string();
    assert!(!message.contains("LEAK_BUDGET") && message.contains("set_limit"), "{message}");
    // The global budget's own refusal names the variable.
    let huge = LeakBudget::global().limit() + 1;
    let error = LeakBudget::global().leak_layout(core::alloc::Layout::from_size_align(huge, 1).unwrap()).unwrap_err();
    let LeakError::BudgetExceeded { global, .. } = error else { panic!("unexpected error {error:?}") };
    assert!(global && error.to_string().contains("LEAK_BUDGET=512MiB"), "{error}");
}

#[test]
fn zero_budget_refuses_every_byte_and_serves_zero_sized_requests() {
    let budget = budget(0);
    budget.leak(()).unwrap();
    budget.leak([0u64; 0]).unwrap();
    assert_eq!(budget.leak_str("").unwrap(), "");
    assert_eq!(budget.leak_slice::<u32>(&[]).unwrap(), &[] as &[u32]);
    assert_eq!(budget.leak_vec(vec![(); 1000]).unwrap().len(), 1000);
    assert_eq!(budget.leak_uninit_slice::<u8>(0).unwrap().len(), 0);
    assert_eq!(budget.reserved(), 0);

    let refused = budget.leak(5u8).unwrap_err();
    assert_eq!(*refused.value(), 5);
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { remaining: 0, limit: 0, .. }));
    assert!(budget.leak_str("x").is_err());
    assert!(budget.leak_with(|| -> u8 { panic!("not called") }).is_err());
    let stats = budget.stats();
    assert_eq!((stats.reserved, stats.used, stats.allocations, stats.rejections, stats.blocks), (0, 0, 0, 3, 0));
}

#[test]
fn zero_sized_values_are_aligned_and_free() {
    #[repr(align(4096))]
    struct Aligned;

    let budget = budget(1 << 20);
    let unit: &'static mut () = budget.leak(()).unwrap();
    let aligned: &'static mut Aligned = budget.leak(Aligned).unwrap();
    assert_eq!(core::ptr::from_mut(aligned).addr() % 4096, 0);
    let _ = unit;
    let zsts = budget.leak_vec(vec![Aligned, Aligned]).unwrap();
    assert_eq!(zsts.len(), 2);
    assert_eq!(zsts.as_ptr().addr() % 4096, 0);
    assert_eq!((budget.reserved(), budget.stats().allocations), (0, 0));
}

#[test]
fn first_request_threshold_is_exact_and_a_refusal_charges_nothing() {
    for layout in [Layout::new::<[u8; 24]>(), Layout::new::<u8>(), Layout::from_size_align(3000, 512).unwrap()] {
        let bound = LeakBudget::RECORD_BYTES + LeakBudget::max_charge_for(layout);
        assert!(budget(bound).leak_layout(layout).is_ok(), "{layout:?} must fit in {bound}");
        // The smallest limit that serves this first request: every smaller limit refuses it and charges nothing.
        let (mut refuses, mut serves) = (0, bound);
        while serves - refuses > 1 {
            let mid = usize::midpoint(refuses, serves);
            if budget(mid).leak_layout(layout).is_ok() { serves = mid } else { refuses = mid }
        }
        assert!(serves > layout.size(), "bookkeeping is charged too");
        let just_short = budget(serves - 1);
        assert!(matches!(just_short.leak_layout(layout), Err(LeakError::BudgetExceeded { .. })));
        assert_eq!((just_short.reserved(), just_short.stats().rejections), (0, 1));
        // A limit equal to the value's size, or one less, cannot hold it with its bookkeeping.
        for limit in [layout.size(), layout.size() - 1] {
            assert!(budget(limit).leak_layout(layout).is_err());
        }
    }
}

#[test]
fn a_request_that_fits_in_what_remains_is_served() {
    let budget = budget(64 << 10);
    budget.leak(0u8).unwrap();
    let layout = Layout::new::<[u64; 3]>();
    // Keep leaking while the documented bound says there is room: none of these may fail.
    while budget.remaining() >= LeakBudget::max_charge_for(layout) {
        budget.leak([1u64; 3]).expect("room for it was left");
    }
    let stats = budget.stats();
    assert!(stats.reserved <= stats.limit);
    assert_eq!(stats.rejections, 0);
}

#[test]
fn oversized_and_overflowing_requests_fail_cleanly() {
    let budget = budget(1 << 20);
    let huge = budget.leak_uninit_slice::<u64>(usize::MAX / 4).unwrap_err();
    assert_eq!(huge, LeakError::SizeOverflow { elem_size: 8, len: usize::MAX / 4 });
    let max_layout = Layout::from_size_align(isize::MAX as usize, 1).unwrap();
    assert!(matches!(budget.leak_layout(max_layout), Err(LeakError::SizeOverflow { .. })));
    let nearly = Layout::from_size_align(isize::MAX as usize / 2, 8).unwrap();
    assert!(matches!(budget.leak_layout(nearly), Err(LeakError::BudgetExceeded { .. })));
    assert_eq!(budget.reserved(), 0, "nothing was charged for requests that could never fit");
    assert_eq!(budget.stats().rejections, 3);
    budget.leak(1u8).unwrap();
}

#[test]
fn alignments_up_to_the_maximum_work_and_beyond_it_fail_cleanly() {
    for shift in [0, 3, 4, 7, 12, 16, 20, 29] {
        let align = 1usize << shift;
        let layout = Layout::from_size_align(24, align).unwrap();
        // The charge covers the worst-case alignment padding: 2^29 alignment costs 512 MiB of budget (address space,
        // not resident memory: only the value's page is touched).
        let budget = budget(LeakBudget::RECORD_BYTES + LeakBudget::max_charge_for(layout));
        let bytes = budget.leak_layout(layout).unwrap();
        assert_eq!((bytes.len(), bytes.as_ptr().addr() % align), (24, 0), "align 2^{shift}");
    }
    let budget = budget(1 << 20);
    let too_strict = Layout::from_size_align(1, MAX_ALIGN * 2).unwrap();
    assert_eq!(budget.leak_layout(too_strict).unwrap_err(), LeakError::UnsupportedAlignment { align: MAX_ALIGN * 2 });
    let stats = budget.stats();
    assert!(stats.reserved <= stats.limit && stats.rejections == 1, "{stats}");
}

#[test]
fn a_million_rejections_overflow_nothing() {
    let budget = budget(0);
    let count = scaled(1_000_000, 2_000);
    for i in 0..count {
        assert_eq!(budget.leak(i).unwrap_err().into_inner(), i);
    }
    let stats = budget.stats();
    assert_eq!((stats.rejections, stats.reserved, stats.allocations), (count, 0, 0));
}

#[test]
fn leak_with_runs_the_initialiser_only_after_reserving() {
    let budget = budget(1 << 20);
    let calls = Cell::new(0);
    let value = budget
        .leak_with(|| {
            calls.set(calls.get() + 1);
            [9u32; 256]
        })
        .unwrap();
    assert_eq!((value[255], calls.get()), (9, 1));

    let empty = self::budget(0);
    assert!(empty.leak_with(|| calls.set(calls.get() + 1)).is_ok(), "a zero-sized value needs no room");
    assert!(empty.leak_with(|| -> u64 { unreachable!("not called when refused") }).is_err());
    assert_eq!(calls.get(), 2);
}

#[test]
fn leak_with_may_leak_into_the_same_budget_from_its_initialiser() {
    let budget = budget(1 << 20);
    let outer = budget.leak_with(|| budget.leak_str("inner").unwrap()).unwrap();
    assert_eq!(*outer, "inner");
    let outer_at = core::ptr::from_ref(outer).addr();
    let inner_at = outer.as_ptr().addr();
    assert!(inner_at + 5 <= outer_at || outer_at + 16 <= inner_at, "disjoint");
}

#[test]
#[cfg_attr(miri, ignore = "unwinding through a panicking initialiser is covered natively; slow under Miri")]
fn a_panicking_initialiser_leaves_the_budget_consistent() {
    let budget = budget(1 << 20);
    let result = std::panic::catch_unwind(|| budget.leak_with(|| -> [u8; 32] { panic!("initialiser failed") }));
    assert!(result.is_err());
    let stats = budget.stats();
    // The reserved bytes are counted as used (documented); nothing else changed.
    assert_eq!((stats.used, stats.allocations), (32, 1));
    assert!(stats.used <= stats.reserved && stats.reserved <= stats.limit);
    assert_eq!(*budget.leak(5u8).unwrap(), 5);
}

#[test]
fn leak_vec_moves_elements_without_dropping_them() {
    struct CountsDrops<'a>(&'a Cell<usize>);
    impl Drop for CountsDrops<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops: &'static Cell<usize> = budget(4 << 10).leak(Cell::new(0)).expect("room for the counter");
    let budget = budget(1 << 20);
    let values = (0..10).map(|_| CountsDrops(drops)).collect::<Vec<_>>();
    let leaked = budget.leak_vec(values).unwrap();
    assert_eq!((leaked.len(), drops.get()), (10, 0));
    let Err(refused) = self::budget(0).leak_vec((0..3).map(|_| CountsDrops(drops)).collect()) else {
        panic!("a zero budget cannot hold three values");
    };
    assert_eq!(drops.get(), 0, "a refused vec is given back, not dropped");
    drop(refused);
    assert_eq!(drops.get(), 3);
}

#[test]
fn a_dropped_local_budget_leaves_its_references_valid() {
    let leaked: Vec<&'static str> = {
        let local = LeakBudget::named("local", 1 << 20);
        (0..100).map(|i| local.leak_str(&format!("value {i}")).unwrap()).collect()
    };
    for (i, text) in leaked.iter().enumerate() {
        assert_eq!(*text, format!("value {i}"));
    }
}

#[test]
fn values_cross_threads_as_static_references() {
    let budget = budget(1 << 20);
    let shared: &'static Vec<u32> = budget.leak((0..100).collect()).unwrap();
    let threads: Vec<_> = (0..4).map(|t| thread::spawn(move || shared.iter().sum::<u32>() + t)).collect();
    let sums: Vec<u32> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(sums, [4950, 4951, 4952, 4953]);
}

#[test]
fn concurrent_leaks_are_disjoint_and_stay_within_the_limit() {
    let threads = 4;
    let per_thread = scaled(20_000, 200);
    let budget = budget(4 << 20);
    let barrier = Barrier::new(threads);
    let ranges: Vec<Vec<(usize, usize)>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut ranges = Vec::with_capacity(per_thread);
                    for i in 0..per_thread {
                        let value = budget.leak([t as u64, i as u64, 7]).unwrap();
                        assert_eq!(*value, [t as u64, i as u64, 7]);
                        ranges.push((core::ptr::from_ref(value).addr(), 24));
                        assert!(budget.reserved() <= budget.limit());
                    }
                    ranges
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_disjoint(ranges.concat());
    let stats = budget.stats();
    assert_eq!(stats.allocations, threads * per_thread);
    assert_eq!(stats.used, threads * per_thread * 24);
    assert!(stats.reserved <= stats.limit && stats.peak_reserved <= stats.limit);
}

/// Leaks 24-byte values on `threads` threads until the first refusal on any of them; returns the bytes handed out
/// at that moment (read by the refused thread right after its refusal, while the others may still be allocating).
fn used_at_first_refusal(limit: usize, threads: usize) -> (usize, Stats) {
    let budget = budget(limit);
    let barrier = Barrier::new(threads);
    let first_refusal = std::sync::OnceLock::new();
    thread::scope(|scope| {
        for _ in 0..threads {
            let (barrier, first_refusal) = (&barrier, &first_refusal);
            scope.spawn(move || {
                barrier.wait();
                while first_refusal.get().is_none() {
                    if budget.leak([0u64; 3]).is_err() {
                        let _ = first_refusal.set(budget.stats());
                    }
                }
            });
        }
    });
    let stats = *first_refusal.get().expect("the budget ran out");
    // Printed on success too (`--nocapture` shows it), so that repeated runs can report the smallest share seen.
    eprintln!(
        "{threads} thread(s), limit {limit}: {} handed out at the first refusal ({:.2}%)",
        stats.used,
        share(stats)
    );
    (stats.used, stats)
}

/// `used` as a percentage of `limit`.
fn share(stats: Stats) -> f64 {
    stats.used as f64 * 100.0 / stats.limit as f64
}

#[test]
fn one_thread_hands_out_at_least_95_percent_before_its_first_refusal() {
    for limit in [64 << 10, scaled(1 << 20, 128 << 10), scaled(64 << 20, 256 << 10)] {
        let (used, stats) = used_at_first_refusal(limit, 1);
        assert!(used * 100 >= limit * 95, "{used} of {limit} handed out ({:.2}%)\n{stats}", share(stats));
        assert!(stats.reserved <= stats.limit);
    }
}

#[test]
fn two_threads_hand_out_at_least_90_percent() {
    for limit in [scaled(256 << 10, 64 << 10), scaled(4 << 20, 256 << 10), scaled(64 << 20, 512 << 10)] {
        let (used, stats) = used_at_first_refusal(limit, 2);
        // Under Miri the figure is not meaningful: its weak-memory emulation lets the refused thread read a list of
        // lanes that does not yet include the other thread's (nothing orders that read after the other thread's
        // push), so `used` can miss a whole lane. The run still checks the race for the last bytes for UB.
        assert!(cfg!(miri) || used * 100 >= limit * 90, "{used} of {limit} handed out ({:.2}%)\n{stats}", share(stats));
        assert!(stats.reserved <= stats.limit);
    }
}

/// Where two threads `A` and `B` are in a whole-chunk schedule.
#[derive(Clone, Copy)]
enum Turn {
    /// The letter of the schedule being played.
    Step(usize),
    /// A thread was refused during the schedule, or `A` was refused after it: both stop.
    Over,
}

/// Plays `schedule` on two threads: at each letter, that thread (`b'A'` or `b'B'`) leaks 24-byte values until one of
/// them takes a new chunk (the budget's `reserved` grows; only one thread runs at a time). After the last letter `B`
/// pauses, still holding its lane, and `A` leaks until refused. Returns the figures at that refusal, or `None` if a
/// thread was refused during the schedule.
fn stats_when_b_pauses(limit: usize, schedule: &[u8]) -> Option<Stats> {
    let budget = budget(limit);
    let turn = Mutex::new(Turn::Step(0));
    let changed = Condvar::new();
    let mine = |me: u8, turn: Turn| match turn {
        Turn::Over => true,
        Turn::Step(step) => schedule.get(step).map_or(me == b'A', |&letter| letter == me),
    };
    thread::scope(|scope| {
        let players = [b'A', b'B'].map(|me| {
            let (turn, changed, mine) = (&turn, &changed, &mine);
            scope.spawn(move || {
                loop {
                    let now = *changed.wait_while(turn.lock().unwrap(), |now| !mine(me, *now)).unwrap();
                    let Turn::Step(step) = now else { return None };
                    let next = if step == schedule.len() {
                        while budget.leak([0u64; 3]).is_ok() {}
                        Turn::Over
                    } else {
                        let before = budget.reserved();
                        loop {
                            if budget.leak([0u64; 3]).is_err() {
                                break Turn::Over;
                            }
                            if budget.reserved() != before {
                                break Turn::Step(step + 1);
                            }
                        }
                    };
                    let stats = (step == schedule.len()).then(|| budget.stats());
                    *turn.lock().unwrap() = next;
                    changed.notify_all();
                    if stats.is_some() {
                        return stats;
                    }
                }
            })
        });
        players.map(|player| player.join().unwrap())[0]
    })
}

/// The scheduler decides when each thread runs; a thread that stops (descheduled, or busy elsewhere) right after
/// taking a chunk keeps that chunk's unused bytes from the others. Whatever the moment, and whether it ran ahead of the
/// other thread or in turns with it, the other thread is handed at least 90% of the limit before its first refusal.
#[test]
#[cfg_attr(miri, ignore = "hundreds of thousands of leaks per limit; the native and sanitizer runs cover it")]
fn a_thread_pausing_after_any_chunk_leaves_the_other_at_least_90_percent() {
    // A hang, not a slow run, fails it: the bound is generous.
    let ended = bounded_with(None, Duration::from_secs(600), || {
        for limit in [64 << 10, 256 << 10] {
            let mut worst: Option<(Stats, Vec<u8>)> = None;
            for chunks in 1.. {
                // `B` ahead: after `A`'s first chunk, `chunks` of its own. In turns: `chunks` of each.
                let ahead: Vec<u8> = [b'A'].into_iter().chain([b'B'].repeat(chunks)).collect();
                let turns: Vec<u8> = b"AB".repeat(chunks);
                let mut played = false;
                for schedule in [ahead, turns] {
                    if let Some(stats) = stats_when_b_pauses(limit, &schedule) {
                        played = true;
                        assert!(stats.reserved <= stats.limit);
                        if worst.as_ref().is_none_or(|(least, _)| stats.used < least.used) {
                            worst = Some((stats, schedule));
                        }
                    }
                }
                if !played {
                    break;
                }
            }
            let (stats, schedule) = worst.expect("the first schedules fit in every limit");
            let schedule = String::from_utf8(schedule).expect("letters");
            eprintln!(
                "limit {limit}: least handed out {} ({:.2}%), pausing after {schedule}",
                stats.used,
                share(stats)
            );
            assert!(
                stats.used * 100 >= limit * 90,
                "{:.2}% handed out, pausing after {schedule}\n{stats}",
                share(stats)
            );
        }
    });
    ended.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

#[test]
fn threads_that_exit_hand_their_lanes_to_later_threads() {
    let budget = budget(1 << 20);
    for round in 0..scaled(20, 4) {
        thread::spawn(move || budget.leak(round).unwrap()).join().unwrap();
    }
    let stats = budget.stats();
    assert_eq!(stats.lanes, 1, "each exiting thread released its lane for the next\n{stats}");
    assert_eq!(stats.blocks, 1, "and its chunk\n{stats}");
}

#[test]
fn a_thread_using_many_budgets_keeps_working() {
    let budgets: Vec<&'static LeakBudget> = (0..10).map(|_| budget(64 << 10)).collect();
    for round in 0..scaled(50, 5) {
        for (i, budget) in budgets.iter().enumerate() {
            assert_eq!(*budget.leak(round * 100 + i).unwrap(), round * 100 + i);
        }
    }
    for budget in budgets {
        let stats = budget.stats();
        assert_eq!(stats.allocations, scaled(50, 5));
        // Evicted lanes are re-adopted, not multiplied.
        assert_eq!(stats.lanes, 1, "{stats}");
    }
}

#[test]
fn leaking_from_a_thread_local_destructor_works() {
    struct LeaksOnExit(&'static LeakBudget);
    impl Drop for LeaksOnExit {
        fn drop(&mut self) {
            assert_eq!(self.0.leak_str("from a destructor").unwrap(), "from a destructor");
        }
    }
    thread_local! {
        static ON_EXIT: Cell<Option<LeaksOnExit>> = const { Cell::new(None) };
    }
    // Thread-local destructors run in reverse order of first use: registering ours before the thread's first leak
    // makes it run after the crate's own per-thread state is gone (the late path); after it, before (the usual path).
    for destructor_first in [true, false] {
        let budget = budget(1 << 20);
        thread::spawn(move || {
            if destructor_first {
                ON_EXIT.with(|slot| slot.set(Some(LeaksOnExit(budget))));
                budget.leak(1u8).unwrap();
            } else {
                budget.leak(1u8).unwrap();
                ON_EXIT.with(|slot| slot.set(Some(LeaksOnExit(budget))));
            }
        })
        .join()
        .unwrap();
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (2, 18));
        assert_eq!(stats.lanes, 1, "the late path borrows the lane the exiting thread released\n{stats}");
    }
}

#[test]
fn display_and_debug_name_the_budget() {
    static NAMED: LeakBudget = LeakBudget::named("config", 1 << 20);
    NAMED.leak(1u32).unwrap();
    assert!(NAMED.to_string().starts_with("config: "));
    let debug = format!("{NAMED:?}");
    assert!(debug.contains("\"config\"") && debug.contains("limit: 1048576"), "{debug}");
    let table = NAMED.stats().to_string();
    assert!(table.contains("allocations") && table.contains("rejections"), "{table}");
}

// ---------------------------------------------------------------------------------------------------------------------
// `leak_try_with` and the slice builders (`leak_slice_fill_with`, `leak_slice_clone`, `leak_slice_fill`, `leak_iter`).

/// Drops and clones of [`Tracked`] values, per test.
#[derive(Debug, Default)]
struct Counters {
    drops: AtomicUsize,
    clones: AtomicUsize,
    /// The clone (counted from 1) that panics; 0 for none.
    panic_at_clone: usize,
}

impl Counters {
    fn new(panic_at_clone: usize) -> &'static Self {
        leaked(Self { panic_at_clone, ..Self::default() })
    }

    fn drops(&self) -> usize {
        self.drops.load(SeqCst)
    }

    fn clones(&self) -> usize {
        self.clones.load(SeqCst)
    }
}

/// A value that counts its drops and clones, and whose clone panics on command.
#[derive(Debug)]
struct Tracked {
    id: usize,
    counters: &'static Counters,
}

impl Tracked {
    fn new(id: usize, counters: &'static Counters) -> Self {
        Self { id, counters }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        let clone = self.counters.clones.fetch_add(1, SeqCst) + 1;
        assert_ne!(clone, self.counters.panic_at_clone, "clone {clone} fails");
        Self { id: self.id, counters: self.counters }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.counters.drops.fetch_add(1, SeqCst);
    }
}

fn ids(values: &[Tracked]) -> Vec<usize> {
    values.iter().map(|value| value.id).collect()
}

/// An iterator whose `len` is `claimed`, whatever it really has.
#[derive(Debug)]
struct Lying<I> {
    items: I,
    claimed: usize,
}

impl<I: Iterator> Iterator for Lying<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.items.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claimed, Some(self.claimed))
    }
}

impl<I: Iterator> ExactSizeIterator for Lying<I> {}

fn tracked(count: usize, counters: &'static Counters) -> Vec<Tracked> {
    (0..count).map(|id| Tracked::new(id, counters)).collect()
}

#[test]
fn leak_try_with_tells_a_refusal_from_an_initialisers_error() {
    let budget = budget(1 << 20);
    let calls = Cell::new(0);
    let value = budget
        .leak_try_with(|| {
            calls.set(calls.get() + 1);
            Ok::<_, fmt::Error>([3u64; 4])
        })
        .unwrap();
    assert_eq!((*value, calls.get()), ([3; 4], 1));

    // The initialiser's error: the room stays charged and counted as used, not as a refusal.
    let before = budget.stats();
    let failed = budget.leak_try_with(|| Err::<[u64; 4], _>(fmt::Error)).unwrap_err();
    assert_eq!(failed, TryWithError::Init(fmt::Error));
    assert!(failed.to_string().starts_with("the initialiser failed: "), "{failed}");
    assert_eq!(failed.source().unwrap().to_string(), fmt::Error.to_string());
    let after = budget.stats();
    assert_eq!((after.used - before.used, after.allocations - before.allocations, after.rejections), (32, 1, 0));

    // A refusal: the initialiser does not run, and the refusal is counted.
    let none = self::budget(0);
    let refused = none.leak_try_with(|| -> Result<u64, fmt::Error> { unreachable!("not called when refused") });
    let refused = refused.unwrap_err();
    let TryWithError::Leak(error @ LeakError::BudgetExceeded { value: 8, .. }) = &refused else {
        panic!("expected a refusal of an 8-byte value, got {refused:?}");
    };
    assert_eq!(refused.to_string(), format!("no room was reserved, so the initialiser did not run: {error}"));
    assert_eq!(refused.source().unwrap().to_string(), error.to_string());
    assert_eq!((none.reserved(), none.stats().rejections), (0, 1));

    // A zero-sized value needs no room: an empty budget serves it, and its only possible error is the initialiser's.
    none.leak_try_with(|| Ok::<(), fmt::Error>(())).unwrap();
    assert_eq!(none.leak_try_with(|| Err::<(), _>(5)).unwrap_err(), TryWithError::Init(5));
    assert_eq!((none.reserved(), none.stats().rejections), (0, 1));
}

#[test]
fn slice_builders_fill_in_order_and_clone_only_what_they_must() {
    let budget = budget(1 << 20);
    let mut order = Vec::new();
    let squares = budget
        .leak_slice_fill_with(5, |i| {
            order.push(i);
            (i * i) as u64
        })
        .unwrap();
    assert_eq!((&*squares, order), (&[0, 1, 4, 9, 16][..], vec![0, 1, 2, 3, 4]));

    let counters = Counters::new(0);
    let originals = tracked(3, counters);
    let clones = budget.leak_slice_clone(&originals).unwrap();
    assert_eq!((ids(clones), counters.clones(), counters.drops()), (vec![0, 1, 2], 3, 0));
    // `leak_slice_fill` clones `len - 1` times and moves the value itself in last.
    let filled = budget.leak_slice_fill(4, Tracked::new(9, counters)).unwrap();
    assert_eq!((ids(filled), counters.clones(), counters.drops()), (vec![9; 4], 6, 0));
    drop(originals);
    assert_eq!(counters.drops(), 3, "only the originals were dropped");
}

#[test]
fn slice_builders_handle_empty_zero_sized_and_overflowing_lengths() {
    let empty = budget(0);
    let counters = Counters::new(0);
    // Length zero: nothing is called, cloned or charged; `leak_slice_fill` drops its value.
    assert!(empty.leak_slice_fill_with(0, |_| -> u64 { unreachable!("no element") }).unwrap().is_empty());
    assert!(empty.leak_slice_clone::<Tracked>(&[]).unwrap().is_empty());
    assert!(empty.leak_iter(Vec::<u64>::new()).unwrap().is_empty());
    assert!(empty.leak_slice_fill(0, Tracked::new(0, counters)).unwrap().is_empty());
    assert_eq!((counters.clones(), counters.drops()), (0, 1));

    // Zero-sized elements: each one made, nothing charged, even in an empty budget.
    let mut calls = 0;
    assert_eq!(empty.leak_slice_fill_with(1000, |_| calls += 1).unwrap().len(), 1000);
    assert_eq!(calls, 1000);
    assert_eq!(empty.leak_slice_fill(1000, ()).unwrap().len(), 1000);
    assert_eq!(empty.leak_iter(vec![(); 7]).unwrap().len(), 7);
    assert_eq!(empty.leak_slice_clone(&[(); 5]).unwrap().len(), 5);
    let stats = empty.stats();
    assert_eq!((stats.reserved, stats.allocations, stats.rejections), (0, 0, 0), "{stats}");

    // A length whose size overflows: refused before anything is made, the value or iterator given back.
    let budget = budget(1 << 20);
    let huge = usize::MAX / 4;
    let overflow = LeakError::SizeOverflow { elem_size: 8, len: huge };
    assert_eq!(budget.leak_slice_fill_with(huge, |_| -> u64 { unreachable!("refused first") }).unwrap_err(), overflow);
    let refused = budget.leak_slice_fill(huge, 17u64).unwrap_err();
    assert_eq!(refused.into_parts(), (17, overflow.clone()));
    let refused = budget.leak_iter(Lying { items: 1..=3u64, claimed: huge }).unwrap_err();
    assert_eq!(refused.error(), &overflow);
    assert_eq!(refused.into_inner().items.collect::<Vec<_>>(), [1, 2, 3], "the iterator comes back untouched");
    let stats = budget.stats();
    assert_eq!((stats.reserved, stats.rejections), (0, 3), "{stats}");
}

#[test]
fn refused_slice_builders_give_the_value_or_the_iterator_back() {
    let none = budget(0);
    let counters = Counters::new(0);
    let refused = none.leak_slice_fill(3, Tracked::new(5, counters)).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { value, .. } if *value == 3 * size_of::<Tracked>()));
    assert_eq!(refused.into_inner().id, 5);
    assert_eq!((counters.clones(), counters.drops()), (0, 1), "no clone made; the value came back, then dropped");

    let refused = none.leak_iter(tracked(4, counters)).unwrap_err();
    assert_eq!(ids(&refused.into_inner().collect::<Vec<_>>()), [0, 1, 2, 3]);
    let refused = none.leak_slice_clone(&tracked(2, counters)).unwrap_err();
    assert!(matches!(refused, LeakError::BudgetExceeded { .. }));
    assert_eq!(counters.clones(), 0);
    assert_eq!(none.stats().rejections, 3);
}

#[test]
fn an_iterator_that_lies_about_its_length_gets_what_it_gave_and_no_more() {
    let budget = budget(1 << 20);
    let counters = Counters::new(0);

    // Shorter than it said: the slice holds what it gave; the room for the rest stays charged and counted as used.
    let before = budget.stats();
    let short = budget.leak_iter(Lying { items: tracked(4, counters).into_iter(), claimed: 10 }).unwrap();
    assert_eq!(ids(short), [0, 1, 2, 3]);
    let after = budget.stats();
    assert_eq!((after.used - before.used, after.allocations - before.allocations), (10 * size_of::<Tracked>(), 1));
    assert_eq!(counters.drops(), 0);

    // Longer than it said: the first `len` items are taken, and the iterator is dropped with the others.
    let long = budget.leak_iter(Lying { items: tracked(6, counters).into_iter(), claimed: 3 }).unwrap();
    assert_eq!(ids(long), [0, 1, 2]);
    assert_eq!(counters.drops(), 3, "the three items left in the iterator were dropped with it");

    // An iterator that ends at once.
    assert!(budget.leak_iter(Lying { items: core::iter::empty::<u64>(), claimed: 5 }).unwrap().is_empty());
}

#[test]
fn a_panic_midway_through_a_slice_builder_keeps_the_slice_charged_and_drops_nothing_in_it() {
    let budget = budget(1 << 20);
    let size = size_of::<Tracked>();
    let check = |what: &str, before: Stats, len: usize| {
        let after = budget.stats();
        assert_eq!(
            (after.used - before.used, after.allocations - before.allocations, after.rejections),
            (len * size, 1, 0),
            "{what}: the whole slice stays charged and counted as used"
        );
    };

    let counters = Counters::new(0);
    let before = budget.stats();
    let ended = catch_unwind(AssertUnwindSafe(|| {
        budget.leak_slice_fill_with(10, |i| {
            assert_ne!(i, 6, "element 6 fails");
            Tracked::new(i, counters)
        })
    }));
    assert!(panic_message(&*ended.unwrap_err()).contains("element 6 fails"));
    assert_eq!(counters.drops(), 0, "the six elements written are never dropped");
    check("leak_slice_fill_with", before, 10);

    let counters = Counters::new(3);
    let originals = tracked(5, counters);
    let before = budget.stats();
    let ended = catch_unwind(AssertUnwindSafe(|| budget.leak_slice_clone(&originals)));
    assert!(panic_message(&*ended.unwrap_err()).contains("clone 3 fails"));
    assert_eq!((counters.clones(), counters.drops()), (3, 0), "the two clones made are never dropped");
    check("leak_slice_clone", before, 5);
    drop(originals);
    assert_eq!(counters.drops(), 5);

    let counters = Counters::new(3);
    let before = budget.stats();
    let ended = catch_unwind(AssertUnwindSafe(|| budget.leak_slice_fill(6, Tracked::new(1, counters))));
    assert!(panic_message(&*ended.unwrap_err()).contains("clone 3 fails"));
    assert_eq!(counters.drops(), 1, "the value is dropped by the unwinding, the two clones made are not");
    check("leak_slice_fill", before, 6);

    let counters = Counters::new(0);
    let before = budget.stats();
    let ended = catch_unwind(AssertUnwindSafe(|| {
        budget.leak_iter((0..5).map(|i| {
            assert_ne!(i, 3, "item 3 fails");
            Tracked::new(i, counters)
        }))
    }));
    assert!(panic_message(&*ended.unwrap_err()).contains("item 3 fails"));
    assert_eq!(counters.drops(), 0, "the three items taken are never dropped");
    check("leak_iter", before, 5);

    // The budget works on.
    assert_eq!(*budget.leak(5u8).unwrap(), 5);
}

// ---------------------------------------------------------------------------------------------------------------------
// What a refusal reports about the value, and the smallest budgets.

#[test]
fn a_refusal_names_the_bytes_of_the_value_itself() {
    let none = budget(0);
    let value_of = |error: LeakError| match error {
        LeakError::BudgetExceeded { value, requested, global, .. } => {
            assert!(requested >= value && !global);
            value
        }
        other => panic!("unexpected {other}"),
    };
    assert_eq!(value_of(none.leak([0u8; 50]).unwrap_err().into_parts().1), 50);
    assert_eq!(value_of(none.leak_str("twelve bytes").unwrap_err()), 12);
    assert_eq!(value_of(none.leak_slice_fill_with(4, |_| 0u64).unwrap_err()), 32);
    assert_eq!(value_of(none.leak_iter([1u32, 2, 3]).unwrap_err().into_parts().1), 12);
    assert_eq!(value_of(none.leak_layout(Layout::from_size_align(100, 64).unwrap()).unwrap_err()), 100);

    // Refused after the first request, by a dedicated block's charge.
    let small = budget(8 << 10);
    small.leak(1u8).unwrap();
    let error = small.leak([0u8; 7500]).unwrap_err().into_parts().1;
    assert_eq!(value_of(error.clone()), 7500);
    let message = error.to_string();
    assert!(message.contains("this 7500-byte value needs"), "{message}");
}

#[test]
// The premise, no room for a lane beside the record, is a 64-bit one: on 32-bit targets the record is smaller and a
// 256-byte budget has room for a lane (found by the 32-bit Miri pass).
#[cfg_attr(target_pointer_width = "32", ignore = "on 32-bit targets a 256-byte budget has room for a lane")]
fn a_256_byte_budget_holds_u64s_in_dedicated_blocks() {
    let budget = budget(256);
    assert_eq!(*budget.leak(42u64).unwrap(), 42);
    let stats = budget.stats();
    // No room for a lane beside the record: the value has a block of its own (the value and the block's header).
    assert_eq!((stats.used, stats.allocations, stats.lanes, stats.blocks), (8, 1, 0, 1), "{stats}");
    let block = stats.reserved - LeakBudget::RECORD_BYTES;
    #[cfg(target_pointer_width = "64")]
    assert_eq!((LeakBudget::RECORD_BYTES, block), (128, 24), "{stats}");
    assert!((8..=8 + 32).contains(&block), "the value and a small header: {stats}");

    // More of them, one block each, until the limit.
    let mut held = 1;
    while let Ok(value) = budget.leak(held as u64) {
        assert_eq!(*value, held as u64);
        held += 1;
    }
    assert_eq!(held, (256 - LeakBudget::RECORD_BYTES) / block);
    let stats = budget.stats();
    assert_eq!(
        (stats.reserved, stats.used, stats.blocks, stats.lanes),
        (LeakBudget::RECORD_BYTES + held * block, 8 * held, held, 0)
    );
    assert_eq!(stats.rejections, 1);
    // Another thread is served the same way, had there been room; here it is refused cleanly.
    let refused = thread::spawn(move || budget.leak(0u64).is_err()).join().unwrap();
    assert!(refused);
}
