//! [`StaticCache<K, V>`]: a bounded memo cache of `&'static V` that degrades instead of failing; [`Cached`] and
//! [`CacheStats`].
//!
//! # Design
//! A cached key and its value live together in one *entry* (`hash`, `key`, `value`), leaked into the cache's budget
//! by the thread that computed the value, then published in the [table](crate::table) and never changed, moved or
//! dropped again. The table holds nothing else: an entry exists only once its value does, so a hit is one lock-free
//! [`TypedTable::find`] (whose hit is confirmed by comparing the stored hash, then the key) and nothing more.
//!
//! Keys *being computed* are not in the table. Each thread that runs an initialiser links a [`Pending`] record (the
//! key's hash and the thread's identity) into one of [`WAIT_STRIPES`] lists, picked by the hash, each with its own
//! lock and condition variable. A thread that misses locks the key's stripe and, under that lock, looks in the table
//! again ([`TypedTable::find_locked`], which is exact) and then in the list: if another thread is computing a key with
//! the same hash it waits on the stripe's condition variable and looks again when woken; otherwise it links its own
//! record, unlocks, runs `f` with no lock held, inserts the entry, and only then unlinks its record and wakes the
//! stripe's waiters, who find the entry. So `f` runs at most once at a time per key, keys compare only by hash while
//! waiting (two different keys with equal 64-bit hashes under a randomly seeded hasher merely take turns), and the
//! records live on the computing threads' stacks: in-flight bookkeeping allocates nothing. If `f` panics or returns
//! an error, a guard unlinks the record and wakes the waiters during unwinding; one of them then runs its own `f`.
//!
//! # Degrading
//! The first refusal from the budget (of the state, or of an entry with the table growth it needs) is recorded and
//! makes the cache *full*: from then on a miss hands its value back uncached ([`Cached::Owned`]) without asking the
//! budget again, hits keep working, and waiters (and concurrent misses of one key) compute their own values. A refusal
//! changes nothing ([`TypedTable::find_or_insert`] checks the room first) but the budget's rejection count; the one
//! charge it can leave is the state, set up once by the first miss.
//!
//! # Memory orderings
//! Entries are written before the table publishes them (`Release`) and read after it hands them out (`Acquire`), so
//! a hit sees a fully written, immutable entry. Pending lists are only touched under their stripe's lock, which
//! also orders an entry's insertion before the wake-up of the threads that waited for it. `full` is set with
//! `Release` after the refusal is stored under its lock. The counters are `Relaxed`: they are statistics.

use core::alloc::Layout;
use core::borrow::Borrow;
use core::convert::Infallible;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::panic::{RefUnwindSafe, UnwindSafe};
use core::ptr::NonNull;

use crate::budget::LeakBudget;
use crate::error::{LeakError, Rejected};
use crate::hash::{HashState as RandomState, hash_state};
use crate::lazy::LazyState;
use crate::marker::StoresShared;
use crate::sync::{
    AtomicBool, AtomicUsize, CachePadded, Mutex,
    Ordering::{Acquire, Relaxed, Release},
    UserCode, loom_const_fn, thread_token,
};
use crate::table::{EntryKind, EntryRef, Insert, TypedTable};

mod cached;
mod pending;

pub use cached::{CacheStats, Cached};
use pending::{Pending, Registration, Stripe};

/// Hit counters: `1 << HIT_BITS`, one per cache-line pair, a thread counting in the one its identity hashes to.
/// (One under loom, where the models have two or three threads and count nothing concurrently that matters.)
#[cfg(not(loom))]
const HIT_BITS: u32 = 4;
#[cfg(loom)]
const HIT_BITS: u32 = 0;
/// Pending lists, each with a lock and a condition variable: `1 << WAIT_BITS`, picked by a key's hash.
#[cfg(not(loom))]
const WAIT_BITS: u32 = 4;
#[cfg(loom)]
const WAIT_BITS: u32 = 0;
const WAIT_STRIPES: usize = 1 << WAIT_BITS;

/// The top `bits` bits of `value` (0 when `bits` is 0), as an index.
fn top_bits(value: u64, bits: u32) -> usize {
    value.checked_shr(64 - bits).unwrap_or(0) as usize
}

/// A cached key and its value, leaked into the budget by the thread that computed the value, published by the
/// table, and never changed, moved or dropped after that.
#[repr(C)]
struct Entry<K, V> {
    /// The key's hash under the cache's hasher, so that the table can split a bucket without running user code.
    hash: u64,
    key: K,
    value: V,
}

impl<K, V> Entry<K, V> {
    /// Whether this entry is for `key`, whose hash is `hash`: the stored hash first, so that the user's `Eq` runs
    /// only on a (64-bit) hash match.
    #[inline(always)]
    fn matches<Q: ?Sized + Eq>(&self, hash: u64, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.hash == hash && self.key.borrow() == key
    }
}

impl<K: 'static, V: 'static> EntryKind for Entry<K, V> {
    type Head = Self;
}

// SAFETY: `make` returns an `Entry<K, V>` leaked with `LeakBudget::leak`: fully written, never freed, and never written
// again (the `&'static mut` is turned into a pointer, covering the whole entry, and not kept).
unsafe impl<K: Eq + 'static, V: 'static> Insert<Entry<K, V>> for Entry<K, V> {
    fn matches(&self, entry: EntryRef<Self>) -> bool {
        entry.get().matches(self.hash, &self.key)
    }

    /// The stored hash: runs no user code, so it cannot panic.
    fn rehash(&self, entry: EntryRef<Self>) -> u64 {
        entry.get().hash
    }

    fn layout(&self) -> Layout {
        Layout::new::<Self>()
    }

    fn make(self, budget: &LeakBudget) -> Result<NonNull<Self>, Rejected<Self>> {
        budget.leak(self).map(NonNull::from)
    }
}

/// Per-call tallies, kept off the hit path.
#[derive(Debug)]
struct Counts {
    /// Calls that ran their initialiser.
    misses: AtomicUsize,
    /// Misses whose value was handed back uncached.
    degraded: AtomicUsize,
    /// Calls that waited for another thread computing the same key.
    waits: AtomicUsize,
}

impl Counts {
    loom_const_fn! {
        fn new() -> Self {
            Self { misses: AtomicUsize::new(0), degraded: AtomicUsize::new(0), waits: AtomicUsize::new(0) }
        }
    }
}

/// What a cache keeps in its budget, created on its first miss.
struct State<K, V> {
    /// The budget everything is charged to. Immutable.
    budget: &'static LeakBudget,
    /// Hashes keys; randomly seeded per cache.
    hasher: RandomState,
    /// The cached entries, each leaked into `budget`.
    table: TypedTable<Entry<K, V>>,
    /// Hits, striped by thread so that threads hitting the same key write different cache lines.
    hits: [CachePadded<AtomicUsize>; 1 << HIT_BITS],
    counts: CachePadded<Counts>,
    stripes: [Stripe<K>; WAIT_STRIPES],
}

impl<K: 'static, V: 'static> State<K, V> {
    fn new(budget: &'static LeakBudget) -> Result<Self, LeakError> {
        Ok(Self {
            budget,
            hasher: hash_state(),
            table: TypedTable::new(budget)?,
            hits: core::array::from_fn(|_| CachePadded::new(AtomicUsize::new(0))),
            counts: CachePadded::new(Counts::new()),
            stripes: core::array::from_fn(|_| Stripe::new()),
        })
    }

    #[inline(always)]
    fn count_hit(&self) {
        let stripe = top_bits((thread_token() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), HIT_BITS);
        self.hits[stripe].fetch_add(1, Relaxed);
    }

    fn stripe(&self, hash: u64) -> &Stripe<K> {
        &self.stripes[top_bits(hash, WAIT_BITS)]
    }
}

/// A thread-safe memo cache that hands out `&'static V`, stores keys, values and its own table in a [`LeakBudget`],
/// and, once that budget is exhausted, keeps answering with uncached values instead of failing.
///
/// - **Plain references.** A cached value is a `&'static V`: no `Arc`, no guard, no lifetime tied to the cache; it
///   can be sent to any thread (when `V: Sync`). Values and keys are **never dropped**: they are leaked, which is what
///   makes the references `'static`.
/// - **Bounded.** Each cached key costs one entry in the budget (its hash, the key and the value, inline) plus its
///   share of the table; the cache's bookkeeping (a few KiB) is charged on the first miss. Memory that keys or values
///   own on the heap (a `String`'s buffer) is allocated as usual and *not* charged: for a hard bound, use inline types,
///   or keys and values that themselves live in a budget (`&'static str` from [`LeakBudget::leak_str`], say).
/// - **Degrades, never fails.** Once the budget refuses the cache, [`get_or_insert_with`] returns the value it
///   computed as [`Cached::Owned`] and never asks the budget again; hits keep working. [`try_get_or_insert_with`]
///   reports the refusal instead.
/// - **At most once per key.** When threads miss the same key at once, one runs the initialiser and the others wait
///   for its value; other keys proceed meanwhile. A panicking (or failing) initialiser caches nothing and wakes the
///   waiters; a later call retries.
/// - **Fast hits.** A hit hashes the key, looks it up without a lock and bumps a per-thread-striped counter.
///
/// # Examples
///
/// ```
/// use leak_budget::{Cached, LeakBudget, StaticCache};
///
/// static BUDGET: LeakBudget = LeakBudget::named("paths", 1 << 20);
/// static CANONICAL: StaticCache<String, String> = StaticCache::in_budget(&BUDGET);
///
/// fn canonical(path: &str) -> Cached<String> {
///     CANONICAL.get_or_insert_with(path, |path| {
///         path.split('/').filter(|part| !part.is_empty() && *part != ".").collect::<Vec<_>>().join("/")
///     })
/// }
///
/// assert_eq!(*canonical("./src//lib.rs"), "src/lib.rs");
/// let shared: &'static String = canonical("./src//lib.rs").as_static().expect("the budget has room");
/// std::thread::spawn(move || assert_eq!(shared, "src/lib.rs")).join().unwrap();
/// let stats = CANONICAL.stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// ```
///
/// A cache whose values are not `Sync` cannot be shared between threads:
///
/// ```compile_fail
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use std::cell::Cell;
/// use leak_budget::StaticCache;
///
/// static COUNTERS: StaticCache<u32, Cell<u32>> = StaticCache::new(); // `Cell<u32>` is not `Sync`
/// ```
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use leak_budget::StaticCache;
///
/// static COUNTERS: StaticCache<u32, AtomicU32> = StaticCache::new();
/// std::thread::spawn(|| COUNTERS.get_or_insert_with(&1, |_| AtomicU32::new(0)).fetch_add(1, Ordering::Relaxed))
///     .join()
///     .unwrap();
/// assert_eq!(COUNTERS.get(&1).unwrap().load(Ordering::Relaxed), 1);
/// ```
///
/// Such a cache still works on one thread, but the `&'static` values it hands out cannot cross to another:
///
/// ```compile_fail
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use std::cell::Cell;
/// use leak_budget::{LeakBudget, StaticCache};
///
/// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
/// let counters: StaticCache<u32, Cell<u32>> = StaticCache::in_budget(&BUDGET);
/// let counter: &'static Cell<u32> = counters.get_or_insert_with(&1, |_| Cell::new(0)).as_static().unwrap();
/// std::thread::spawn(move || counter.set(1)); // `Cell<u32>` is not `Sync`
/// ```
///
/// ```
/// use std::cell::Cell;
/// use leak_budget::{LeakBudget, StaticCache};
///
/// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
/// let counters: StaticCache<u32, Cell<u32>> = StaticCache::in_budget(&BUDGET);
/// let counter: &'static Cell<u32> = counters.get_or_insert_with(&1, |_| Cell::new(0)).as_static().unwrap();
/// counter.set(1);
/// assert_eq!(counters.get(&1).map(Cell::get), Some(1));
/// ```
///
/// [`get_or_insert_with`]: Self::get_or_insert_with
/// [`try_get_or_insert_with`]: Self::try_get_or_insert_with
pub struct StaticCache<K: 'static, V: 'static> {
    /// The budget, and the cache's state in it, created by the first miss.
    state: LazyState<State<K, V>>,
    /// Set, never cleared, once the budget has refused the cache something (the refusal is in `refusal` first):
    /// from then on misses are not stored and the budget is not asked again.
    full: AtomicBool,
    /// The budget's first refusal, reported by [`try_get_or_insert_with`](Self::try_get_or_insert_with).
    refusal: Mutex<Option<LeakError>>,
    /// Misses while the cache has no state (the budget refused it).
    stateless: Counts,
    /// Invariant in `K` and `V`, and `Send`/`Sync` exactly when `K: Sync` and `V: Sync`: see [`StoresShared`] for
    /// why both are right. Values are handed out as `&'static V` to whichever thread calls; keys are compared
    /// (through `&K`) by every thread that looks one up and are handed to initialisers as `&K`; a key or value moved
    /// in by one thread is never moved or dropped again, so neither needs `Send`. The initialiser runs on the calling
    /// thread: it need not be `Send`.
    types: StoresShared<(K, V)>,
}

impl<K: 'static, V: 'static> StaticCache<K, V> {
    loom_const_fn! {
        /// An empty cache charging the [global budget](LeakBudget::global). Allocates nothing until its first miss.
        ///
        /// # Examples
        ///
        /// ```
        /// static LENGTHS: leak_budget::StaticCache<String, usize> = leak_budget::StaticCache::new();
        /// assert_eq!(*LENGTHS.get_or_insert_with("four", str::len), 4);
        /// ```
        #[must_use]
        pub fn new() -> Self {
            Self::build(None)
        }
    }

    loom_const_fn! {
        /// An empty cache charging `budget`. Allocates nothing until its first miss.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::{LeakBudget, StaticCache};
        ///
        /// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
        /// static DOUBLED: StaticCache<u64, u64> = StaticCache::in_budget(&BUDGET);
        /// assert_eq!(BUDGET.reserved(), 0);
        /// DOUBLED.get_or_insert_with(&21, |n| n * 2);
        /// assert!(BUDGET.reserved() > 0);
        /// ```
        #[must_use]
        pub fn in_budget(budget: &'static LeakBudget) -> Self {
            Self::build(Some(budget))
        }
    }

    loom_const_fn! {
        fn build(budget: Option<&'static LeakBudget>) -> Self {
            Self {
                state: LazyState::new(budget),
                full: AtomicBool::new(false),
                refusal: Mutex::new(None),
                stateless: Counts::new(),
                types: PhantomData,
            }
        }
    }

    /// The budget this cache charges, or `None` for the global budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, StaticCache};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::named("memo", 64 << 10);
    /// static MEMO: StaticCache<u8, u8> = StaticCache::in_budget(&BUDGET);
    /// assert_eq!(MEMO.budget().map(LeakBudget::name), Some("memo"));
    /// ```
    #[must_use]
    pub fn budget(&self) -> Option<&'static LeakBudget> {
        self.state.budget()
    }

    /// Values cached so far.
    ///
    /// # Examples
    ///
    /// ```
    /// static MEMO: leak_budget::StaticCache<u8, u8> = leak_budget::StaticCache::new();
    /// MEMO.get_or_insert_with(&1, |&k| k);
    /// MEMO.get_or_insert_with(&1, |&k| k);
    /// MEMO.get_or_insert_with(&2, |&k| k);
    /// assert_eq!(MEMO.len(), 2);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.state.get().map_or(0, |state| state.table.len())
    }

    /// Whether nothing is cached.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leak_budget::StaticCache::<u8, u8>::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the budget has refused the cache: from then on misses are computed but not cached, and the budget is
    /// not asked again. Never goes back to `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, StaticCache};
    ///
    /// static NOTHING: LeakBudget = LeakBudget::new(0);
    /// static MEMO: StaticCache<u8, u8> = StaticCache::in_budget(&NOTHING);
    /// assert!(!MEMO.is_full());
    /// assert!(!MEMO.get_or_insert_with(&1, |&k| k).is_static());
    /// assert!(MEMO.is_full());
    /// ```
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.full.load(Acquire)
    }

    /// Hits, misses, degraded misses and waits so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, StaticCache};
    ///
    /// static NOTHING: LeakBudget = LeakBudget::new(0);
    /// static MEMO: StaticCache<u8, u8> = StaticCache::in_budget(&NOTHING);
    /// MEMO.get_or_insert_with(&1, |&k| k);
    /// let stats = MEMO.stats();
    /// assert_eq!((stats.hits, stats.misses, stats.degraded), (0, 1, 1));
    /// ```
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let read = |counts: &Counts| CacheStats {
            hits: 0,
            misses: counts.misses.load(Relaxed),
            degraded: counts.degraded.load(Relaxed),
            waits: counts.waits.load(Relaxed),
        };
        let mut stats = read(&self.stateless);
        if let Some(state) = self.state.get() {
            let counted = read(&state.counts);
            stats.hits = state.hits.iter().map(|hits| hits.load(Relaxed)).fold(0, usize::wrapping_add);
            stats.misses = stats.misses.wrapping_add(counted.misses);
            stats.degraded = stats.degraded.wrapping_add(counted.degraded);
            stats.waits = stats.waits.wrapping_add(counted.waits);
        }
        stats
    }

    /// Creates the state on the first miss, or refuses (then the caller marks the cache full).
    #[cold]
    #[track_caller]
    fn create_state(&self) -> Result<&'static State<K, V>, LeakError> {
        // If another thread was refused while this one waited for the creation lock, do not ask again.
        self.state.get_or_create(
            || self.is_full().then(|| self.refusal()),
            TypedTable::<Entry<K, V>>::charge_bound,
            State::new,
        )
    }

    /// Records the budget's refusal (the first one is kept) and marks the cache full.
    #[cold]
    fn refused(&self, error: LeakError) {
        let mut refusal = self.refusal.lock();
        if refusal.is_none() {
            *refusal = Some(error);
        }
        self.full.store(true, Release);
    }

    /// The refusal that made the cache full.
    fn refusal(&self) -> LeakError {
        self.refusal.lock().clone().expect("the refusal is recorded before the cache is marked full")
    }
}

impl<K: Hash + Eq + 'static, V: 'static> StaticCache<K, V> {
    /// Describes the user code (`K`'s `Eq`) the cache runs under its locks.
    fn user_code() -> UserCode {
        UserCode { container: "StaticCache", type_name: core::any::type_name::<K>(), what: "Eq" }
    }

    /// The cached value for `key`, if there is one. Never allocates, never runs an initialiser, never waits for one
    /// (a key being computed is not cached yet), and is not counted in [`stats`](Self::stats).
    ///
    /// # Examples
    ///
    /// ```
    /// static NAMES: leak_budget::StaticCache<String, usize> = leak_budget::StaticCache::new();
    /// NAMES.get_or_insert_with("alpha", str::len);
    /// assert_eq!(NAMES.get("alpha"), Some(&5)); // look up a `String` key by `&str`
    /// assert_eq!(NAMES.get("beta"), None);
    /// ```
    #[must_use]
    #[track_caller]
    pub fn get<Q>(&self, key: &Q) -> Option<&'static V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let state = self.state.get()?;
        let hash = state.hasher.hash_one(key);
        let matches = |entry: EntryRef<Entry<K, V>>| entry.get().matches(hash, key);
        // A lock-free miss can be a concurrent split moving the entry: confirm misses under the lock.
        let entry =
            state.table.find(hash, matches).or_else(|| state.table.find_locked(Self::user_code(), hash, matches))?;
        Some(&entry.get().value)
    }

    /// The cached value for `key`, or `f(key)`: cached if the budget can hold it, handed back as
    /// [`Cached::Owned`] otherwise. `f` runs on the calling thread, only on a miss, and at most once at a time per
    /// key: a thread that misses a key another thread is computing waits for that value (other keys are not held up).
    ///
    /// The key is borrowed, in any form `K` can be borrowed as (`&str` for a `String` key, `&[u8]` for a `Vec<u8>`),
    /// and turned into an owned `K` (with [`ToOwned`]) only on a miss: a hit allocates nothing.
    ///
    /// `f` may use the cache for other keys (recursive memoization). If `f` panics, nothing is cached, the panic
    /// propagates, threads waiting for the key wake up and one of them runs its own initialiser.
    ///
    /// Once the budget has refused the cache, the cache is [full](Self::is_full): misses run `f` and return its
    /// value uncached, without asking the budget again, and concurrent misses of one key each run their own `f`.
    ///
    /// # Panics
    ///
    /// If `f` panics (the panic propagates), or if `f` asks this cache for `key` itself (it would wait for itself
    /// forever). `K`'s `Eq` runs under the cache's locks on a miss: if it calls back into a cache, interner or
    /// once-cell in a way that needs a lock (a miss, an insert, a first initialisation), that call panics with a
    /// message naming the cache and `K` rather than deadlock. Lock-free calls (hits) are fine.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{Cached, LeakBudget, StaticCache};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
    /// static FIB: StaticCache<u32, u64> = StaticCache::in_budget(&BUDGET);
    ///
    /// fn fib(n: u32) -> u64 {
    ///     *FIB.get_or_insert_with(&n, |&n| if n < 2 { u64::from(n) } else { fib(n - 1) + fib(n - 2) })
    /// }
    /// assert_eq!(fib(90), 2_880_067_194_370_816_120);
    /// assert_eq!(FIB.len(), 91);
    ///
    /// // Once the budget is exhausted, values are still computed, just not cached.
    /// static NOTHING: LeakBudget = LeakBudget::new(0);
    /// static UNCACHED: StaticCache<u32, u64> = StaticCache::in_budget(&NOTHING);
    /// assert!(matches!(UNCACHED.get_or_insert_with(&3, |&n| u64::from(n)), Cached::Owned(3)));
    ///
    /// // `String` keys, filled and queried with `&str`.
    /// static LENGTHS: StaticCache<String, usize> = StaticCache::in_budget(&BUDGET);
    /// assert_eq!(*LENGTHS.get_or_insert_with("hello", str::len), 5);
    /// ```
    #[inline]
    #[track_caller]
    pub fn get_or_insert_with<Q>(&self, key: &Q, f: impl FnOnce(&Q) -> V) -> Cached<V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        match self.get_or_compute(key, |key| Ok::<V, Infallible>(f(key))) {
            Ok(cached) => cached,
            Err(never) => match never {},
        }
    }

    /// As [`get_or_insert_with`](Self::get_or_insert_with), but reports a value that could not be cached.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding the value `f` computed and the budget's refusal that made the cache full (usually
    /// [`LeakError::BudgetExceeded`]; [`LeakError::InvalidConfig`] for a cache on the global budget when
    /// `LEAK_BUDGET` is invalid).
    ///
    /// # Panics
    ///
    /// As [`get_or_insert_with`](Self::get_or_insert_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError, StaticCache};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
    /// static SMALL: StaticCache<u8, u64> = StaticCache::in_budget(&BUDGET);
    /// let cached: &'static u64 = SMALL.try_get_or_insert_with(&1, |&k| u64::from(k))?;
    /// assert_eq!(*cached, 1);
    ///
    /// static HUGE: StaticCache<u8, [u8; 64 << 10]> = StaticCache::in_budget(&BUDGET); // larger than the budget
    /// let refused = HUGE.try_get_or_insert_with(&1, |_| [7; 64 << 10]).unwrap_err();
    /// assert!(matches!(refused.error(), LeakError::BudgetExceeded { .. }));
    /// assert_eq!(refused.into_inner()[0], 7);
    /// # Ok::<(), leak_budget::Rejected<u64>>(())
    /// ```
    #[track_caller]
    pub fn try_get_or_insert_with<Q>(&self, key: &Q, f: impl FnOnce(&Q) -> V) -> Result<&'static V, Rejected<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        match self.get_or_insert_with(key, f) {
            Cached::Static(value) => Ok(value),
            Cached::Owned(value) => Err(Rejected::new(value, self.refusal())),
        }
    }

    /// As [`get_or_insert_with`](Self::get_or_insert_with), with an initialiser that may fail: an error is returned
    /// as is and nothing is cached (threads waiting for the key wake up and one of them runs its own initialiser;
    /// a later call retries). If the budget refused the cache's state on this call, the cache is full from then on,
    /// as after any refusal: later misses return their values uncached.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns.
    ///
    /// # Panics
    ///
    /// As [`get_or_insert_with`](Self::get_or_insert_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::StaticCache;
    ///
    /// static PARSED: StaticCache<String, u16> = StaticCache::new();
    /// assert_eq!(*PARSED.get_or_try_insert_with("8080", str::parse::<u16>)?, 8080);
    /// assert!(PARSED.get_or_try_insert_with("port", str::parse::<u16>).is_err());
    /// assert_eq!(PARSED.len(), 1); // the error was not cached
    /// # Ok::<(), std::num::ParseIntError>(())
    /// ```
    #[track_caller]
    pub fn get_or_try_insert_with<Q, E>(&self, key: &Q, f: impl FnOnce(&Q) -> Result<V, E>) -> Result<Cached<V>, E>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        self.get_or_compute(key, f)
    }

    /// The hit path, with the borrowed key; everything else is in [`miss`](Self::miss) and
    /// [`first_miss`](Self::first_miss), which own it.
    #[inline]
    #[track_caller]
    fn get_or_compute<Q, E>(&self, key: &Q, f: impl FnOnce(&Q) -> Result<V, E>) -> Result<Cached<V>, E>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        let Some(state) = self.state.get() else {
            return self.first_miss(key.to_owned(), |key: &K| f(key.borrow()));
        };
        // `Borrow` promises that `Q` hashes as `K` does, so the hash finds the entry its owned key was stored with.
        let hash = state.hasher.hash_one(key);
        if let Some(entry) = state.table.find(hash, |entry| entry.get().matches(hash, key)) {
            state.count_hit();
            return Ok(Cached::Static(&entry.get().value));
        }
        self.miss(state, hash, key.to_owned(), |key: &K| f(key.borrow()))
    }

    /// A miss before the state exists: create it, or degrade if the budget cannot hold it.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn first_miss<E>(&self, key: K, f: impl FnOnce(&K) -> Result<V, E>) -> Result<Cached<V>, E> {
        if !self.is_full() {
            match self.create_state() {
                Ok(state) => {
                    let hash = state.hasher.hash_one(&key);
                    return self.miss(state, hash, key, f);
                }
                Err(error) => self.refused(error),
            }
        }
        Self::degrade(&self.stateless, &key, f)
    }

    /// Runs `f` for a full cache and hands its value back uncached.
    fn degrade<E>(counts: &Counts, key: &K, f: impl FnOnce(&K) -> Result<V, E>) -> Result<Cached<V>, E> {
        counts.misses.fetch_add(1, Relaxed);
        let value = f(key)?;
        counts.degraded.fetch_add(1, Relaxed);
        Ok(Cached::Owned(value))
    }

    /// A lock-free look-up missed: look again under the stripe's lock, wait for a thread computing the key, or
    /// compute it and insert it.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn miss<E>(
        &self,
        state: &'static State<K, V>,
        hash: u64,
        key: K,
        f: impl FnOnce(&K) -> Result<V, E>,
    ) -> Result<Cached<V>, E> {
        let matches = |entry: EntryRef<Entry<K, V>>| entry.get().matches(hash, &key);
        let stripe = state.stripe(hash);
        let me = thread_token();
        let mut pending = stripe.pending.lock();
        let mut waited = false;
        loop {
            // Under the stripe's lock nobody can start or finish computing a key of this stripe, and the table look-up
            // is exact: a key is either in the table, or being computed, or neither.
            if let Some(entry) = state.table.find_locked(Self::user_code(), hash, matches) {
                drop(pending);
                state.count_hit();
                return Ok(Cached::Static(&entry.get().value));
            }
            if self.is_full() {
                drop(pending);
                return Self::degrade(&state.counts, &key, f);
            }
            if !pending.is_computing(Self::user_code(), hash, &key, me) {
                break;
            }
            if !waited {
                waited = true;
                state.counts.waits.fetch_add(1, Relaxed);
            }
            pending = stripe.settled.wait(pending);
        }
        let node = Pending::new(hash, me, &key);
        // From here until `registration` is dropped (normally or while unwinding), other threads that miss this key
        // wait for this one.
        let registration = Registration::new(stripe, pending, &node);
        state.counts.misses.fetch_add(1, Relaxed);
        let computed = f(&key);
        // The key is about to move (into the entry, or to be dropped): nothing may read it through the record now.
        node.key_moves();
        let value = computed?;
        if self.is_full() {
            drop(registration);
            state.counts.degraded.fetch_add(1, Relaxed);
            return Ok(Cached::Owned(value));
        }
        let inserted = state.table.find_or_insert(Self::user_code(), state.budget, hash, Entry { hash, key, value });
        // Inserted (or refused) before the waiters are woken, so they find the entry (or the cache full).
        let answer = match inserted {
            // Nobody else inserts this key while this thread's record is linked, but a `Hash` and `Eq` that disagree
            // could make another key look equal: keep what is there (the new entry is dropped), as a look-up would.
            Ok(entry) => Cached::Static(&entry.get().value),
            Err(rejected) => {
                let (entry, error) = rejected.into_parts();
                self.refused(error);
                state.counts.degraded.fetch_add(1, Relaxed);
                Cached::Owned(entry.value)
            }
        };
        drop(registration);
        Ok(answer)
    }
}

/// A panic in user code (an initialiser, `Hash`, `Eq`) leaves the cache consistent: nothing is half-inserted, no lock
/// stays held, and waiters are woken. So, as for `OnceLock`, a cache is unwind-safe when what it hands out is. The
/// explicit impls make this hold under every lock backend (`parking_lot`'s mutex is not `RefUnwindSafe`, std's is).
impl<K: RefUnwindSafe + 'static, V: RefUnwindSafe + 'static> RefUnwindSafe for StaticCache<K, V> {}
impl<K: RefUnwindSafe + 'static, V: RefUnwindSafe + 'static> UnwindSafe for StaticCache<K, V> {}

impl<K: 'static, V: 'static> Default for StaticCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: 'static, V: 'static> fmt::Debug for StaticCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCache")
            .field("budget", &self.budget().map_or("global", LeakBudget::name))
            .field("len", &self.len())
            .field("full", &self.is_full())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
