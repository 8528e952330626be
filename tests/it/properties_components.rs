//! Property tests of the components: random operation sequences on `Interner` (of `str`, `[u8]`, `u64` and
//! `[u8; 48]`), `StaticCache` (string keys and values, and integer keys with 128-byte values) and `LeakOnce` (cells of
//! six types sharing one budget), each step checked against a model of what the component promises.
//!
//! Values are drawn from a small pool per case, so that repeats are frequent: short strings over two to four letters,
//! a few longer ones, and runs of 126 to 300 bytes (across the point where an interned string's length takes a second
//! byte). Budgets get small random limits: zero, a few bytes to a few tens of KiB, plenty, or within 64 bytes either
//! side of one of the values `reserved` grew to in a first, unlimited run of the same sequence, so that most sequences
//! run out of room somewhere in the middle.
//!
//! Checked after every step, for every component: `used <= reserved <= limit`; a refusal is `BudgetExceeded`, with the
//! refusing budget's own figures, and changes nothing but the rejection count, with one exception: the state an
//! interner or cache creates on its first call stays charged when the budget then refuses the entry.
//!
//! `PROPTEST_CASES` overrides the number of cases natively (default 2048); under Miri, 8 cases of shorter sequences.

use core::alloc::Layout;
use core::borrow::Borrow;
use core::fmt::Debug;
use core::hash::Hash;
use core::mem::size_of;
use core::ptr;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use leak_budget::{
    Cached, InitError, Internable, Interned, Interner, LeakBudget, LeakError, LeakOnce, Rejected, StaticCache, Stats,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm};

use crate::support::{BUDGET_NAME, budget, proptest_cases, without_rejections};

fn config() -> Config {
    // No regression files: Miri has no file system, and the generators are cheap to re-run from a seed. Under Miri,
    // XorShift rather than ChaCha: proptest seeds a fresh generator for every value it draws, and interpreting ChaCha's
    // rounds took most of the run (about 5 s a case, against milliseconds for the checks themselves).
    let rng_algorithm = if cfg!(miri) { RngAlgorithm::XorShift } else { RngAlgorithm::default() };
    Config { cases: proptest_cases(2048), failure_persistence: None, rng_algorithm, ..Config::default() }
}

/// The limit of a probe run: enough for any sequence drawn here.
const PLENTY: usize = 1 << 20;

/// A budget's limit for one case.
#[derive(Debug, Clone)]
enum Limit {
    Bytes(usize),
    /// One of the values `reserved` grew to during an unlimited run of the same sequence (the `Index`th), plus `i16`
    /// bytes: below it, the step that grew it is refused (the steps before it are not); at or above it, a later one.
    Growth(Index, i16),
}

fn limit(max: usize) -> impl Strategy<Value = Limit> {
    prop_oneof![
        1 => Just(Limit::Bytes(0)),
        1 => (0..256usize).prop_map(Limit::Bytes),
        3 => (0..max).prop_map(Limit::Bytes),
        1 => Just(Limit::Bytes(PLENTY)),
        5 => (any::<Index>(), -64i16..=64).prop_map(|(step, delta)| Limit::Growth(step, delta)),
    ]
}

impl Limit {
    /// The limit in bytes; `probe` runs the sequence on a `PLENTY` budget and returns `reserved` after each step.
    fn bytes(&self, probe: impl FnOnce() -> Vec<usize>) -> usize {
        match *self {
            Limit::Bytes(bytes) => bytes,
            Limit::Growth(step, delta) => {
                let mut grown = probe();
                grown.dedup();
                grown.retain(|&reserved| reserved > 0);
                let reserved = if grown.is_empty() { 0 } else { grown[step.index(grown.len())] };
                reserved.saturating_add_signed(isize::from(delta))
            }
        }
    }
}

/// Strings: mostly short over a tiny alphabet (so equal ones are frequent), some longer, and runs of 126 to 300 bytes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[ab]{0,3}",
        4 => "[a-d]{0,12}",
        2 => "[a-zé€ ]{0,40}",
        2 => (prop::sample::select(&[126usize, 127, 128, 129, 200, 255, 256, 300][..]), "[ab]")
            .prop_map(|(len, letter)| letter.repeat(len)),
    ]
}

/// The values one case draws from.
fn pool() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 1..if cfg!(miri) { 16 } else { 32 })
}

/// The address a reference points to.
fn address<T: ?Sized>(value: &T) -> usize {
    ptr::from_ref(value).cast::<u8>().addr()
}

/// Checks the figures every component must keep.
fn check_figures(budget: &LeakBudget) {
    let stats = budget.stats();
    assert!(stats.used <= budget.reserved(), "{stats}");
    assert!(budget.reserved() <= budget.limit(), "{stats}");
    assert_eq!(budget.remaining(), budget.limit() - budget.reserved());
}

/// Checks that `error` is a refusal for lack of room by this budget, with its figures when it refused (those it has
/// now: a refusal changes nothing).
fn check_refusal_error(budget: &LeakBudget, error: &LeakError) {
    match *error {
        LeakError::BudgetExceeded { budget: name, requested, remaining, limit, value, global } => {
            assert_eq!((name, limit, global), (BUDGET_NAME, budget.limit(), false), "{error}");
            assert!(value <= requested, "{error}");
            assert_eq!(remaining, budget.remaining(), "{error}");
            assert!(requested > remaining, "{error}");
        }
        _ => panic!("only refusals for lack of room are expected: {error}"),
    }
}

/// Checks a refusal made by a call that started with the figures `before`: for lack of room, and nothing changed
/// but the rejection count.
fn check_refusal(budget: &LeakBudget, before: Stats, error: &LeakError) {
    check_refusal_error(budget, error);
    let after = budget.stats();
    assert_eq!(without_rejections(after), without_rejections(before), "a refusal changes nothing");
    assert_eq!(after.rejections, before.rejections + 1, "and counts once");
}

// ---------------------------------------------------------------------------------------------------------------------
// Interner

#[derive(Debug, Clone)]
enum InternOp {
    /// `intern` of the pool's value.
    Intern(Index),
    /// `intern_owned` for sized types; for unsized ones, `intern` of a copy at another address.
    InternCopy(Index),
    Get(Index),
    Snapshot,
}

fn intern_op() -> impl Strategy<Value = InternOp> {
    prop_oneof![
        6 => any::<Index>().prop_map(InternOp::Intern),
        3 => any::<Index>().prop_map(InternOp::InternCopy),
        3 => any::<Index>().prop_map(InternOp::Get),
        1 => Just(InternOp::Snapshot),
    ]
}

/// How a sized type's owned values are interned (`intern_owned`), if the type has that method.
type InternOwned<T, O> = fn(&Interner<T>, O) -> Result<Interned<T>, (O, LeakError)>;

/// One interner on its own budget, and what it should hold: the handle of every value interned so far.
struct InternerModel<T: ?Sized + Internable, O> {
    budget: &'static LeakBudget,
    interner: Interner<T>,
    owned: Option<InternOwned<T, O>>,
    handles: HashMap<O, Interned<T>>,
    /// The address of every value interned, and the value.
    addresses: HashMap<usize, O>,
}

impl<T, O> InternerModel<T, O>
where
    T: ?Sized + Internable + PartialEq + Debug,
    O: Borrow<T> + Hash + Eq + Clone + Debug,
{
    fn new(budget: &'static LeakBudget, owned: Option<InternOwned<T, O>>) -> Self {
        Self {
            budget,
            interner: Interner::in_budget(budget),
            owned,
            handles: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    fn intern(&mut self, value: &O, copy: bool) {
        let before = self.budget.stats();
        let len = self.interner.len();
        let result = match (copy, self.owned) {
            (false, _) => self.interner.intern(value.borrow()).map_err(|error| (None, error)),
            (true, Some(intern_owned)) => {
                intern_owned(&self.interner, value.clone()).map_err(|(back, error)| (Some(back), error))
            }
            (true, None) => {
                let copy = value.clone();
                self.interner.intern(copy.borrow()).map_err(|error| (None, error))
            }
        };
        if let Some(&known) = self.handles.get::<O>(value) {
            let handle = result.expect("a value already interned is never refused");
            assert_eq!(handle, known, "{value:?}: equal values give equal handles");
            assert!(ptr::eq(handle.as_static(), known.as_static()), "{value:?}: and the same reference");
            assert_eq!(self.budget.stats(), before, "{value:?}: interning a value already present charges nothing");
            return;
        }
        match result {
            Ok(handle) => {
                assert_eq!(&*handle, value.borrow(), "the handle holds the value");
                let at = address(handle.as_static());
                if let Some(other) = self.addresses.insert(at, value.clone()) {
                    panic!("{value:?} interned at the address of {other:?}");
                }
                assert!(self.handles.values().all(|&other| other != handle), "{value:?}: a new handle");
                self.handles.insert(value.clone(), handle);
                assert_eq!(self.interner.len(), len + 1);
            }
            Err((back, error)) => {
                if before.reserved == 0 {
                    // The first `intern` creates the interner's state (its hasher and empty table) before it asks for
                    // the entry; when the budget takes the state and refuses the entry, the state stays charged.
                    check_refusal_error(self.budget, &error);
                    assert_eq!(self.budget.stats().rejections, before.rejections + 1, "a refusal counts once");
                } else {
                    check_refusal(self.budget, before, &error);
                }
                if let Some(back) = back {
                    assert_eq!(&back, value, "intern_owned gives the value back");
                }
                assert_eq!(self.interner.len(), len, "a refusal adds nothing");
                assert_eq!(self.interner.get(value.borrow()), None, "{value:?} was refused");
                // Nothing changed, so asking again is refused again, with the same figures.
                let again = self.budget.stats();
                let retry = self.interner.intern(value.borrow()).expect_err("nothing changed, so refused again");
                assert_eq!(retry, error);
                check_refusal(self.budget, again, &retry);
                self.check_handles();
            }
        }
    }

    fn get(&self, value: &O) {
        let before = self.budget.stats();
        let found = self.interner.get(value.borrow());
        assert_eq!(found, self.handles.get::<O>(value).copied(), "get({value:?}) finds exactly what was interned");
        if let Some(found) = found {
            assert_eq!(&*found, value.borrow());
        }
        assert_eq!(self.budget.stats(), before, "get never charges");
    }

    fn snapshot(&self) {
        let before = self.budget.stats();
        let snapshot = self.interner.iter().collect::<Vec<_>>();
        let all: HashSet<Interned<T>> = snapshot.iter().copied().collect();
        assert_eq!(all.len(), snapshot.len(), "no handle twice in the snapshot");
        let expected: HashSet<Interned<T>> = self.handles.values().copied().collect();
        assert_eq!(all, expected, "the snapshot holds every value interned, and nothing else");
        assert_eq!(self.budget.stats(), before, "a snapshot charges nothing");
    }

    /// Every handle still holds its value and is what `get` and `intern` give.
    fn check_handles(&self) {
        for (value, &handle) in &self.handles {
            assert_eq!(handle.as_static(), value.borrow(), "{value:?} intact");
            assert_eq!(self.interner.get(value.borrow()), Some(handle));
        }
    }

    fn apply(&mut self, pool: &[O], op: &InternOp) {
        match op {
            InternOp::Intern(at) => self.intern(&pool[at.index(pool.len())], false),
            InternOp::InternCopy(at) => self.intern(&pool[at.index(pool.len())], true),
            InternOp::Get(at) => self.get(&pool[at.index(pool.len())]),
            InternOp::Snapshot => self.snapshot(),
        }
        check_figures(self.budget);
        assert_eq!(self.interner.len(), self.handles.len(), "len counts the distinct values interned");
    }

    /// Runs `ops` on a budget of `limit` and returns `reserved` after each step.
    fn run(limit: usize, pool: &[O], ops: &[InternOp], owned: Option<InternOwned<T, O>>) -> Vec<usize> {
        let mut model = Self::new(budget(limit), owned);
        let mut reserved = Vec::with_capacity(ops.len());
        for op in ops {
            model.apply(pool, op);
            reserved.push(model.budget.reserved());
        }
        model.snapshot();
        model.check_handles();
        for (value, &handle) in &model.handles {
            let before = model.budget.stats();
            assert_eq!(model.interner.intern(value.borrow()).expect("present"), handle);
            assert_eq!(model.budget.stats(), before);
        }
        reserved
    }

    fn check(limit: &Limit, pool: &[O], ops: &[InternOp], owned: Option<InternOwned<T, O>>) {
        let limit = limit.bytes(|| Self::run(PLENTY, pool, ops, owned));
        Self::run(limit, pool, ops, owned);
    }
}

fn owned<T: Hash + Eq + Clone + 'static>(interner: &Interner<T>, value: T) -> Result<Interned<T>, (T, LeakError)> {
    interner.intern_owned(value).map_err(Rejected::into_parts)
}

/// A 48-byte value derived from a string: equal strings give equal values.
fn array_of(text: &str) -> [u8; 48] {
    let mut array = [0u8; 48];
    for (at, byte) in text.bytes().enumerate() {
        array[at % 48] = array[at % 48].wrapping_mul(31).wrapping_add(byte);
    }
    array[47] = text.len() as u8;
    array
}

/// A `u64` derived from a string; short strings over a tiny alphabet collide often, which is the point.
fn number_of(text: &str) -> u64 {
    text.bytes().fold(text.len() as u64, |hash, byte| hash.wrapping_mul(31).wrapping_add(u64::from(byte)))
}

/// Operations per sequence (fewer under Miri, which checks every byte read and written).
const MAX_OPS: usize = if cfg!(miri) { 32 } else { 64 };

proptest! {
    #![proptest_config(config())]

    #[test]
    fn interned_strings_match_the_model(
        limit in limit(24 << 10), pool in pool(), ops in prop::collection::vec(intern_op(), 1..MAX_OPS),
    ) {
        InternerModel::<str, String>::check(&limit, &pool, &ops, None);
    }

    #[test]
    fn interned_byte_slices_match_the_model(
        limit in limit(24 << 10), pool in pool(), ops in prop::collection::vec(intern_op(), 1..MAX_OPS),
    ) {
        let pool: Vec<Vec<u8>> = pool.into_iter().map(String::into_bytes).collect();
        InternerModel::<[u8], Vec<u8>>::check(&limit, &pool, &ops, None);
    }

    #[test]
    fn interned_numbers_match_the_model(
        limit in limit(16 << 10), pool in pool(), ops in prop::collection::vec(intern_op(), 1..MAX_OPS),
    ) {
        let pool: Vec<u64> = pool.iter().map(|text| number_of(text)).collect();
        InternerModel::<u64, u64>::check(&limit, &pool, &ops, Some(owned));
    }

    #[test]
    fn interned_arrays_match_the_model(
        limit in limit(16 << 10), pool in pool(), ops in prop::collection::vec(intern_op(), 1..MAX_OPS),
    ) {
        let pool: Vec<[u8; 48]> = pool.iter().map(|text| array_of(text)).collect();
        InternerModel::<[u8; 48], [u8; 48]>::check(&limit, &pool, &ops, Some(owned));
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// StaticCache

#[derive(Debug, Clone)]
enum CacheOp {
    GetOrInsert(Index),
    TryGetOrInsert(Index),
    /// `get_or_try_insert_with` whose initialiser fails if the flag is set.
    GetOrTryInsert(Index, bool),
    Get(Index),
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        4 => any::<Index>().prop_map(CacheOp::GetOrInsert),
        2 => any::<Index>().prop_map(CacheOp::TryGetOrInsert),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(at, fail)| CacheOp::GetOrTryInsert(at, fail)),
        2 => any::<Index>().prop_map(CacheOp::Get),
    ]
}

/// What a call that may compute a value gave.
enum Outcome<V: 'static> {
    Static(&'static V),
    Owned(V),
    Refused(Rejected<V>),
    Failed(&'static str),
}

const INIT_FAILED: &str = "the initialiser failed";

/// One cache on its own budget, and what it should hold and have counted.
struct CacheModel<K: 'static, V: 'static> {
    budget: &'static LeakBudget,
    cache: StaticCache<K, V>,
    value_of: fn(&K) -> V,
    entries: HashMap<K, &'static V>,
    /// Whether the budget has refused the cache something.
    full: bool,
    /// The refusal that made the cache full, once a call has reported it.
    refusal: Option<LeakError>,
    /// (hits, misses, degraded)
    counts: (usize, usize, usize),
}

impl<K, V> CacheModel<K, V>
where
    K: Hash + Eq + Clone + Debug + 'static,
    V: PartialEq + Debug + 'static,
{
    fn new(budget: &'static LeakBudget, value_of: fn(&K) -> V) -> Self {
        Self {
            budget,
            cache: StaticCache::in_budget(budget),
            value_of,
            entries: HashMap::new(),
            full: false,
            refusal: None,
            counts: (0, 0, 0),
        }
    }

    fn call(&mut self, key: &K, op: &CacheOp) {
        let before = self.budget.stats();
        let calls = Cell::new(0);
        let compute = |k: &K| {
            calls.set(calls.get() + 1);
            assert_eq!(k, key, "the initialiser gets the key");
            (self.value_of)(k)
        };
        let failing = matches!(op, CacheOp::GetOrTryInsert(_, true));
        let outcome = match op {
            CacheOp::GetOrInsert(_) => match self.cache.get_or_insert_with(key, compute) {
                Cached::Static(value) => Outcome::Static(value),
                Cached::Owned(value) => Outcome::Owned(value),
            },
            CacheOp::TryGetOrInsert(_) => match self.cache.try_get_or_insert_with(key, compute) {
                Ok(value) => Outcome::Static(value),
                Err(rejected) => Outcome::Refused(rejected),
            },
            CacheOp::GetOrTryInsert(_, fail) => {
                let result = self.cache.get_or_try_insert_with(key, |k| {
                    if *fail {
                        calls.set(calls.get() + 1);
                        Err(INIT_FAILED)
                    } else {
                        Ok(compute(k))
                    }
                });
                match result {
                    Ok(Cached::Static(value)) => Outcome::Static(value),
                    Ok(Cached::Owned(value)) => Outcome::Owned(value),
                    Err(error) => Outcome::Failed(error),
                }
            }
            CacheOp::Get(_) => unreachable!("not a call that computes"),
        };
        if let Some(&cached) = self.entries.get(key) {
            let Outcome::Static(value) = outcome else { panic!("{key:?} is cached: a hit was expected") };
            assert!(ptr::eq(value, cached), "{key:?}: a cached key gives the same reference forever");
            assert_eq!(calls.get(), 0, "{key:?}: a hit runs no initialiser");
            assert_eq!(self.budget.stats(), before, "a hit charges nothing");
            self.counts.0 += 1;
            return;
        }
        self.counts.1 += 1;
        assert_eq!(calls.get(), 1, "{key:?}: a miss runs its initialiser once");
        let expected = (self.value_of)(key);
        match outcome {
            Outcome::Static(value) => {
                assert!(!self.full, "{key:?} cached by a full cache");
                assert!(!failing, "{key:?}: a failed initialiser gave a value");
                assert_eq!(*value, expected);
                assert!(self.entries.values().all(|&other| !ptr::eq(other, value)), "{key:?}: a new reference");
                self.entries.insert(key.clone(), value);
            }
            Outcome::Owned(value) => {
                assert!(!failing, "{key:?}: a failed initialiser gave a value");
                assert_eq!(value, expected, "{key:?}: a degraded value is computed all the same");
                self.degraded(before, None);
            }
            Outcome::Refused(rejected) => {
                let (value, error) = rejected.into_parts();
                assert_eq!(value, expected, "{key:?}: the refused value comes back");
                self.degraded(before, Some(error));
            }
            Outcome::Failed(error) => {
                assert!(failing && error == INIT_FAILED, "{key:?}: {error}");
                let after = self.budget.stats();
                if before.reserved > 0 || self.full {
                    assert_eq!(after, before, "a failed initialiser charges nothing");
                } else if self.cache.is_full() {
                    // A first miss creates the cache's state before it runs the initialiser: the budget refused it.
                    assert_eq!((after.reserved, after.rejections), (0, before.rejections + 1));
                    self.full = true;
                } else {
                    assert_eq!(after.rejections, before.rejections, "the cache's state was created");
                }
            }
        }
        if failing {
            assert_eq!(self.cache.get(key), None, "{key:?}: nothing cached for a failed initialiser");
        }
    }

    /// A value handed back uncached; `error` is the refusal reported with it, if the call reports one.
    fn degraded(&mut self, before: Stats, error: Option<LeakError>) {
        self.counts.2 += 1;
        let after = self.budget.stats();
        if self.full {
            assert_eq!(after, before, "a full cache does not ask the budget again");
        } else {
            // This call was refused, and the cache is full from now on.
            assert_eq!(after.rejections, before.rejections + 1, "a refusal counts once");
            if before.reserved > 0 {
                assert_eq!(without_rejections(after), without_rejections(before), "a refusal changes nothing");
            }
            // Otherwise the budget had nothing: it refused the cache's state, or took it and refused the entry.
            self.full = true;
        }
        if let Some(error) = error {
            match &self.refusal {
                Some(first) => assert_eq!(&error, first, "the refusal reported is the one that made the cache full"),
                None => {
                    check_refusal_error(self.budget, &error);
                    self.refusal = Some(error);
                }
            }
        }
    }

    fn apply(&mut self, pool: &[K], op: &CacheOp) {
        let key = match op {
            CacheOp::GetOrInsert(at)
            | CacheOp::TryGetOrInsert(at)
            | CacheOp::GetOrTryInsert(at, _)
            | CacheOp::Get(at) => &pool[at.index(pool.len())],
        };
        if let CacheOp::Get(_) = op {
            let (before, stats) = (self.budget.stats(), self.cache.stats());
            let found = self.cache.get(key);
            assert_eq!(found.map(address), self.entries.get(key).map(|&value| address(value)), "get({key:?})");
            assert_eq!((self.budget.stats(), self.cache.stats()), (before, stats), "get charges and counts nothing");
        } else {
            self.call(key, op);
        }
        check_figures(self.budget);
        assert_eq!(self.cache.len(), self.entries.len());
        assert_eq!(self.cache.is_full(), self.full);
        let stats = self.cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.degraded, stats.waits), counts_and_no_waits(self.counts), "{op:?}");
    }

    fn run(limit: usize, pool: &[K], ops: &[CacheOp], value_of: fn(&K) -> V) -> Vec<usize> {
        let mut model = Self::new(budget(limit), value_of);
        let mut reserved = Vec::with_capacity(ops.len());
        for op in ops {
            model.apply(pool, op);
            reserved.push(model.budget.reserved());
        }
        for (key, &value) in &model.entries {
            assert_eq!(*value, value_of(key), "{key:?} intact");
            assert!(ptr::eq(model.cache.get(key).expect("cached"), value));
        }
        reserved
    }

    fn check(limit: &Limit, pool: &[K], ops: &[CacheOp], value_of: fn(&K) -> V) {
        let limit = limit.bytes(|| Self::run(PLENTY, pool, ops, value_of));
        Self::run(limit, pool, ops, value_of);
    }
}

fn counts_and_no_waits((hits, misses, degraded): (usize, usize, usize)) -> (usize, usize, usize, usize) {
    (hits, misses, degraded, 0)
}

fn describe(key: &String) -> String {
    format!("{}:{key}", key.len())
}

fn block_of(key: &u16) -> [u64; 16] {
    core::array::from_fn(|at| u64::from(*key).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(at as u32))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cached_strings_match_the_model(
        limit in limit(32 << 10), pool in pool(), ops in prop::collection::vec(cache_op(), 1..MAX_OPS),
    ) {
        CacheModel::<String, String>::check(&limit, &pool, &ops, describe);
    }

    #[test]
    fn cached_blocks_match_the_model(
        limit in limit(32 << 10),
        pool in prop::collection::vec(0..64u16, 1..24),
        ops in prop::collection::vec(cache_op(), 1..MAX_OPS),
    ) {
        CacheModel::<u16, [u64; 16]>::check(&limit, &pool, &ops, block_of);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// LeakOnce

#[derive(Debug, Clone, Copy)]
enum OnceKind {
    Set,
    GetOrInit,
    /// `get_or_try_init` whose initialiser fails if the flag is set.
    GetOrTryInit(bool),
    Get,
}

/// A call on one of the cells, with the seed of the value it offers.
#[derive(Debug, Clone)]
struct OnceOp {
    cell: Index,
    kind: OnceKind,
    seed: u8,
}

fn once_op() -> impl Strategy<Value = OnceOp> {
    let kind = prop_oneof![
        2 => Just(OnceKind::Set),
        2 => Just(OnceKind::GetOrInit),
        2 => any::<bool>().prop_map(OnceKind::GetOrTryInit),
        1 => Just(OnceKind::Get),
    ];
    (any::<Index>(), kind, any::<u8>()).prop_map(|(cell, kind, seed)| OnceOp { cell, kind, seed })
}

/// Values built from a seed, different for different seeds.
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

impl FromSeed for u64 {
    fn from_seed(seed: u8) -> Self {
        u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

impl FromSeed for String {
    fn from_seed(seed: u8) -> Self {
        "ab".repeat(usize::from(seed))
    }
}

impl<const N: usize> FromSeed for [u64; N] {
    fn from_seed(seed: u8) -> Self {
        core::array::from_fn(|at| u64::from(seed) << (at % 56))
    }
}

impl<const N: usize> FromSeed for [u8; N] {
    fn from_seed(seed: u8) -> Self {
        core::array::from_fn(|at| seed.wrapping_add(at as u8))
    }
}

/// A cell and what it should hold; dynamic so that cells of several types share a sequence.
trait OnceModel {
    fn apply(&mut self, budget: &LeakBudget, kind: OnceKind, seed: u8);
    /// The published value's address and size, after checking it is intact.
    fn check(&self) -> Option<(usize, usize)>;
}

struct CellModel<T: 'static> {
    cell: LeakOnce<T>,
    /// The published value and the seed it was built from.
    published: Option<(&'static T, u8)>,
}

impl<T: FromSeed> CellModel<T> {
    fn boxed(budget: &'static LeakBudget) -> Box<dyn OnceModel> {
        Box::new(Self { cell: LeakOnce::in_budget(budget), published: None })
    }
}

/// What a call on a cell gave.
enum OnceOutcome<T: 'static> {
    Value(&'static T),
    Refused(Rejected<T>),
    Failed(&'static str),
    Empty,
}

impl<T: FromSeed> OnceModel for CellModel<T> {
    fn apply(&mut self, budget: &LeakBudget, kind: OnceKind, seed: u8) {
        let before = budget.stats();
        let calls = Cell::new(0);
        let init = || {
            calls.set(calls.get() + 1);
            T::from_seed(seed)
        };
        let outcome = match kind {
            OnceKind::Set => self.cell.set(T::from_seed(seed)).map_or_else(OnceOutcome::Refused, OnceOutcome::Value),
            OnceKind::GetOrInit => self.cell.get_or_init(init).map_or_else(OnceOutcome::Refused, OnceOutcome::Value),
            OnceKind::GetOrTryInit(fail) => {
                match self.cell.get_or_try_init(|| if fail { Err(INIT_FAILED) } else { Ok(init()) }) {
                    Ok(value) => OnceOutcome::Value(value),
                    Err(InitError::Leak(rejected)) => OnceOutcome::Refused(rejected),
                    Err(InitError::Init(error)) => OnceOutcome::Failed(error),
                }
            }
            OnceKind::Get => self.cell.get().map_or(OnceOutcome::Empty, OnceOutcome::Value),
        };
        if let Some((published, _)) = self.published {
            match outcome {
                OnceOutcome::Value(value) => {
                    assert!(ptr::eq(value, published), "{kind:?}: every call sees the one published value");
                    assert!(!matches!(kind, OnceKind::Set), "set on a full cell succeeded");
                }
                OnceOutcome::Refused(rejected) => {
                    assert!(matches!(kind, OnceKind::Set), "{kind:?} refused on a full cell");
                    assert_eq!(rejected.error(), &LeakError::AlreadySet);
                    assert_eq!(rejected.into_inner(), T::from_seed(seed), "set gives its value back");
                }
                OnceOutcome::Failed(_) | OnceOutcome::Empty => panic!("{kind:?} on a full cell gave no value"),
            }
            assert_eq!(calls.get(), 0, "{kind:?}: no initialiser runs once a value is published");
            assert_eq!(budget.stats(), before, "{kind:?}: nothing is charged once a value is published");
            return;
        }
        let offered = matches!(kind, OnceKind::Set | OnceKind::GetOrInit | OnceKind::GetOrTryInit(false));
        if matches!(kind, OnceKind::GetOrInit | OnceKind::GetOrTryInit(false)) {
            assert_eq!(calls.get(), 1, "{kind:?}: an empty cell runs the initialiser once");
        }
        // What a value of `T` may need: the documented bound, plus the budget's record on its first request.
        let bound = LeakBudget::max_charge_for(Layout::new::<T>())
            + if before.reserved == 0 && size_of::<T>() > 0 { LeakBudget::RECORD_BYTES } else { 0 };
        match outcome {
            OnceOutcome::Value(value) => {
                assert!(offered, "{kind:?} published a value");
                assert_eq!(*value, T::from_seed(seed), "{kind:?}: the value offered is published");
                assert_eq!(self.cell.get().map(address), Some(address(value)));
                self.published = Some((value, seed));
            }
            OnceOutcome::Refused(rejected) => {
                assert!(offered, "{kind:?} refused");
                let (value, error) = rejected.into_parts();
                assert_eq!(value, T::from_seed(seed), "{kind:?}: a refusal gives the value back");
                check_refusal(budget, before, &error);
                assert!(
                    before.limit - before.reserved < bound,
                    "{kind:?} refused with room for {bound} bytes: {error}"
                );
                assert_eq!(self.cell.get(), None, "{kind:?}: refused, so the cell stays empty");
            }
            OnceOutcome::Failed(error) => {
                assert!(matches!(kind, OnceKind::GetOrTryInit(true)), "{kind:?}: {error}");
                assert_eq!(budget.stats(), before, "a failed initialiser charges nothing");
                assert_eq!(self.cell.get(), None);
            }
            OnceOutcome::Empty => {
                assert!(matches!(kind, OnceKind::Get));
                assert_eq!(budget.stats(), before, "get charges nothing");
            }
        }
    }

    fn check(&self) -> Option<(usize, usize)> {
        let (value, seed) = self.published?;
        assert_eq!(*value, T::from_seed(seed), "published value intact");
        assert!(ptr::eq(self.cell.get().expect("published"), value));
        Some((address(value), size_of::<T>()))
    }
}

/// Runs `ops` on cells of six types sharing a budget of `limit` and returns `reserved` after each step.
fn run_cells(limit: usize, ops: &[OnceOp]) -> Vec<usize> {
    let budget = budget(limit);
    let mut cells = [
        CellModel::<()>::boxed(budget),
        CellModel::<u8>::boxed(budget),
        CellModel::<u64>::boxed(budget),
        CellModel::<String>::boxed(budget),
        CellModel::<[u64; 40]>::boxed(budget),
        CellModel::<[u8; 3000]>::boxed(budget),
    ];
    let mut reserved = Vec::with_capacity(ops.len());
    for op in ops {
        let len = cells.len();
        cells[op.cell.index(len)].apply(budget, op.kind, op.seed);
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

proptest! {
    #![proptest_config(config())]

    #[test]
    fn once_cells_match_the_model(limit in limit(12 << 10), ops in prop::collection::vec(once_op(), 1..32)) {
        let limit = limit.bytes(|| run_cells(PLENTY, &ops));
        run_cells(limit, &ops);
    }
}
