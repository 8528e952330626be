//! A global allocator that fails on command: the library turns a null from the allocator into
//! `LeakError::AllocFailed` (never an abort), gives the caller's value back, refunds the charge, and works again once
//! the allocator recovers.
//!
//! Only allocations made during a library call on a thread that armed the allocator can fail (a per-thread flag set
//! around the call), so the test's own allocations never do. Successful allocations made during armed calls are
//! counted, so that the budget's `reserved` figure can be compared with what it really holds after failures.
//!
//! Run alone: `cargo test --test alloc_failure` (a global allocator is process-wide).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;

use leak_budget::{LeakBudget, LeakError, Stats};

mod support;
use support::{Rng, scaled, without_peak, without_rejections};

/// How the allocator treats allocations made during armed library calls on one thread.
#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Allocations that succeed before every later one fails (`usize::MAX`: no limit).
    succeed_first: usize,
    /// Allocations larger than this fail.
    fail_above: usize,
    /// Every `fail_every`-th allocation fails (0: none).
    fail_every: usize,
}

impl Rule {
    const NEVER: Rule = Rule { succeed_first: usize::MAX, fail_above: usize::MAX, fail_every: 0 };
}

thread_local! {
    /// Set during library calls made through `armed`.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static RULE: Cell<Rule> = const { Cell::new(Rule::NEVER) };
    /// Allocations seen during armed calls on this thread.
    static SEEN: Cell<usize> = const { Cell::new(0) };
}

/// Allocations refused on purpose (all threads).
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// Bytes of successful allocations made during armed calls (all threads). The library never frees them.
static HELD: AtomicUsize = AtomicUsize::new(0);

struct Failing;

impl Failing {
    /// Whether this allocation must fail, and counts it.
    fn refuse(layout: Layout) -> bool {
        if !ARMED.try_with(Cell::get).unwrap_or(false) {
            return false;
        }
        let rule = RULE.with(Cell::get);
        let seen = SEEN.with(|seen| seen.replace(seen.get() + 1));
        let refuse = seen >= rule.succeed_first
            || layout.size() > rule.fail_above
            || (rule.fail_every > 0 && seen % rule.fail_every == rule.fail_every - 1);
        if refuse {
            REFUSED.fetch_add(1, SeqCst);
        }
        refuse
    }
}

// SAFETY: a refused allocation returns null, which `GlobalAlloc` allows; everything else forwards to `System` with the
// caller's arguments unchanged. The bookkeeping touches only atomics and const-initialised thread-locals.
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::refuse(layout) {
            return core::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && ARMED.try_with(Cell::get).unwrap_or(false) {
            HELD.fetch_add(layout.size(), SeqCst);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller guarantees `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Failing = Failing;

/// Makes the allocator follow `rule` during this thread's armed calls, counting allocations from zero.
fn set_rule(rule: Rule) {
    RULE.with(|r| r.set(rule));
    SEEN.with(|seen| seen.set(0));
}

/// Runs one library call with the allocator following this thread's rule. Build arguments before, check after.
fn armed<R>(call: impl FnOnce() -> R) -> R {
    ARMED.with(|flag| flag.set(true));
    let result = call();
    ARMED.with(|flag| flag.set(false));
    result
}

/// Everything but the rejection counter and the peak (which keeps a refunded charge: the bytes were charged, briefly,
/// before the allocator refused).
fn settled(stats: Stats) -> Stats {
    without_rejections(without_peak(stats))
}

fn is_alloc_failed(error: &LeakError) -> bool {
    matches!(error, LeakError::AllocFailed { .. })
}

/// A budget's first request, with the allocator failing at its first, second and third allocation (the budget's
/// record, the thread's lane, the first chunk): `AllocFailed`, the value back, the failed charge refunded. Bookkeeping
/// made before the failure stays, and is used by the next request: once the allocator recovers, the budget's figures
/// are exactly those of a budget that never saw a failure.
fn first_request_fails_at_each_step() -> String {
    let mut figures = Vec::new();
    for allowed in 0..3 {
        // A fresh thread for each, so that it has no lane yet.
        let (failed, recovered, reference) = thread::spawn(move || {
            let budget = LeakBudget::named("failing", 1 << 20);
            let held_before = HELD.load(SeqCst);
            let value = String::from("kept");
            set_rule(Rule { succeed_first: allowed, ..Rule::NEVER });
            let refused = armed(|| budget.leak(value)).unwrap_err();
            assert!(is_alloc_failed(refused.error()), "step {allowed}: {}", refused.error());
            assert_eq!(refused.into_inner(), "kept", "the value comes back");
            let failed = budget.stats();
            assert_eq!(failed.rejections, 1);
            assert_eq!((failed.used, failed.allocations, failed.blocks), (0, 0, 0));
            assert_eq!(
                failed.reserved,
                HELD.load(SeqCst) - held_before,
                "step {allowed}: only what was obtained stays\n{failed}"
            );

            assert_eq!(
                *{
                    set_rule(Rule::NEVER);
                    armed(|| budget.leak(7u64))
                }
                .unwrap(),
                7
            );
            let reference = LeakBudget::named("failing", 1 << 20);
            reference.leak(7u64).unwrap();
            (failed, budget.stats(), reference.stats())
        })
        .join()
        .expect("case thread");
        assert_eq!(settled(recovered), settled(reference), "step {allowed}: failures left a trace");
        figures.push(format!("step {allowed}: reserved {} after the failure", failed.reserved));
    }
    figures.join(", ")
}

/// Every allocating entry point, on a budget that already holds memory, with allocations above 1 KiB failing: each
/// request that needs a new block fails with `AllocFailed` naming that block, gives its value back, and changes no
/// figure but the rejection count. Small requests still served from the lane's chunk keep working meanwhile.
// The refused value is large on purpose: it needs a block of its own, which the allocator then refuses.
#[allow(clippy::result_large_err)]
fn every_entry_point_fails_cleanly() -> String {
    let budget = LeakBudget::named("failing", 1 << 20);
    budget.leak_str("warm").unwrap();
    set_rule(Rule { fail_above: 1024, ..Rule::NEVER });
    let mut checked = 0;
    let mut check = |name: &str, result: Result<(), LeakError>| {
        let error = result.expect_err(name);
        match error {
            LeakError::AllocFailed { size, align } => {
                assert!(size > 1024 && align.is_power_of_two(), "{name}: {error}")
            }
            other => panic!("{name}: {other}"),
        }
        checked += 1;
    };
    let before = budget.stats();
    let big = String::from_utf8(vec![b'b'; 5000]).unwrap();
    let words = vec![9u32; 2000];

    let refused = armed(|| budget.leak([3u8; 5000])).unwrap_err();
    assert_eq!(refused.value(), &[3u8; 5000]);
    check("leak", Err(refused.into_parts().1));
    let called = Cell::new(false);
    check(
        "leak_with",
        armed(|| {
            budget.leak_with(|| {
                called.set(true);
                [0u8; 5000]
            })
        })
        .map(drop),
    );
    assert!(!called.get(), "the initialiser does not run when the allocation fails");
    check("leak_str", armed(|| budget.leak_str(&big)).map(drop));
    check("leak_slice", armed(|| budget.leak_slice(&words)).map(drop));
    let copy = words.clone();
    let refused = armed(|| budget.leak_vec(copy)).unwrap_err();
    assert_eq!(refused.value(), &words);
    check("leak_vec", Err(refused.into_parts().1));
    check("leak_uninit", armed(|| budget.leak_uninit::<[u64; 1000]>()).map(drop));
    check("leak_uninit_slice", armed(|| budget.leak_uninit_slice::<u16>(3000)).map(drop));
    let aligned = Layout::from_size_align(5000, 4096).unwrap();
    check("leak_layout", armed(|| budget.leak_layout(aligned)).map(drop));

    // Small requests are still served from the lane's chunk while large ones fail.
    assert_eq!(armed(|| budget.leak_str("small")).unwrap(), "small");
    let after = budget.stats();
    assert_eq!(after.rejections, before.rejections + checked);
    let mut expected = settled(before);
    expected.used += 5;
    expected.allocations += 1;
    assert_eq!(settled(after), expected, "only the small request changed the figures");
    assert!(after.peak_reserved <= after.limit);

    // The allocator recovers: the same requests succeed.
    set_rule(Rule::NEVER);
    assert_eq!(budget.leak_str(&big).unwrap(), big);
    assert_eq!(budget.leak_vec(words.clone()).unwrap(), words.as_slice());
    let memory: &mut [MaybeUninit<u8>] = budget.leak_layout(aligned).unwrap();
    assert_eq!(memory.as_ptr().addr() % 4096, 0);
    let stats = budget.stats();
    assert!(stats.used <= stats.reserved && stats.reserved <= stats.limit);
    format!("{checked} entry points refused with AllocFailed, then served")
}

/// Four threads leak mixed sizes until the budget is full while their allocator fails every third allocation: every
/// failure gives its value back, and at the end the budget's `reserved` equals exactly the bytes it obtained (no
/// charge of a failed allocation is left behind, no refund is lost).
fn failures_on_several_threads_refund_exactly() -> String {
    let limit = scaled(4 << 20, 32 << 10);
    let budget = LeakBudget::named("failing", limit);
    HELD.store(0, SeqCst);
    let refused_before = REFUSED.load(SeqCst);
    let counts: Vec<(usize, usize)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let budget = &budget;
                scope.spawn(move || {
                    set_rule(Rule { fail_every: 3, ..Rule::NEVER });
                    let mut rng = Rng::new(t);
                    let (mut served, mut failed) = (0, 0);
                    loop {
                        let len = if rng.below(8) == 0 {
                            1000 + rng.below(scaled(20_000, 1_000))
                        } else {
                            1 + rng.below(scaled(100, 20))
                        };
                        let value = vec![t as u8; len];
                        match armed(|| budget.leak_vec(value)) {
                            Ok(leaked) => {
                                assert!(leaked.iter().all(|&b| b == t as u8));
                                served += 1;
                            }
                            Err(refused) => {
                                let (value, error) = refused.into_parts();
                                assert!(value.len() == len && value.iter().all(|&b| b == t as u8), "value back");
                                match error {
                                    LeakError::AllocFailed { .. } => failed += 1,
                                    LeakError::BudgetExceeded { .. } if len == 1 => return (served, failed),
                                    LeakError::BudgetExceeded { .. } => {}
                                    other => panic!("{other}"),
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    let stats = budget.stats();
    let failed: usize = counts.iter().map(|c| c.1).sum();
    assert!(failed > 0 && REFUSED.load(SeqCst) - refused_before == failed, "every refused allocation was reported");
    assert_eq!(stats.reserved, HELD.load(SeqCst), "reserved is exactly what the budget obtained\n{stats}");
    assert!(stats.used <= stats.reserved && stats.reserved <= stats.limit);
    let served: usize = counts.iter().map(|c| c.0).sum();
    format!("{served} served, {failed} AllocFailed, reserved {} = held, limit {limit}", stats.reserved)
}

fn main() -> ExitCode {
    support::run(&[
        ("first_request_fails_at_each_step", first_request_fails_at_each_step),
        ("every_entry_point_fails_cleanly", every_entry_point_fails_cleanly),
        ("failures_on_several_threads_refund_exactly", failures_on_several_threads_refund_exactly),
    ])
}
