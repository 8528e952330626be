//! A global allocator that leaks into a budget while serving that budget's own first request: the thread that is
//! creating the budget's record asks for the same record again. That request is refused with
//! `LeakError::Reentrant` (never a spin on the thread's own creation), the outer request completes, and the budget
//! works as usual afterwards.
//!
//! The allocator runs a *hook* on the allocations of one library call on one thread (a per-thread plan set around the
//! call): it leaks a byte into a chosen budget and records the outcome. Its own library call is not hooked, so the
//! hook never nests. Each case runs on a thread of its own and fails on a timeout, so a hang fails the binary instead
//! of stalling it.
//!
//! Run alone: `cargo test --test alloc_reentry` (a global allocator is process-wide).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::resume_unwind;
use std::process::ExitCode;

use leak_budget::{LeakBudget, LeakError};

mod support;

/// What one hooked leak gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Served, with the value in place.
    Served,
    /// Refused with `Reentrant` naming this budget.
    Reentrant(&'static str),
    /// Anything else (a failure of the case).
    Other,
}

/// Hooked leaks a case records at most.
const MAX_OUTCOMES: usize = 8;

/// What the hook does on this thread's allocations.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The budget the hook leaks into; `None`: the hook is off.
    target: Option<&'static LeakBudget>,
    /// Allocations to let through before the first hooked one.
    skip: usize,
    /// Hooked allocations left.
    fires: usize,
}

impl Plan {
    const OFF: Plan = Plan { target: None, skip: 0, fires: 0 };
}

thread_local! {
    static PLAN: Cell<Plan> = const { Cell::new(Plan::OFF) };
    /// Set while the hook runs, so that the allocations of its own library call are not hooked.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    static OUTCOMES: Cell<[Option<Outcome>; MAX_OUTCOMES]> = const { Cell::new([None; MAX_OUTCOMES]) };
}

struct Reentering;

impl Reentering {
    /// Runs the hook if the plan asks for it on this allocation.
    fn hook() {
        let Ok(mut plan) = PLAN.try_with(Cell::get) else { return };
        let Some(target) = plan.target else { return };
        if IN_HOOK.with(Cell::get) || plan.fires == 0 {
            return;
        }
        if plan.skip > 0 {
            plan.skip -= 1;
            PLAN.with(|p| p.set(plan));
            return;
        }
        plan.fires -= 1;
        PLAN.with(|p| p.set(plan));
        IN_HOOK.with(|flag| flag.set(true));
        let outcome = match target.leak(0xA5u8) {
            Ok(value) if *value == 0xA5 => Outcome::Served,
            Ok(_) => Outcome::Other,
            Err(refused) => match refused.into_parts() {
                (_, LeakError::Reentrant { budget }) => Outcome::Reentrant(budget),
                _ => Outcome::Other,
            },
        };
        IN_HOOK.with(|flag| flag.set(false));
        OUTCOMES.with(|outcomes| {
            let mut all = outcomes.get();
            if let Some(slot) = all.iter_mut().find(|slot| slot.is_none()) {
                *slot = Some(outcome);
            }
            outcomes.set(all);
        });
    }
}

// SAFETY: every allocation is forwarded to `System` with the caller's arguments unchanged. The hook may call into
// the library, which allocates through this allocator again (not hooked: `IN_HOOK`); it touches only const-initialised
// thread-locals with no destructor and holds no lock.
unsafe impl GlobalAlloc for Reentering {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::hook();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller guarantees `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Reentering = Reentering;

/// Runs one library call with the hook leaking into `target` on its allocations (after `skip` of them, `fires` times),
/// and returns the call's result and the hooked leaks' outcomes. Build arguments before, check after.
fn hooked<R>(target: &'static LeakBudget, skip: usize, fires: usize, call: impl FnOnce() -> R) -> (R, Vec<Outcome>) {
    OUTCOMES.with(|outcomes| outcomes.set([None; MAX_OUTCOMES]));
    PLAN.with(|plan| plan.set(Plan { target: Some(target), skip, fires }));
    let result = call();
    PLAN.with(|plan| plan.set(Plan::OFF));
    let outcomes = OUTCOMES.with(Cell::get).into_iter().flatten().collect();
    (result, outcomes)
}

/// Runs `body` on a fresh thread (no lanes, a fresh plan) and fails the case if it hangs or panics.
fn on_a_fresh_thread(body: fn() -> String) -> String {
    support::bounded(body).unwrap_or_else(|panic| resume_unwind(panic))
}

static REENTERED: LeakBudget = LeakBudget::named("reentered", 1 << 20);

/// The budget's first request: the hook leaks into the same budget on each of the request's first three allocations
/// (the budget's record, the thread's lane, the lane's first chunk). The first comes while the record is being
/// created: refused with `Reentrant`. The others find the record and are served.
fn reentry_during_the_record_creation_is_refused() -> String {
    on_a_fresh_thread(|| {
        let (outer, outcomes) = hooked(&REENTERED, 0, 3, || REENTERED.leak(7u64).map(|value| *value));
        assert_eq!(outer.unwrap(), 7, "the outer request is served");
        assert_eq!(outcomes[0], Outcome::Reentrant("reentered"), "{outcomes:?}");
        assert!(outcomes[1..].iter().all(|&outcome| outcome == Outcome::Served), "{outcomes:?}");
        let served = outcomes.len() - 1;
        let stats = REENTERED.stats();
        assert_eq!((stats.allocations, stats.used), (1 + served, 8 + served), "{stats}");
        assert_eq!(stats.rejections, 1, "the refused re-entry is counted once, in the record: {stats}");
        assert!(stats.used <= stats.reserved && stats.reserved <= stats.limit, "{stats}");
        assert_eq!(REENTERED.report().entries()[0].total.rejections, 1);
        // Once the record exists, re-entry is served like any request.
        let (again, outcomes) = hooked(&REENTERED, 0, 1, || REENTERED.leak_vec(vec![1u32; 4096]).map(|v| v.len()));
        assert_eq!((again.unwrap(), outcomes), (4096, vec![Outcome::Served]));
        let message = LeakError::Reentrant { budget: "reentered" }.to_string();
        assert!(message.contains("`reentered`") && message.contains("register()"), "{message}");
        format!(
            "{} hooked leaks, {} refused; reserved {} of {}",
            served + 1,
            stats.rejections,
            stats.reserved,
            stats.limit
        )
    })
}

static PARENT: LeakBudget = LeakBudget::named("parent", 1 << 20);
static CHILD: LeakBudget = LeakBudget::child_of(&PARENT, "child", 1 << 20);

/// The child's first request creates the parent's record first: a re-entry into the child then (whose creation needs
/// the parent's record) is refused naming the parent; a re-entry into the parent while the child's record is being
/// created (the parent's exists) is served.
fn reentry_into_a_child_names_the_record_in_creation() -> String {
    on_a_fresh_thread(|| {
        let (outer, outcomes) = hooked(&CHILD, 0, 1, || CHILD.register());
        outer.unwrap();
        assert_eq!(outcomes, [Outcome::Reentrant("parent")]);
        assert_eq!(CHILD.stats().rejections, 1, "counted on the budget the request was made on");

        static OTHER: LeakBudget = LeakBudget::child_of(&PARENT, "other", 1 << 20);
        let (outer, outcomes) = hooked(&PARENT, 0, 1, || OTHER.register());
        outer.unwrap();
        assert_eq!(outcomes, [Outcome::Served], "the parent's record exists");
        assert_eq!(PARENT.reserved(), PARENT.report().entries()[0].total.reserved);
        format!("parent reserved {}, child reserved {}", PARENT.reserved(), CHILD.reserved())
    })
}

fn main() -> ExitCode {
    support::run(&[
        ("reentry_during_the_record_creation_is_refused", reentry_during_the_record_creation_is_refused),
        ("reentry_into_a_child_names_the_record_in_creation", reentry_into_a_child_names_the_record_in_creation),
    ])
}
