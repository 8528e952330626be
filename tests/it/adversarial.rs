//! Adversarial cases: requests at the exact edge of the limit, absurd sizes and alignments, floods of refusals,
//! initialisers that panic, statistics read while another thread switches chunks, and thread-local destructors that
//! leak after the thread's own state is gone.
//!
//! Memory errors (a write past a buffer, a read of freed memory) do not always fail a native run: run this file under
//! Miri and AddressSanitizer too (`scripts/miri.sh`, `scripts/sanitizers.sh`).

use core::alloc::Layout;
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::thread;

use leak_budget::{LeakBudget, LeakError, MAX_ALIGN, Stats};

use crate::support::{budget, scaled, without_peak, without_rejections};

/// Asserts that `result` was refused with `BudgetExceeded`, and that the budget changed only by one more rejection.
fn assert_refused_cleanly<T>(budget: &LeakBudget, before: Stats, result: Result<T, LeakError>) {
    let error = result.err().expect("the request must be refused");
    assert!(matches!(error, LeakError::BudgetExceeded { .. }), "{error}");
    let after = budget.stats();
    assert_eq!(without_rejections(after), without_rejections(before), "a refusal changed the budget's figures");
    assert_eq!(after.rejections, before.rejections + 1);
}

/// A string of `len` copies of `fill`.
fn text(len: usize, fill: u8) -> String {
    String::from_utf8(vec![fill; len]).expect("ASCII")
}

/// The lasso 0.7.3 case: with the limit a few bytes above what is in use, a string longer than what is left. It must
/// be refused, and nothing may be written past any buffer: every string leaked before stays intact.
#[test]
fn a_string_longer_than_what_is_left_is_refused_and_nothing_is_overwritten() {
    // The smallest limit that serves a 1-byte string on a fresh budget.
    let first = (1..).find(|&limit| budget(limit).leak_str("x").is_ok()).expect("some limit fits");
    for limit in (first..first + scaled(600, 40)).step_by(scaled(3, 13)) {
        let budget = budget(limit);
        let mut leaked: Vec<(&'static str, u8)> = Vec::new();
        let mut len = 1;
        // Strings of growing length until one is refused: the budget is then a few bytes from its limit.
        loop {
            let fill = b'a' + (leaked.len() % 26) as u8;
            let before = budget.stats();
            match budget.leak_str(&text(len, fill)) {
                Ok(s) => leaked.push((s, fill)),
                Err(error) => {
                    assert_refused_cleanly(budget, before, Err::<(), _>(error));
                    break;
                }
            }
            len += 1;
        }
        // A string as long as the refused one, longer ones, and one longer than the budget's whole remaining room:
        // none may be served (the room can only shrink), and none may write anything.
        let left = budget.remaining();
        for len in [len, len + 1, len + 16, len + 4096, left + len] {
            let before = budget.stats();
            assert_refused_cleanly(budget, before, budget.leak_str(&text(len, b'!')));
        }
        // Shorter strings fill what is left in the lane's chunk, or are refused cleanly.
        for len in (1..=left.min(64)).rev() {
            let fill = b'A' + (len % 26) as u8;
            let before = budget.stats();
            match budget.leak_str(&text(len, fill)) {
                Ok(s) => leaked.push((s, fill)),
                Err(error) => assert_refused_cleanly(budget, before, Err::<(), _>(error)),
            }
        }
        for &(s, fill) in &leaked {
            assert!(s.bytes().all(|b| b == fill), "a leaked string was overwritten: {s:?}");
        }
        let stats = budget.stats();
        assert!(stats.used <= stats.reserved && stats.reserved <= stats.limit, "{stats}");
        assert_eq!(stats.used, leaked.iter().map(|(s, _)| s.len()).sum::<usize>(), "strings need no padding");
    }
}

/// Rejections of every kind on a budget that already holds memory: the counter is exact, nothing else moves.
#[test]
fn a_million_rejections_of_every_kind_change_nothing_else() {
    let budget = budget(64 << 10);
    let kept = budget.leak_str("kept").unwrap();
    while budget.leak([0u8; 512]).is_ok() {}
    let before = budget.stats();
    let count = scaled(1_000_000, 1_000);
    for i in 0..count {
        match i % 4 {
            // 512 bytes on every target (`[usize; 64]` would be 256 on 32-bit ones, which may still fit).
            0 => assert_eq!(budget.leak([i as u64; 64]).unwrap_err().into_inner(), [i as u64; 64]),
            1 => {
                assert!(matches!(budget.leak_uninit_slice::<u64>(usize::MAX / 2), Err(LeakError::SizeOverflow { .. })))
            }
            2 => {
                let layout = Layout::from_size_align(8, MAX_ALIGN << 1).unwrap();
                assert!(matches!(budget.leak_layout(layout), Err(LeakError::UnsupportedAlignment { .. })));
            }
            _ => assert!(matches!(budget.leak_str(&text(4096, b'z')), Err(LeakError::BudgetExceeded { .. }))),
        }
    }
    let after = budget.stats();
    assert_eq!(after.rejections, before.rejections + count);
    assert_eq!(without_rejections(after), without_rejections(before));
    assert_eq!(kept, "kept");
}

/// A zero-sized type aligned to 2^29 is free; a 2^29-aligned value of 2^29 bytes is served when the budget covers its
/// worst case; raw layouts aligned to 2^29 are refused cleanly just below what they need.
#[test]
#[cfg_attr(miri, ignore = "allocates 1 GiB of address space, which Miri backs with host memory")]
fn alignment_of_two_to_the_twenty_ninth() {
    #[repr(align(536870912))]
    struct AlignedZst;
    #[repr(align(536870912))]
    struct Aligned(#[allow(dead_code)] u8);

    // Zero-sized, so free even in an empty budget. (Not passed by value: a local aligned to 2^29 would need up to
    // 512 MiB of stack to align the frame.)
    let empty = budget(0);
    let zst: &'static mut MaybeUninit<AlignedZst> = empty.leak_uninit().unwrap();
    assert_eq!(core::ptr::from_ref(zst).addr() % MAX_ALIGN, 0);
    let zsts = empty.leak_uninit_slice::<AlignedZst>(usize::MAX).unwrap();
    assert_eq!((zsts.len(), zsts.as_ptr().addr() % MAX_ALIGN), (usize::MAX, 0));
    assert_eq!(empty.reserved(), 0);

    // `size_of::<Aligned>()` is 2^29 too: build it in place, never on the stack.
    let layout = Layout::new::<Aligned>();
    let enough = budget(LeakBudget::RECORD_BYTES + LeakBudget::max_charge_for(layout));
    let slot: &'static mut MaybeUninit<Aligned> = enough.leak_uninit().unwrap();
    assert_eq!(core::ptr::from_ref(slot).addr() % MAX_ALIGN, 0);
    // SAFETY: `slot` is valid for writes, and writing its only field initialises it (the rest is padding). The value
    // is built in place: `Aligned(7)` as a temporary would take 512 MiB of stack.
    let value: &'static mut Aligned = unsafe {
        core::ptr::addr_of_mut!((*slot.as_mut_ptr()).0).write(7);
        slot.assume_init_mut()
    };
    assert_eq!(value.0, 7);
    assert!(enough.reserved() <= enough.limit());

    let small = Layout::from_size_align(24, MAX_ALIGN).unwrap();
    let exact = LeakBudget::RECORD_BYTES + LeakBudget::max_charge_for(small);
    let fits = budget(exact);
    let bytes = fits.leak_layout(small).unwrap();
    assert_eq!((bytes.len(), bytes.as_ptr().addr() % MAX_ALIGN), (24, 0));
    // Far enough below what a 2^29 alignment needs, the request is refused and nothing is charged.
    let short = budget(MAX_ALIGN / 2);
    assert_refused_cleanly(short, short.stats(), short.leak_layout(small));
    assert_eq!(short.reserved(), 0);
}

/// Sizes at and near `isize::MAX` and `usize::MAX`: each fails with the documented error (never a panic or an abort),
/// charges nothing, and the budget keeps working. An unlimited budget passes such sizes on to the allocator, which
/// refuses them: `AllocFailed`, with the charge refunded.
#[test]
fn absurd_sizes_fail_cleanly() {
    let budget = budget(1 << 20);
    let max = isize::MAX as usize;
    for len in [usize::MAX, usize::MAX / 2, max, max + 1, max / 8 + 1] {
        assert!(
            matches!(budget.leak_uninit_slice::<u64>(len), Err(LeakError::SizeOverflow { elem_size: 8, len: l }) if l == len)
        );
    }
    for size in [max, max - 1, max - 15, max - 4096, max / 2 + 1] {
        for align in [1, 8, 4096] {
            let Ok(layout) = Layout::from_size_align(size, align) else { continue };
            assert!(
                matches!(
                    budget.leak_layout(layout),
                    Err(LeakError::SizeOverflow { .. } | LeakError::BudgetExceeded { .. })
                ),
                "{layout:?}"
            );
        }
    }
    // Zero-sized elements: any length is free, even `usize::MAX`.
    assert_eq!(budget.leak_uninit_slice::<()>(usize::MAX).unwrap().len(), usize::MAX);
    assert_eq!(budget.leak_vec(vec![(); usize::MAX]).unwrap().len(), usize::MAX);
    assert_eq!(budget.reserved(), 0, "nothing was charged");
    assert_eq!(*budget.leak(3u8).unwrap(), 3);

    // Miri reports a huge allocation as resource exhaustion instead of returning null; on 32-bit targets these sizes
    // (2 GiB and 1 GiB) are not absurd and may be allocated.
    if cfg!(miri) || usize::BITS < 64 {
        return;
    }
    let unlimited = self::budget(usize::MAX);
    unlimited.leak(0u8).unwrap();
    for size in [max / 2, max / 4 + 3, 1 << (usize::BITS - 4)] {
        let before = unlimited.stats();
        let error = unlimited.leak_layout(Layout::from_size_align(size, 16).unwrap()).unwrap_err();
        assert!(matches!(error, LeakError::AllocFailed { .. } | LeakError::SizeOverflow { .. }), "{error}");
        let after = unlimited.stats();
        // `peak_reserved` keeps the refunded charge: the bytes were charged (briefly) before the allocator refused.
        assert!(after.peak_reserved <= after.limit);
        let figures = |stats| without_rejections(without_peak(stats));
        assert_eq!(figures(after), figures(before), "the charge was refunded");
        assert_eq!(after.rejections, before.rejections + 1);
    }
    assert_eq!(*unlimited.leak(5u16).unwrap(), 5);
}

/// Initialisers that panic: on a budget's first request, nested inside another initialiser, near the limit, and on
/// a thread that then ends. The bytes reserved for them stay charged and counted as used; nothing else is disturbed.
#[test]
fn panicking_initialisers_leave_every_budget_consistent() {
    fn panics() -> [u64; 4] {
        panic!("initialiser failed")
    }
    // First request of a fresh budget.
    let fresh = budget(1 << 20);
    assert!(catch_unwind(|| fresh.leak_with(panics)).is_err());
    let stats = fresh.stats();
    assert_eq!((stats.allocations, stats.used, stats.lanes), (1, 32, 1));
    assert_eq!(*fresh.leak(9u8).unwrap(), 9);

    // Nested: the inner initialiser panics inside the outer one; both reservations stay, disjoint.
    let nested = budget(1 << 20);
    let inner_ran = Cell::new(false);
    let result = catch_unwind(AssertUnwindSafe(|| {
        nested.leak_with(|| {
            inner_ran.set(true);
            let _ = nested.leak_with(panics);
            [0u64; 4]
        })
    }));
    assert!(result.is_err() && inner_ran.get());
    assert_eq!((nested.stats().allocations, nested.stats().used), (2, 64));

    // Near the limit: a refused request does not call its initialiser, so nothing panics.
    let tight = budget(64 << 10);
    while tight.leak([0u64; 4]).is_ok() {}
    let before = tight.stats();
    assert_refused_cleanly(tight, before, tight.leak_with(panics));

    // On a thread that ends by panicking: its lane is released (its thread-locals are destroyed as it unwinds) and
    // the next thread adopts it instead of creating another.
    let shared = budget(1 << 20);
    assert!(thread::spawn(move || shared.leak_with(panics)).join().is_err());
    thread::spawn(move || assert_eq!(*shared.leak(1u32).unwrap(), 1)).join().unwrap();
    let stats = shared.stats();
    assert_eq!((stats.allocations, stats.lanes), (2, 1), "{stats}");
}

/// One thread leaks through many chunk switches while another reads the budget's figures without pause: each read
/// completes (no arithmetic on a torn snapshot panics) and stays within the limit; the final figures are exact.
#[test]
fn figures_read_during_chunk_switches() {
    let rounds = scaled(400, 3);
    for _ in 0..rounds {
        let budget = budget(scaled(256 << 10, 24 << 10));
        let done = AtomicBool::new(false);
        let leaked = thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut reads = 0;
                while !done.load(Relaxed) || reads == 0 {
                    let stats = budget.stats();
                    assert!(stats.used <= stats.limit && stats.reserved <= stats.limit, "{stats}");
                    reads += 1;
                }
                reads
            });
            let mut leaked = 0;
            // Values of 200 bytes switch a lane's chunk every few requests near the limit.
            while budget.leak([7u8; 200]).is_ok() {
                leaked += 1;
            }
            done.store(true, Relaxed);
            assert!(reader.join().unwrap() > 0);
            leaked
        });
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.used), (leaked, leaked * 200));
        assert!(stats.blocks > 3, "the budget must have switched chunks a few times\n{stats}");
    }
}

/// Two threads that already hold lanes race for the last bytes of a budget with room for exactly one of their values:
/// exactly one wins, and the loser sees a clean refusal that changed nothing else.
#[test]
fn two_threads_race_for_the_last_bytes() {
    // Larger than a lane's first chunk (4 KiB) and than an eighth of its next one: such a string always gets a
    // dedicated block, which charges the string and a two-word header (16 bytes on 64-bit targets, 8 on 32-bit ones).
    const SIZE: usize = 5000;
    const CHARGE: usize = SIZE + 2 * size_of::<usize>();
    for round in 0..scaled(200, 4) {
        let budget = budget(64 << 10);
        let barrier = Barrier::new(3);
        let outcomes = Mutex::new(Vec::new());
        let (before, after) = thread::scope(|scope| {
            for t in 0..2u8 {
                let (barrier, outcomes) = (&barrier, &outcomes);
                scope.spawn(move || {
                    let lane = budget.leak(t); // this thread's lane and first chunk
                    barrier.wait();
                    barrier.wait(); // the budget now has room for one string of `SIZE` bytes
                    let result = budget.leak_str(&text(SIZE, b'0' + t));
                    outcomes.lock().unwrap().push((t, lane.is_ok(), result));
                });
            }
            barrier.wait();
            while budget.remaining() >= 2 * CHARGE {
                budget.leak_str(&text(SIZE, b'-')).unwrap();
            }
            let before = budget.stats();
            assert!((CHARGE..2 * CHARGE).contains(&before.remaining()), "{before}");
            barrier.wait();
            (before, ())
        });
        let () = after;
        let after = budget.stats();
        let outcomes = outcomes.into_inner().unwrap();
        let winners = outcomes.iter().filter(|(_, lane, result)| *lane && result.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: exactly one of the racing requests fits\n{outcomes:?}");
        for (t, _, result) in &outcomes {
            match result {
                Ok(s) => assert!(s.bytes().all(|b| b == b'0' + t), "round {round}: overwritten"),
                Err(error) => assert!(matches!(error, LeakError::BudgetExceeded { .. }), "round {round}: {error}"),
            }
        }
        assert_eq!(after.reserved, before.reserved + CHARGE, "round {round}: only the winner's block is charged");
        assert_eq!((after.allocations, after.rejections), (before.allocations + 1, before.rejections + 1));
    }
}

thread_local! {
    static ON_EXIT: Cell<Option<LeaksOnExit>> = const { Cell::new(None) };
}

/// Leaks from a thread-local destructor: into a shared budget, into budgets it touches for the first time there (more
/// of them than a thread keeps lanes for), and into a full one (refused cleanly).
struct LeaksOnExit {
    shared: &'static LeakBudget,
    fresh: Vec<&'static LeakBudget>,
    full: &'static LeakBudget,
    id: usize,
}

impl Drop for LeaksOnExit {
    fn drop(&mut self) {
        let text = format!("thread {} at exit", self.id);
        assert_eq!(self.shared.leak_str(&text).unwrap(), text);
        for (i, budget) in self.fresh.iter().enumerate() {
            assert_eq!(*budget.leak(i).unwrap(), i);
        }
        // Other threads are refused by `full` at the same moment, so only the error is checked here; the rejection
        // count is checked once all threads are done.
        let refused = self.full.leak([self.id as u8; 64]).unwrap_err();
        assert!(matches!(refused.error(), LeakError::BudgetExceeded { .. }));
        assert_eq!(refused.into_inner(), [self.id as u8; 64]);
    }
}

/// Many threads register their destructor before their first leak, so it runs after the crate's own per-thread
/// state is destroyed, all at about the same time.
#[test]
fn thread_local_destructors_leak_after_the_thread_state_is_gone() {
    let threads = scaled(16, 3);
    let shared = budget(1 << 20);
    let full = budget(16 << 10);
    while full.leak([0u8; 64]).is_ok() {}
    let fresh: Vec<Vec<&'static LeakBudget>> =
        (0..threads).map(|_| (0..6).map(|_| budget(64 << 10)).collect()).collect();
    let barrier = Barrier::new(threads);
    thread::scope(|scope| {
        let handles: Vec<_> = fresh
            .iter()
            .enumerate()
            .map(|(id, fresh)| {
                let barrier = &barrier;
                let fresh = fresh.clone();
                scope.spawn(move || {
                    ON_EXIT.with(|slot| slot.set(Some(LeaksOnExit { shared, fresh, full, id })));
                    assert_eq!(*shared.leak(id).unwrap(), id);
                    barrier.wait();
                })
            })
            .collect();
        // Joined one by one: joining waits for each thread's thread-local destructors, the end of the scope does not.
        for handle in handles {
            handle.join().unwrap();
        }
    });
    let stats = shared.stats();
    assert_eq!(stats.allocations, 2 * threads, "{stats}");
    assert!(stats.lanes <= threads, "late leaks borrow released lanes\n{stats}");
    for budget in fresh.iter().flatten() {
        let stats = budget.stats();
        assert_eq!((stats.allocations, stats.lanes), (1, 1), "{stats}");
    }
    assert_eq!(full.stats().rejections, threads + 1);
}
