//! Drives five `LeakOnce` cells (of `()`, `u8`, `String`, `[u64; 40]` and a 256-byte-aligned struct) sharing a tiny
//! budget with `get`, `set`, `get_or_init` and `get_or_try_init`, checking every call against a model. An initialiser,
//! chosen by the input, returns a value, fails, panics, calls back into its own cell (the inner call must panic with
//! a message rather than wait for itself, caught inside the initialiser or left to unwind through it), or first makes
//! another call on any cell (its own included). Checked:
//! - once a value is published, every call gives that same reference, no initialiser runs, nothing is charged, and
//!   `set` gives its value back with `AlreadySet`;
//! - on an empty cell an initialiser runs exactly once per `get_or_*` call, sees `get() == None`, and its value is
//!   published, or refused by the budget (`BudgetExceeded`, value handed back, nothing changed but the rejection
//!   count, and only when the room left is below `max_charge_for` of the value plus the budget's record on its first
//!   request); a failing or panicking initialiser leaves the cell empty, charges nothing, and the next call
//!   initialises it;
//! - published values are aligned, intact and disjoint, and `used <= reserved <= peak_reserved <= limit` after every
//!   call.
//!
//! The limit is zero, tiny, below 4 KiB, plenty, or near a value `reserved` reached with plenty, so that most values
//! are refused somewhere.
//!
//! ```text
//! cargo +nightly fuzz run once -- -fork=1 -max_total_time=660 -rss_limit_mb=4096 -timeout=60 -detect_leaks=0
//! cargo +nightly fuzz run once -- -fork=1 -max_total_time=150 -rss_limit_mb=4096 -timeout=60
//! ```
//!
//! Every published value stays leaked; as for `budget`, runs need `-fork` to keep each process's memory bounded.
//! `-fork` starts a process per job, and libFuzzer runs LeakSanitizer after every input that allocates more than it
//! frees (every input here) up to 1,000 times per process, so with leak detection on a run does little but scan for
//! leaks (a few dozen executions a second instead of a thousand or more). Hence the long run without it, and a shorter
//! one with it.

#![no_main]

use core::alloc::Layout;
use core::cell::Cell;
use core::fmt::Debug;
use core::mem::{align_of, size_of};

use leak_budget::{InitError, LeakBudget, LeakError, LeakOnce, Rejected, Stats};
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::{Input, Limit, address, catch, check_figures, check_refusal, expect_library_panic};

/// Values built from a seed, different for different seeds (but for `()`).
trait FromSeed: PartialEq + Debug + 'static {
    fn from_seed(seed: u8) -> Self;
}

impl FromSeed for () {
    fn from_seed(_: u8) -> Self {}
}

impl FromSeed for u8 {
    fn from_seed(seed: u8) -> Self {
        seed
    }
}

impl FromSeed for String {
    fn from_seed(seed: u8) -> Self {
        "ab".repeat(usize::from(seed))
    }
}

impl FromSeed for [u64; 40] {
    fn from_seed(seed: u8) -> Self {
        core::array::from_fn(|at| u64::from(seed) << (at % 56))
    }
}

/// A value aligned to 256 bytes.
#[repr(C, align(256))]
#[derive(Debug, PartialEq)]
struct Aligned([u8; 32]);

impl FromSeed for Aligned {
    fn from_seed(seed: u8) -> Self {
        Aligned(core::array::from_fn(|at| seed.wrapping_add(at as u8)))
    }
}

const CELLS: usize = 5;

/// What an initialiser does.
#[derive(Debug, Clone)]
enum Behaviour {
    Value,
    /// Returns an error (for `get_or_init`, which has no error, returns the value).
    Fail,
    Panic,
    /// Calls `get_or_init` on its own cell and lets the library's panic unwind through it.
    ReenterUncaught,
    /// Makes this call first (on any cell, its own included), then returns the value.
    Nested(Box<Op>),
}

#[derive(Debug, Clone)]
enum Kind {
    Get,
    Set,
    GetOrInit(Behaviour),
    GetOrTryInit(Behaviour),
}

#[derive(Debug, Clone)]
struct Op {
    cell: usize,
    kind: Kind,
    seed: u8,
}

impl Op {
    fn decode(input: &mut Input<'_>, nesting: bool) -> Option<Op> {
        let cell = input.below(CELLS)?;
        let seed = input.u8()?;
        let behaviour = |input: &mut Input<'_>| -> Option<Behaviour> {
            Some(match input.below(8)? {
                0..=2 => Behaviour::Value,
                3 => Behaviour::Fail,
                4 => Behaviour::Panic,
                5 => Behaviour::ReenterUncaught,
                _ if nesting => Behaviour::Nested(Box::new(Op::decode(input, false)?)),
                _ => Behaviour::Value,
            })
        };
        let kind = match input.below(8)? {
            0 | 1 => Kind::Get,
            2 | 3 => Kind::Set,
            4 | 5 => Kind::GetOrInit(behaviour(input)?),
            _ => Kind::GetOrTryInit(behaviour(input)?),
        };
        Some(Op { cell, kind, seed })
    }
}

const REENTRY: &str = "would wait for itself forever";
const FAILED: &str = "the initialiser failed";

/// What a call gave.
enum Outcome<T: 'static> {
    Value(&'static T),
    Refused(Rejected<T>),
    Failed,
    Empty,
    /// The initialiser panicked (deliberately, or in the library's re-entrant call that it let unwind).
    Panicked,
}

/// A cell and what it should hold; dynamic so that cells of several types share a sequence, and `&self` so that an
/// initialiser can call back into the model.
trait CellModel {
    fn apply(&self, budget: &'static LeakBudget, op: &Op, cells: &[Box<dyn CellModel>]);
    /// The published value's address and size, after checking it is intact.
    fn check(&self) -> Option<(usize, usize)>;
}

struct Typed<T: 'static> {
    cell: LeakOnce<T>,
    /// The published value and the seed it was built from.
    published: Cell<Option<(&'static T, u8)>>,
    /// Whether an initialiser of this cell is running (on this thread: there is only one).
    initialising: Cell<bool>,
}

impl<T: FromSeed> Typed<T> {
    fn boxed(budget: &'static LeakBudget) -> Box<dyn CellModel> {
        Box::new(Self { cell: LeakOnce::in_budget(budget), published: Cell::new(None), initialising: Cell::new(false) })
    }

    /// The call, run as `op` says; `store` receives the figures just before the value is offered to the budget.
    fn run(
        &self,
        budget: &'static LeakBudget,
        op: &Op,
        cells: &[Box<dyn CellModel>],
        runs: &Cell<usize>,
        store: &Cell<Option<Stats>>,
    ) -> Outcome<T> {
        let init = |behaviour: &Behaviour| -> Result<T, &'static str> {
            runs.set(runs.get() + 1);
            assert!(!self.initialising.replace(true), "one initialiser at a time");
            assert!(self.cell.get().is_none(), "an initialiser runs only while the cell is empty");
            // Leave the role however the initialiser ends.
            struct Leave<'a>(&'a Cell<bool>);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.set(false);
                }
            }
            let leave = Leave(&self.initialising);
            let result = match behaviour {
                Behaviour::Value => Ok(T::from_seed(op.seed)),
                Behaviour::Fail => Err(FAILED),
                Behaviour::Panic => {
                    store.set(Some(budget.stats()));
                    common::deliberate_panic()
                }
                Behaviour::ReenterUncaught => {
                    store.set(Some(budget.stats()));
                    let _ = self.cell.get_or_init(|| unreachable!("a re-entrant call runs no initialiser"));
                    unreachable!("a re-entrant call panics")
                }
                Behaviour::Nested(nested) => {
                    cells[nested.cell].apply(budget, nested, cells);
                    Ok(T::from_seed(op.seed))
                }
            };
            drop(leave);
            store.set(Some(budget.stats()));
            result
        };
        match &op.kind {
            Kind::Get => self.cell.get().map_or(Outcome::Empty, Outcome::Value),
            Kind::Set => {
                store.set(Some(budget.stats()));
                self.cell.set(T::from_seed(op.seed)).map_or_else(Outcome::Refused, Outcome::Value)
            }
            Kind::GetOrInit(behaviour) => {
                let call = || self.cell.get_or_init(|| init(behaviour).unwrap_or_else(|_| T::from_seed(op.seed)));
                let result = match behaviour {
                    Behaviour::Panic => catch(call).map_err(|_| None),
                    Behaviour::ReenterUncaught => expect_library_panic(REENTRY, call),
                    _ => Ok(call()),
                };
                match result {
                    Ok(Ok(value)) => Outcome::Value(value),
                    Ok(Err(rejected)) => Outcome::Refused(rejected),
                    Err(_) => Outcome::Panicked,
                }
            }
            Kind::GetOrTryInit(behaviour) => {
                let call = || self.cell.get_or_try_init(|| init(behaviour));
                let result = match behaviour {
                    Behaviour::Panic => catch(call).map_err(|_| None),
                    Behaviour::ReenterUncaught => expect_library_panic(REENTRY, call),
                    _ => Ok(call()),
                };
                match result {
                    Ok(Ok(value)) => Outcome::Value(value),
                    Ok(Err(InitError::Leak(rejected))) => Outcome::Refused(rejected),
                    Ok(Err(InitError::Init(error))) => {
                        assert_eq!(error, FAILED);
                        Outcome::Failed
                    }
                    Err(_) => Outcome::Panicked,
                }
            }
        }
    }
}

impl<T: FromSeed> CellModel for Typed<T> {
    fn apply(&self, budget: &'static LeakBudget, op: &Op, cells: &[Box<dyn CellModel>]) {
        let before = budget.stats();
        if self.initialising.get() {
            // A call from inside this cell's own initialiser: `get` sees nothing, anything else panics rather than
            // wait for itself.
            let never = || -> T { unreachable!("a re-entrant call runs no initialiser") };
            let result = match op.kind {
                Kind::Get => {
                    assert!(self.cell.get().is_none(), "the cell is being initialised");
                    Err(Some(String::new()))
                }
                Kind::Set => expect_library_panic(REENTRY, || drop(self.cell.set(T::from_seed(op.seed)))),
                Kind::GetOrInit(_) => expect_library_panic(REENTRY, || drop(self.cell.get_or_init(never))),
                Kind::GetOrTryInit(_) => {
                    expect_library_panic(REENTRY, || drop(self.cell.get_or_try_init(|| Ok::<T, ()>(never()))))
                }
            };
            assert!(matches!(result, Err(Some(_))), "{op:?} from the cell's own initialiser must panic");
            assert_eq!(budget.stats(), before, "{op:?} from the initialiser charges nothing");
            return;
        }
        let runs = Cell::new(0);
        let store = Cell::new(None);
        let outcome = self.run(budget, op, cells, &runs, &store);
        if let Some((published, seed)) = self.published.get() {
            match outcome {
                Outcome::Value(value) => {
                    assert!(core::ptr::eq(value, published), "{op:?}: every call sees the one published value");
                    assert!(!matches!(op.kind, Kind::Set), "set on a full cell succeeded");
                }
                Outcome::Refused(rejected) => {
                    assert!(matches!(op.kind, Kind::Set), "{op:?} refused on a full cell");
                    assert_eq!(rejected.error(), &LeakError::AlreadySet);
                    assert_eq!(rejected.into_inner(), T::from_seed(op.seed), "set gives its value back");
                }
                Outcome::Failed | Outcome::Empty | Outcome::Panicked => panic!("{op:?} on a full cell gave no value"),
            }
            assert_eq!(*published, T::from_seed(seed));
            assert_eq!(runs.get(), 0, "{op:?}: no initialiser runs once a value is published");
            assert_eq!(budget.stats(), before, "{op:?}: nothing is charged once a value is published");
            return;
        }
        let offers = match &op.kind {
            Kind::Get => {
                assert_eq!(runs.get(), 0);
                false
            }
            Kind::Set => true,
            Kind::GetOrInit(behaviour) | Kind::GetOrTryInit(behaviour) => {
                assert_eq!(runs.get(), 1, "{op:?}: an empty cell runs the initialiser once");
                match behaviour {
                    Behaviour::Value | Behaviour::Nested(_) => true,
                    Behaviour::Fail => matches!(op.kind, Kind::GetOrInit(_)),
                    Behaviour::Panic | Behaviour::ReenterUncaught => false,
                }
            }
        };
        // The figures when the value was offered (after any nested call), or when the initialiser ended.
        let base = store.get().unwrap_or(before);
        // What a value of `T` may need: the documented bound, plus the budget's record on its first request.
        let bound = LeakBudget::max_charge_for(Layout::new::<T>())
            + if base.reserved == 0 && size_of::<T>() > 0 { LeakBudget::RECORD_BYTES } else { 0 };
        match outcome {
            Outcome::Value(value) => {
                assert!(offers, "{op:?} published a value");
                assert_eq!(*value, T::from_seed(op.seed), "{op:?}: the value offered is published");
                assert_eq!(address(value) % align_of::<T>(), 0, "misaligned");
                assert_eq!(self.cell.get().map(address), Some(address(value)));
                assert_eq!(budget.stats().rejections, base.rejections);
                self.published.set(Some((value, op.seed)));
            }
            Outcome::Refused(rejected) => {
                assert!(offers, "{op:?} refused");
                let (value, error) = rejected.into_parts();
                assert_eq!(value, T::from_seed(op.seed), "{op:?}: a refusal gives the value back");
                check_refusal(budget, base, &error);
                assert!(base.limit - base.reserved < bound, "{op:?} refused with room for {bound} bytes: {error}");
                assert_eq!(self.cell.get(), None, "{op:?}: refused, so the cell stays empty");
            }
            Outcome::Failed | Outcome::Panicked => {
                assert!(!offers, "{op:?}");
                assert_eq!(budget.stats(), base, "a failed or panicking initialiser charges nothing");
                assert_eq!(self.cell.get(), None);
            }
            Outcome::Empty => {
                assert!(matches!(op.kind, Kind::Get));
                assert_eq!(budget.stats(), before, "get charges nothing");
            }
        }
    }

    fn check(&self) -> Option<(usize, usize)> {
        let (value, seed) = self.published.get()?;
        assert_eq!(*value, T::from_seed(seed), "published value intact");
        assert!(core::ptr::eq(self.cell.get().expect("published"), value));
        Some((address(value), size_of::<T>()))
    }
}

/// Runs `ops` on the five cells sharing a budget of `limit` and returns `reserved` after each step.
fn run(limit: usize, ops: &[Op]) -> Vec<usize> {
    let budget = common::budget("once", limit);
    let cells = [
        Typed::<()>::boxed(budget),
        Typed::<u8>::boxed(budget),
        Typed::<String>::boxed(budget),
        Typed::<[u64; 40]>::boxed(budget),
        Typed::<Aligned>::boxed(budget),
    ];
    let mut reserved = Vec::with_capacity(ops.len());
    for op in ops {
        cells[op.cell].apply(budget, op, &cells);
        check_figures(budget);
        reserved.push(budget.reserved());
    }
    let mut ranges: Vec<(usize, usize)> =
        cells.iter().filter_map(|cell| cell.check()).filter(|&(_, size)| size > 0).collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "published values overlap: {pair:?}");
    }
    reserved
}

const PLENTY: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    common::install_panic_hook();
    let mut input = Input::new(data);
    let limit = Limit::decode(&mut input, 4 << 10, PLENTY);
    let mut ops = Vec::new();
    while ops.len() < 48 {
        match Op::decode(&mut input, true) {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    let limit = limit.bytes(|| run(PLENTY, &ops));
    run(limit, &ops);
});
