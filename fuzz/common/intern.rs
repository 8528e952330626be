//! A model of one `Interner` on a budget of its own, shared by the `intern_str` and `intern_generic` targets.
//!
//! [`Model::apply`] runs one operation and checks it against what the interner promises, panicking on any difference:
//! - equal values (per the type's `Eq`) give the same handle, and the same reference, and cost nothing;
//! - a new value gets a handle different from every other one, at a fresh, aligned address, holding an equal value:
//!   the very value given to `intern_owned`, or a clone of the one given to `intern` (which a `Clone` that alters
//!   what `Eq` ignores makes visible); the first value interned is the one kept;
//! - `get` finds exactly what was interned and charges nothing; `snapshot` lists exactly the handles given out;
//!   `len` counts them;
//! - a refusal is `BudgetExceeded` from the interner's budget, changes nothing but the rejection count (except the
//!   interner's state, set up by its first call), gives an owned value back (the same heap buffer), adds nothing, and
//!   asking again is refused the same way;
//! - a panic in the value's `Hash`, `Eq` or `Clone` leaves the interner as it was: nothing added, every handle still
//!   found, no rejection counted, and nothing charged (but the state on a first call, and, for `Clone`, the table
//!   growth made for the entry: see `fuzz/artifacts-notes/README.md`);
//! - after every operation, `used <= reserved <= peak_reserved <= limit`.

use core::fmt::Debug;
use core::hash::Hash;
use core::mem::align_of_val;
use std::collections::{HashMap, HashSet};

use leak_budget::{Internable, Interned, Interner, LeakBudget, LeakError, Rejected};

use super::{Input, Trap, address, arm, catch, check_figures, check_refusal, check_refusal_error, disarm};

/// An owned value the model keeps, and how the interner sees it.
pub trait Value: Hash + Eq + Debug + Sized + 'static {
    /// What is interned: `Self`, or the slice or `str` it owns.
    type T: ?Sized + Internable + PartialEq + Debug;

    fn decode(input: &mut Input<'_>) -> Option<Self>;

    fn as_interned(&self) -> &Self::T;

    /// An equal value at another address.
    fn copy(&self) -> Self;

    /// Everything that tells values apart, including what `Eq` ignores.
    fn exact(value: &Self::T) -> String {
        format!("{value:?}")
    }

    /// What [`exact`](Self::exact) gives for the entry `intern(self)` creates (a clone of `self`, for sized types).
    fn exact_stored(&self) -> String {
        Self::exact(self.as_interned())
    }

    /// `intern_owned`, for the types that have it.
    fn intern_owned(_interner: &Interner<Self::T>, _value: Self) -> Option<Result<Interned<Self::T>, Rejected<Self>>> {
        None
    }

    /// The address of the value's heap buffer, if it has one: a value given back must be the one given.
    fn buffer(&self) -> Option<usize> {
        None
    }

    /// Extra checks between two handles of different values (ordering, for the types that have it).
    fn check_pair(_new: Interned<Self::T>, _other: Interned<Self::T>) {}
}

/// How a value is handed to the interner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `intern(&value)` of the pool's value.
    Ref,
    /// `intern(&copy)`: an equal value at another address.
    Copy,
    /// `intern_owned(copy)` where the type has it, else as `Copy`.
    Owned,
}

/// One operation; indices are into the pool (wrapping).
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Intern(usize, How),
    Get(usize),
    Snapshot,
    /// An intern with a trap armed in the value's `Hash`, `Eq` or `Clone` (only for values that have traps).
    Trapped(usize, How, Trap, u8),
}

impl Op {
    /// Decodes one operation; `traps` says whether the values have traps to arm.
    pub fn decode(input: &mut Input<'_>, traps: bool) -> Option<Op> {
        let at = usize::from(input.u8()?);
        let how = |input: &mut Input<'_>| -> Option<How> {
            Some(match input.below(4)? {
                0 | 1 => How::Ref,
                2 => How::Copy,
                _ => How::Owned,
            })
        };
        Some(match input.below(16)? {
            0..=7 => Op::Intern(at, how(input)?),
            8..=11 => Op::Get(at),
            12 => Op::Snapshot,
            _ if traps => {
                let trap = match input.below(3)? {
                    0 => Trap::Hash,
                    1 => Trap::Eq,
                    _ => Trap::Clone,
                };
                Op::Trapped(at, how(input)?, trap, input.below(4)? as u8)
            }
            _ => Op::Intern(at, How::Ref),
        })
    }
}

/// A pool of values (equal ones frequent) and a sequence of operations on it.
pub fn decode<V: Value>(input: &mut Input<'_>, traps: bool, max_ops: usize) -> Option<(Vec<V>, Vec<Op>)> {
    let count = 1 + input.below(16)?;
    let mut pool = Vec::with_capacity(count);
    for _ in 0..count {
        pool.push(V::decode(input)?);
    }
    let mut ops = Vec::new();
    while ops.len() < max_ops {
        match Op::decode(input, traps) {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    Some((pool, ops))
}

/// One interner on its own budget, and what it should hold.
pub struct Model<V: Value> {
    budget: &'static LeakBudget,
    interner: Interner<V::T>,
    /// Every value interned, its handle, and what the stored value looks like (the first one interned).
    handles: HashMap<V, (Interned<V::T>, String)>,
    /// The address of every value interned, and the value.
    addresses: HashMap<usize, String>,
}

/// What an intern call gave: a handle, or a refusal with the value it gave back (if it took one).
type Outcome<V, T> = Result<Interned<T>, (Option<V>, LeakError)>;

impl<V: Value> Model<V> {
    pub fn new(budget: &'static LeakBudget) -> Self {
        Self { budget, interner: Interner::in_budget(budget), handles: HashMap::new(), addresses: HashMap::new() }
    }

    pub fn budget(&self) -> &'static LeakBudget {
        self.budget
    }

    /// Runs the call; returns its outcome and what the stored value should look like if it is new.
    fn call(&self, value: &V, how: How) -> (Outcome<V, V::T>, String) {
        match how {
            How::Ref => {
                (self.interner.intern(value.as_interned()).map_err(|error| (None, error)), value.exact_stored())
            }
            How::Copy => {
                let copy = value.copy();
                let stored = copy.exact_stored();
                (self.interner.intern(copy.as_interned()).map_err(|error| (None, error)), stored)
            }
            How::Owned => {
                let copy = value.copy();
                let stored = V::exact(copy.as_interned());
                let buffer = copy.buffer();
                match V::intern_owned(&self.interner, copy) {
                    Some(result) => {
                        let result = result.map_err(|rejected| {
                            let (back, error) = rejected.into_parts();
                            assert_eq!(back.buffer(), buffer, "intern_owned gives back the value it was given");
                            assert_eq!(V::exact(back.as_interned()), stored, "and unchanged");
                            (Some(back), error)
                        });
                        (result, stored)
                    }
                    None => self.call(value, How::Copy),
                }
            }
        }
    }

    fn intern(&mut self, value: &V, how: How) {
        let before = self.budget.stats();
        let len = self.interner.len();
        let (result, stored) = self.call(value, how);
        self.settle(value, before, len, result, stored);
    }

    /// Checks the outcome of an intern call that started with the figures `before` and `len` values.
    fn settle(&mut self, value: &V, before: leak_budget::Stats, len: usize, result: Outcome<V, V::T>, stored: String) {
        if let Some((known, kept)) = self.handles.get(value) {
            let handle = result.expect("a value already interned is never refused");
            assert_eq!(handle, *known, "{value:?}: equal values give equal handles");
            assert!(core::ptr::eq(handle.as_static(), known.as_static()), "{value:?}: and the same reference");
            assert_eq!(&V::exact(handle.as_static()), kept, "{value:?}: the first value interned is kept");
            assert_eq!(self.budget.stats(), before, "{value:?}: interning a value already present charges nothing");
            assert_eq!(self.interner.len(), len);
            return;
        }
        match result {
            Ok(handle) => {
                let interned = handle.as_static();
                assert_eq!(interned, value.as_interned(), "the handle holds an equal value");
                assert_eq!(V::exact(interned), stored, "{value:?}: the value stored is the one expected");
                assert_eq!(format!("{handle:?}"), format!("{interned:?}"));
                let at = address(interned);
                assert_eq!(at % align_of_val(interned), 0, "{value:?} misaligned at {at:#x}");
                if let Some(other) = self.addresses.insert(at, stored.clone()) {
                    // Zero-sized values may share an address; anything else may not.
                    assert_eq!(core::mem::size_of_val(interned), 0, "{value:?} interned at the address of {other}");
                }
                for &(other, _) in self.handles.values() {
                    assert_ne!(other, handle, "{value:?}: a new value gets a new handle");
                    V::check_pair(handle, other);
                }
                self.handles.insert(value.copy(), (handle, stored));
                assert_eq!(self.interner.len(), len + 1);
            }
            Err((_, error)) => {
                if before.reserved == 0 {
                    // The first `intern` creates the interner's state (its hasher and empty table) before it asks for
                    // the entry; when the budget takes the state and refuses the entry, the state stays charged.
                    check_refusal_error(self.budget, &error);
                    assert_eq!(self.budget.stats().rejections, before.rejections + 1, "a refusal counts once");
                } else {
                    check_refusal(self.budget, before, &error);
                }
                assert_eq!(self.interner.len(), len, "a refusal adds nothing");
                assert_eq!(self.interner.get(value.as_interned()), None, "{value:?} was refused");
                // Nothing changed, so asking again is refused again, and changes nothing either. With the same
                // figures, unless the first call was refused only after setting up the state and the table's first
                // directory (then the retry is refused up front, for a different number of bytes).
                let again = self.budget.stats();
                let retry = self.interner.intern(value.as_interned()).expect_err("nothing changed, so refused again");
                if before.reserved > 0 {
                    assert_eq!(retry, error);
                }
                check_refusal(self.budget, again, &retry);
                self.check_handles();
            }
        }
    }

    /// An intern call during which the value's `Hash`, `Eq` or `Clone` may panic.
    fn trapped(&mut self, value: &V, how: How, trap: Trap, skip: u8) {
        let before = self.budget.stats();
        let len = self.interner.len();
        arm(trap, skip);
        let caught = catch(|| self.call(value, how));
        let fired = !disarm();
        match caught {
            Ok((result, stored)) => {
                assert!(!fired, "the trap fired, yet the call returned");
                self.settle(value, before, len, result, stored);
            }
            Err(_) => {
                assert!(fired);
                assert_eq!(self.interner.len(), len, "{trap:?} panicked: nothing added");
                let after = self.budget.stats();
                assert_eq!(after.rejections, before.rejections, "{trap:?} panicked: no refusal counted");
                if trap == Trap::Clone {
                    // `Clone` runs after the table made room for the entry (its first directory, a bucket split or a
                    // doubled directory), and that growth stays: see `fuzz/artifacts-notes/README.md`.
                    assert!(after.reserved >= before.reserved && after.allocations >= before.allocations);
                } else if before.reserved > 0 {
                    assert_eq!(after, before, "{trap:?} panicked ({how:?}): nothing charged");
                }
                let known = self.handles.get(value).map(|&(handle, _)| handle);
                assert_eq!(self.interner.get(value.as_interned()), known, "{trap:?} panicked: nothing changed");
                self.check_handles();
            }
        }
    }

    fn get(&self, value: &V) {
        let before = self.budget.stats();
        let found = self.interner.get(value.as_interned());
        let known = self.handles.get(value).map(|&(handle, _)| handle);
        assert_eq!(found, known, "get({value:?}) finds exactly what was interned");
        if let Some(found) = found {
            assert_eq!(found.as_static(), value.as_interned());
        }
        assert_eq!(self.budget.stats(), before, "get never charges");
    }

    fn snapshot(&self) {
        let before = self.budget.stats();
        let snapshot = self.interner.iter().collect::<Vec<_>>();
        let all: HashSet<Interned<V::T>> = snapshot.iter().copied().collect();
        assert_eq!(all.len(), snapshot.len(), "no handle twice in the snapshot");
        let expected: HashSet<Interned<V::T>> = self.handles.values().map(|&(handle, _)| handle).collect();
        assert_eq!(all, expected, "the snapshot holds every value interned, and nothing else");
        assert_eq!(self.budget.stats(), before, "a snapshot charges nothing");
    }

    /// Every handle still holds its value and is what `get` gives.
    fn check_handles(&self) {
        for (value, (handle, kept)) in &self.handles {
            assert_eq!(handle.as_static(), value.as_interned(), "{value:?} intact");
            assert_eq!(&V::exact(handle.as_static()), kept, "{value:?} intact");
            assert_eq!(self.interner.get(value.as_interned()), Some(*handle));
        }
    }

    pub fn apply(&mut self, pool: &[V], op: Op) {
        match op {
            Op::Intern(at, how) => self.intern(&pool[at % pool.len()], how),
            Op::Get(at) => self.get(&pool[at % pool.len()]),
            Op::Snapshot => self.snapshot(),
            Op::Trapped(at, how, trap, skip) => self.trapped(&pool[at % pool.len()], how, trap, skip),
        }
        check_figures(self.budget);
        assert_eq!(self.interner.len(), self.handles.len(), "len counts the distinct values interned");
        assert_eq!(self.interner.is_empty(), self.handles.is_empty());
    }

    /// Final checks: every handle intact, the snapshot complete, and interning each value again free.
    pub fn finish(&self) {
        self.snapshot();
        self.check_handles();
        for (value, &(handle, _)) in &self.handles {
            let before = self.budget.stats();
            assert_eq!(self.interner.intern(value.as_interned()).expect("present"), handle);
            assert_eq!(self.budget.stats(), before);
        }
    }

    /// Runs `ops` on a fresh budget of `limit` and returns `reserved` after each step.
    pub fn run(name: &'static str, limit: usize, pool: &[V], ops: &[Op]) -> Vec<usize> {
        let mut model = Self::new(super::budget(name, limit));
        let mut reserved = Vec::with_capacity(ops.len());
        for &op in ops {
            model.apply(pool, op);
            reserved.push(model.budget.reserved());
        }
        model.finish();
        reserved
    }
}
