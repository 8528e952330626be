//! Drives one `StaticCache<K, V>` on a small budget of its own with `get`, `get_or_insert_with`,
//! `try_get_or_insert_with` and `get_or_try_insert_with`, keys and values taken from pools decoded from the input,
//! checking every call against a model:
//! - the initialiser runs exactly once on a miss (with the key) and never on a hit; a hit gives the reference cached
//!   first, forever, holding the value it was cached with, and charges and counts nothing but the hit;
//! - an initialiser that fails or panics caches nothing; one that calls back into the cache (for another key, which
//!   works, or for its own key, which must panic with a message rather than wait for itself) leaves the cache
//!   consistent;
//! - once the budget refuses the cache anything, the cache is full: every miss runs its initialiser and hands the
//!   value back uncached (`Cached::Owned`, or `Rejected` with the refusal that made it full, a `BudgetExceeded` of
//!   the cache's budget) without asking the budget again; hits keep working;
//! - `len`, `is_full` and `stats` (hits, misses, degraded, no waits) match the model after every call, and
//!   `used <= reserved <= peak_reserved <= limit`.
//!
//! Three kinds of cache, chosen by the input: `String` keys (looked up by `&str`) with `Vec<u8>` values, `u16` keys
//! with `u64` values, and `Weird` keys (`fuzz/common/mod.rs`: an `Eq` that ignores a field, a `Hash` that covers part
//! of what `Eq` compares or nothing at all, so keys collide by the dozen) with 64-byte-aligned values; for those, the
//! input can also make the key's `Hash` or `Eq` panic at their nth call, which must leave the cache consistent. The
//! limit is zero, tiny, below 24 KiB, plenty, or near a value `reserved` reached with plenty, so that caches fill.
//!
//! ```text
//! cargo +nightly fuzz run cache -- -fork=1 -max_total_time=660 -rss_limit_mb=4096 -timeout=60 -detect_leaks=0
//! cargo +nightly fuzz run cache -- -fork=1 -max_total_time=150 -rss_limit_mb=4096 -timeout=60
//! ```
//!
//! Everything cached stays leaked; as for `budget`, runs need `-fork` to keep each process's memory bounded. `-fork`
//! starts a process per job, and libFuzzer runs LeakSanitizer after every input that allocates more than it frees
//! (every input here) up to 1,000 times per process, so with leak detection on a run does little but scan for leaks (a
//! few dozen executions a second instead of a thousand or more). Hence the long run without it, and a shorter one with
//! it.

#![no_main]

use core::cell::{Cell, RefCell};
use core::fmt::Debug;
use core::hash::Hash;
use core::mem::align_of;
use std::collections::HashMap;

use leak_budget::{Cached, LeakBudget, LeakError, StaticCache, Stats};
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::{Input, Limit, Trap, Weird, address, arm, catch, check_figures, check_refusal_error, disarm, settled};

/// Keys and values of one kind of cache.
trait Case: 'static {
    type K: Hash + Eq + Debug + 'static;
    type V: PartialEq + Debug + 'static;
    const TRAPS: bool = false;

    fn key(input: &mut Input<'_>) -> Option<Self::K>;
    fn value(input: &mut Input<'_>) -> Option<Self::V>;
    /// An equal key with everything equal, made without running the key's `Clone`.
    fn copy_key(key: &Self::K) -> Self::K;
    fn copy_value(value: &Self::V) -> Self::V;

    /// Whether two keys are the same in every respect, without running the key's `Eq`.
    fn same(a: &Self::K, b: &Self::K) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    fn get(cache: &StaticCache<Self::K, Self::V>, key: &Self::K) -> Option<&'static Self::V> {
        cache.get(key)
    }
}

struct Strings;

impl Case for Strings {
    type K = String;
    type V = Vec<u8>;

    fn key(input: &mut Input<'_>) -> Option<String> {
        common::text(input)
    }

    fn value(input: &mut Input<'_>) -> Option<Vec<u8>> {
        let len = input.below(48)?;
        Some(input.bytes(len).to_vec())
    }

    fn copy_key(key: &String) -> String {
        key.clone()
    }

    fn copy_value(value: &Vec<u8>) -> Vec<u8> {
        value.clone()
    }

    fn get(cache: &StaticCache<String, Vec<u8>>, key: &String) -> Option<&'static Vec<u8>> {
        cache.get(key.as_str())
    }
}

struct Numbers;

impl Case for Numbers {
    type K = u16;
    type V = u64;

    fn key(input: &mut Input<'_>) -> Option<u16> {
        Some(input.u16()? % 64)
    }

    fn value(input: &mut Input<'_>) -> Option<u64> {
        Some(u64::from(input.u16()?).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn copy_key(key: &u16) -> u16 {
        *key
    }

    fn copy_value(value: &u64) -> u64 {
        *value
    }
}

/// A value aligned to 64 bytes.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block([u8; 40]);

struct Weirds;

impl Case for Weirds {
    type K = Weird;
    type V = Block;
    const TRAPS: bool = true;

    fn key(input: &mut Input<'_>) -> Option<Weird> {
        Weird::decode(input)
    }

    fn value(input: &mut Input<'_>) -> Option<Block> {
        let mut block = [0; 40];
        let len = input.below(41)?;
        let bytes = input.bytes(len);
        block[..bytes.len()].copy_from_slice(bytes);
        Some(Block(block))
    }

    fn copy_key(key: &Weird) -> Weird {
        Weird { mode: key.mode, tag: key.tag, data: key.data.clone(), noise: key.noise }
    }

    fn copy_value(value: &Block) -> Block {
        *value
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GetOrInsert,
    TryGetOrInsert,
    /// `get_or_try_insert_with`, whose initialiser fails if the flag is set.
    GetOrTryInsert(bool),
    /// `get_or_insert_with` whose initialiser panics.
    Panicking,
    Get,
}

/// One call: pool indices of its key and the value its initialiser returns.
#[derive(Debug, Clone)]
struct Call {
    kind: Kind,
    key: usize,
    value: usize,
    /// A call the initialiser makes first, on the same cache.
    nested: Option<Box<Call>>,
    /// A panic armed in the key's `Hash` or `Eq` for the duration of the call.
    trap: Option<(Trap, u8)>,
}

impl Call {
    fn decode(input: &mut Input<'_>, traps: bool, nesting: bool) -> Option<Call> {
        let key = usize::from(input.u8()?);
        let value = usize::from(input.u8()?);
        let plain = |kind| Some(Call { kind, key, value, nested: None, trap: None });
        match input.below(16)? {
            0..=3 => plain(Kind::GetOrInsert),
            4 | 5 => plain(Kind::TryGetOrInsert),
            6 | 7 => plain(Kind::GetOrTryInsert(false)),
            8 => plain(Kind::GetOrTryInsert(true)),
            9 => plain(Kind::Panicking),
            10 | 11 => plain(Kind::Get),
            12..=14 if nesting => {
                let mut outer = Call::decode(input, false, false)?;
                if outer.kind == Kind::Get {
                    outer.kind = Kind::GetOrInsert;
                }
                let mut inner = Call::decode(input, false, false)?;
                // Often the outer call's own key: re-entry for the key being computed.
                if input.bool()? {
                    inner.key = outer.key;
                }
                outer.nested = Some(Box::new(inner));
                Some(outer)
            }
            15 if traps => {
                let mut call = Call::decode(input, false, false)?;
                let trap = if input.bool()? { Trap::Hash } else { Trap::Eq };
                call.trap = Some((trap, input.below(4)? as u8));
                Some(call)
            }
            _ => plain(Kind::GetOrInsert),
        }
    }
}

/// What the call gave.
#[derive(Debug)]
enum Outcome<V: 'static> {
    Static(&'static V),
    Owned(V),
    Refused(V, LeakError),
    Failed,
    /// The library refused a re-entrant call for the key being computed.
    ReentryRefused,
}

const REENTRY: &str = "would wait for itself forever";

/// Cached keys, their references, and the values they were cached with.
type Entries<C> = HashMap<<C as Case>::K, (&'static <C as Case>::V, <C as Case>::V)>;

/// The keys and values a sequence draws from.
type Pools<C> = (Vec<<C as Case>::K>, Vec<<C as Case>::V>);

/// One cache on its own budget, and what it should hold and have counted. Interior mutability: an initialiser
/// calls back into the model for its nested call.
struct Model<C: Case> {
    budget: &'static LeakBudget,
    cache: StaticCache<C::K, C::V>,
    keys: Vec<C::K>,
    values: Vec<C::V>,
    /// Cached keys, their references, and the values they were cached with.
    entries: RefCell<Entries<C>>,
    full: Cell<bool>,
    /// The refusal that made the cache full, once a call has reported it.
    refusal: RefCell<Option<LeakError>>,
    /// (hits, misses, degraded)
    counts: Cell<(usize, usize, usize)>,
    /// Keys whose initialiser is running on this thread, registered as being computed (not degraded).
    computing: RefCell<Vec<C::K>>,
}

impl<C: Case> Model<C> {
    fn count(&self, hits: usize, misses: usize, degraded: usize) {
        let (h, m, d) = self.counts.get();
        self.counts.set((h + hits, m + misses, d + degraded));
    }

    fn cached(&self, key: &C::K) -> Option<&'static C::V> {
        self.entries.borrow().get(key).map(|&(value, _)| value)
    }

    /// A value handed back uncached by a call that started with the figures `before`; `error` is the refusal it
    /// reported, if it reports one; `checked` says whether the budget's figures can be compared (no nested call).
    fn degraded(&self, before: Stats, error: Option<LeakError>, was_full: bool, checked: bool) {
        self.count(0, 0, 1);
        let after = self.budget.stats();
        if was_full {
            if checked {
                assert_eq!(after, before, "a full cache does not ask the budget again");
            }
        } else if !self.full.get() {
            // This call was refused, and the cache is full from now on.
            assert!(self.cache.is_full(), "a value handed back uncached, yet the cache is not full");
            if checked {
                assert_eq!(after.rejections, before.rejections + 1, "a refusal counts once");
                if before.reserved > 0 {
                    assert_eq!(settled(after), settled(before), "a refusal changes nothing");
                }
            }
            self.full.set(true);
        }
        if let Some(error) = error {
            let mut refusal = self.refusal.borrow_mut();
            match &*refusal {
                Some(first) => assert_eq!(&error, first, "the refusal reported is the one that made the cache full"),
                None => {
                    check_refusal_error(self.budget, &error);
                    *refusal = Some(error);
                }
            }
        }
    }

    /// Runs `call`, checks its outcome, and updates the model.
    fn call(&self, call: &Call) {
        let key = &self.keys[call.key % self.keys.len()];
        let value = &self.values[call.value % self.values.len()];
        let before = self.budget.stats();
        let was_full = self.full.get();
        if call.kind == Kind::Get {
            let stats = self.cache.stats();
            let found = C::get(&self.cache, key);
            assert_eq!(found.map(address), self.cached(key).map(address), "get({key:?})");
            assert_eq!((self.budget.stats(), self.cache.stats()), (before, stats), "get charges and counts nothing");
            return;
        }
        let cached = self.cached(key);
        // Whether the call registered its key as being computed: the cache was not full when its initialiser began.
        let registered = Cell::new(None);
        // The figures after the budget refused the cache its state in this call, if it did.
        let state_refused = Cell::new(None);
        let runs = Cell::new(0);
        let init = |k: &C::K| {
            runs.set(runs.get() + 1);
            assert!(C::same(k, key), "the initialiser gets the key: {k:?} for {key:?}");
            let full_now = self.cache.is_full();
            registered.set(Some(!full_now));
            if full_now && !self.full.get() {
                // The budget refused the cache its state, just now, before this initialiser ran.
                self.refused_state(before);
                state_refused.set(Some(self.budget.stats()));
            }
            if !full_now {
                self.computing.borrow_mut().push(C::copy_key(k));
            }
            if let Some(nested) = &call.nested {
                self.call(nested);
            }
            if !full_now {
                self.computing.borrow_mut().pop();
            }
            match call.kind {
                Kind::Panicking => common::deliberate_panic(),
                Kind::GetOrTryInsert(true) => Err("the initialiser failed"),
                _ => Ok(C::copy_value(value)),
            }
        };
        let reentry = cached.is_none() && !was_full && self.computing.borrow().iter().any(|computing| computing == key);
        let run = || match call.kind {
            Kind::GetOrInsert | Kind::Panicking => match self
                .cache
                .get_or_insert_with(&C::copy_key(key), |k| init(k).expect("only `GetOrTryInsert(true)` fails"))
            {
                Cached::Static(value) => Outcome::Static(value),
                Cached::Owned(value) => Outcome::Owned(value),
            },
            Kind::TryGetOrInsert => {
                match self.cache.try_get_or_insert_with(&C::copy_key(key), |k| init(k).expect("does not fail")) {
                    Ok(value) => Outcome::Static(value),
                    Err(rejected) => {
                        let (value, error) = rejected.into_parts();
                        Outcome::Refused(value, error)
                    }
                }
            }
            Kind::GetOrTryInsert(_) => match self.cache.get_or_try_insert_with(&C::copy_key(key), init) {
                Ok(Cached::Static(value)) => Outcome::Static(value),
                Ok(Cached::Owned(value)) => Outcome::Owned(value),
                Err(_) => Outcome::Failed,
            },
            Kind::Get => unreachable!("handled above"),
        };
        let outcome = if reentry {
            match common::expect_library_panic(REENTRY, run) {
                Ok(outcome) => panic!("a re-entrant call for the key being computed returned {outcome:?}"),
                Err(message) => {
                    assert!(message.is_some(), "the re-entrant call's panic comes from the library");
                    Outcome::ReentryRefused
                }
            }
        } else if let Some((trap, skip)) = call.trap {
            arm(trap, skip);
            let caught = catch(run);
            let fired = !disarm();
            match caught {
                Ok(outcome) => {
                    assert!(!fired, "the trap fired, yet the call returned");
                    outcome
                }
                Err(_) if fired => {
                    self.trapped(before, was_full, runs.get(), trap);
                    return;
                }
                Err(_) => {
                    // Not the trap: the initialiser's own panic.
                    assert_eq!(call.kind, Kind::Panicking);
                    self.panicked(key, before, was_full, runs.get(), registered.get(), true);
                    return;
                }
            }
        } else if call.kind == Kind::Panicking {
            let caught = catch(run);
            assert!(caught.is_err() || cached.is_some(), "the initialiser panics on a miss");
            match caught {
                Ok(outcome) => outcome,
                Err(_) => {
                    self.panicked(key, before, was_full, runs.get(), registered.get(), call.nested.is_none());
                    return;
                }
            }
        } else {
            run()
        };
        let checked = call.nested.is_none();
        if let Outcome::ReentryRefused = outcome {
            assert_eq!(runs.get(), 0, "a refused re-entrant call runs no initialiser");
            assert_eq!(self.budget.stats(), before, "and charges nothing");
            return;
        }
        if let Some(cached) = cached {
            let Outcome::Static(found) = outcome else {
                panic!("{key:?} is cached: a hit was expected, not {outcome:?}")
            };
            assert!(core::ptr::eq(found, cached), "{key:?}: a cached key gives the same reference forever");
            assert_eq!(runs.get(), 0, "{key:?}: a hit runs no initialiser");
            assert_eq!(self.budget.stats(), before, "a hit charges nothing");
            self.count(1, 0, 0);
            return;
        }
        assert_eq!(runs.get(), 1, "{key:?}: a miss runs its initialiser once ({call:?})");
        self.count(0, 1, 0);
        let registered = registered.get().expect("the initialiser ran");
        // What a degraded call is compared with: the figures before it, or after its refused state.
        let base = state_refused.get().unwrap_or(before);
        match outcome {
            Outcome::Static(found) => {
                assert!(registered && !self.full.get(), "{key:?} cached by a full cache");
                assert_eq!(found, value, "{key:?}: the value returned is cached");
                assert_eq!(address(found) % align_of::<C::V>(), 0, "misaligned value");
                let entries = self.entries.borrow();
                assert!(entries.values().all(|&(other, _)| !core::ptr::eq(other, found)), "a new reference");
                drop(entries);
                if checked {
                    assert_eq!(self.budget.stats().rejections, before.rejections, "cached without a refusal");
                }
                self.entries.borrow_mut().insert(C::copy_key(key), (found, C::copy_value(value)));
            }
            Outcome::Owned(owned) => {
                assert_eq!(&owned, value, "{key:?}: a degraded value is computed all the same");
                self.degraded(base, None, was_full || !registered, checked);
            }
            Outcome::Refused(owned, error) => {
                assert_eq!(&owned, value, "{key:?}: the refused value comes back");
                self.degraded(base, Some(error), was_full || !registered, checked);
            }
            Outcome::Failed => {
                assert_eq!(call.kind, Kind::GetOrTryInsert(true));
                if checked && before.reserved > 0 {
                    assert_eq!(self.budget.stats(), before, "a failed initialiser charges nothing");
                }
            }
            Outcome::ReentryRefused => unreachable!("handled above"),
        }
        if matches!(call.kind, Kind::GetOrTryInsert(true)) {
            assert_eq!(C::get(&self.cache, key), None, "{key:?}: nothing cached for a failed initialiser");
        }
    }

    /// The budget refused the cache's state on a first miss (seen from inside its initialiser).
    fn refused_state(&self, before: Stats) {
        let after = self.budget.stats();
        assert_eq!(before.reserved, 0, "only a first miss creates the state");
        assert_eq!((after.reserved, after.rejections), (0, before.rejections + 1), "the state was refused");
        self.full.set(true);
    }

    /// The initialiser panicked (deliberately).
    fn panicked(
        &self,
        key: &C::K,
        before: Stats,
        was_full: bool,
        runs: usize,
        registered: Option<bool>,
        checked: bool,
    ) {
        assert_eq!(runs, 1, "{key:?}: the panicking initialiser ran once");
        assert!(registered.is_some());
        self.count(0, 1, 0);
        assert_eq!(C::get(&self.cache, key), None, "{key:?}: nothing cached for a panicking initialiser");
        if checked && (before.reserved > 0 || was_full) {
            assert_eq!(self.budget.stats(), before, "a panicking initialiser charges nothing");
        }
    }

    /// The key's `Hash` or `Eq` panicked (deliberately) somewhere in the call.
    fn trapped(&self, before: Stats, was_full: bool, runs: usize, trap: Trap) {
        let stats = self.cache.stats();
        let (hits, misses, degraded) = self.counts.get();
        assert_eq!((stats.hits, stats.degraded), (hits, degraded), "{trap:?} panicked: no hit or degraded value");
        assert!(runs <= 1 && stats.misses == misses + runs, "{trap:?} panicked: misses counted with the initialiser");
        self.counts.set((hits, misses + runs, degraded));
        let after = self.budget.stats();
        if before.reserved > 0 || was_full {
            assert_eq!(after, before, "{trap:?} panicked: nothing charged");
        } else if self.cache.is_full() {
            self.refused_state(before);
        }
        self.check_entries();
    }

    /// Every cached key still gives its reference, holding its value.
    fn check_entries(&self) {
        for (key, (value, expected)) in self.entries.borrow().iter() {
            assert_eq!(*value, expected, "{key:?} intact");
            assert!(core::ptr::eq(C::get(&self.cache, key).expect("cached"), *value));
        }
    }

    fn apply(&self, call: &Call) {
        self.call(call);
        assert!(self.computing.borrow().is_empty());
        check_figures(self.budget);
        assert_eq!(self.cache.len(), self.entries.borrow().len());
        assert_eq!(self.cache.is_empty(), self.entries.borrow().is_empty());
        assert_eq!(self.cache.is_full(), self.full.get());
        self.check_entries();
        let stats = self.cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.degraded, stats.waits), {
            let (hits, misses, degraded) = self.counts.get();
            (hits, misses, degraded, 0)
        });
    }

    fn run(limit: usize, keys: &[C::K], values: &[C::V], calls: &[Call]) -> Vec<usize> {
        let budget = common::budget("cache", limit);
        let model = Model::<C> {
            budget,
            cache: StaticCache::in_budget(budget),
            keys: keys.iter().map(C::copy_key).collect(),
            values: values.iter().map(C::copy_value).collect(),
            entries: RefCell::new(HashMap::new()),
            full: Cell::new(false),
            refusal: RefCell::new(None),
            counts: Cell::new((0, 0, 0)),
            computing: RefCell::new(Vec::new()),
        };
        let mut reserved = Vec::with_capacity(calls.len());
        for call in calls {
            model.apply(call);
            reserved.push(budget.reserved());
        }
        model.check_entries();
        reserved
    }
}

const PLENTY: usize = 256 << 10;

fn run<C: Case>(input: &mut Input<'_>) {
    let limit = Limit::decode(input, 24 << 10, PLENTY);
    let decode = |input: &mut Input<'_>| -> Option<Pools<C>> {
        let keys = (0..1 + input.below(12)?).map(|_| C::key(input)).collect::<Option<Vec<_>>>()?;
        let values = (0..1 + input.below(8)?).map(|_| C::value(input)).collect::<Option<Vec<_>>>()?;
        Some((keys, values))
    };
    let Some((keys, values)) = decode(input) else { return };
    let mut calls = Vec::new();
    while calls.len() < 64 {
        match Call::decode(input, C::TRAPS, true) {
            Some(call) => calls.push(call),
            None => break,
        }
    }
    let limit = limit.bytes(|| Model::<C>::run(PLENTY, &keys, &values, &calls));
    Model::<C>::run(limit, &keys, &values, &calls);
}

fuzz_target!(|data: &[u8]| {
    common::install_panic_hook();
    let mut input = Input::new(data);
    match input.below(3) {
        Some(0) => run::<Strings>(&mut input),
        Some(1) => run::<Numbers>(&mut input),
        Some(_) => run::<Weirds>(&mut input),
        None => {}
    }
});
