//! What safe code cannot do through the public API, checked at run time and at compile time.
//!
//! - Auto traits: every public type is `Send`, `Sync`, `UnwindSafe` and `RefUnwindSafe` exactly where its std
//!   counterpart is (the negative cases, and variance, are `compile_fail` doctests in `src/compile_fail_tests.rs`).
//! - Re-entry: user code (`Eq`, `Clone`, `Drop`, initialisers) that calls back into the container it runs for, on the
//!   same thread, ends in a panic that names the type and what re-entered, never in a deadlock; and the container is
//!   usable afterwards. Each body runs on its own thread under [`bounded`], so a deadlock fails the test instead of
//!   hanging the suite.
//!
//! Miri runs this file (strict provenance): see `scripts/miri.sh`. Under `cfg(loom)` the containers are made of loom
//! objects, which exist only inside a loom model, so this file is empty there.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::panic::{RefUnwindSafe, UnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{LazyLock, MutexGuard, OnceLock};

use crate::support::{bounded, panic_message};
use leak_budget::{
    CacheStats, Cached, InitError, Interned, Interner, InternerIter, LeakBudget, LeakError, LeakLazy, LeakOnce,
    Rejected, Report, ReportAtExit, ReportEntry, ReportFigures, StaticCache, Stats, TryWithError,
};

fn send<T: ?Sized + Send>() {}
fn sync<T: ?Sized + Sync>() {}
fn unwind_safe<T: ?Sized + UnwindSafe>() {}
fn ref_unwind_safe<T: ?Sized + RefUnwindSafe>() {}
fn all<T: ?Sized + Send + Sync + UnwindSafe + RefUnwindSafe>() {}

/// Compiles only if every assertion holds; run so that the test counts.
#[test]
fn every_public_type_has_the_auto_traits_of_its_std_counterpart() {
    // Plain data and the budget itself: everything.
    all::<LeakBudget>();
    all::<LeakError>();
    all::<Stats>();
    all::<CacheStats>();
    all::<Report>();
    all::<ReportEntry>();
    all::<ReportFigures>();
    all::<ReportAtExit>();

    // Containers of shareable, unwind-safe values: everything, under every lock backend (the explicit unwind-safety
    // impls make `parking_lot`'s mutex, which is not `RefUnwindSafe`, invisible).
    all::<LeakOnce<u32>>();
    all::<LeakOnce<String>>();
    all::<Interner<str>>();
    all::<Interner<[u8]>>();
    all::<Interner<u64>>();
    all::<StaticCache<u32, String>>();
    all::<StaticCache<String, Vec<u8>>>();
    all::<OnceLock<u32>>(); // the counterpart, for comparison
    all::<LeakLazy<u32>>();
    all::<LeakLazy<Vec<String>>>();
    all::<LazyLock<u32>>(); // the counterpart, for comparison
    // With a closure for an initialiser, as `LazyLock<T, F>`: the closure's own traits count.
    fn all_of<T: Send + Sync + UnwindSafe + RefUnwindSafe>(_: &T) {}
    all_of(&LeakLazy::<u8, _>::in_budget(LeakBudget::global(), || 1u8));
    all_of(&LazyLock::new(|| 1u8));

    // Handles and owned wrappers: as `&'static T` and as `Option<T>`.
    all::<Interned<str>>();
    all::<Interned<[u16]>>();
    all::<Rejected<String>>();
    all::<InitError<String, std::io::ErrorKind>>();
    all::<Cached<String>>();
    all::<TryWithError<std::io::ErrorKind>>();
    // An interner's iterator borrows the interner and holds handles (each as good as a `&'static T`): as a set's.
    all::<InternerIter<'static, str>>();
    all::<InternerIter<'static, [u8]>>();
    all::<std::collections::hash_set::Iter<'static, &'static str>>(); // the counterpart, for comparison

    // Interior mutability (`Cell`: `Send`, `UnwindSafe`, neither `Sync` nor `RefUnwindSafe`): a cell of one is
    // unwind-safe but not ref-unwind-safe, exactly as `OnceLock<Cell<u8>>` (the negative cases are doctests).
    unwind_safe::<OnceLock<Cell<u8>>>();
    unwind_safe::<LeakOnce<Cell<u8>>>();
    unwind_safe::<Interner<Cell<u8>>>();
    unwind_safe::<LeakLazy<Cell<u8>>>();
    unwind_safe::<LazyLock<Cell<u8>>>();
    send::<Rejected<Cell<u8>>>();

    // `Sync` but not `Send` (a mutex guard): the containers never move a stored value to another thread, they only
    // share `&T`, so `T: Sync` is all they need (unlike `OnceLock`, which may drop its value on another thread).
    send::<LeakOnce<MutexGuard<'static, u8>>>();
    sync::<LeakOnce<MutexGuard<'static, u8>>>();
    send::<LeakLazy<MutexGuard<'static, u8>>>();
    sync::<LeakLazy<MutexGuard<'static, u8>>>();
    ref_unwind_safe::<LeakBudget>();
}

/// `catch_unwind` around a call on a cell, interner or cache held by reference compiles, as it does for `OnceLock`.
#[test]
fn catch_unwind_accepts_references_to_the_containers() {
    static ONCE: LeakOnce<u32> = LeakOnce::new();
    static STD: OnceLock<u32> = OnceLock::new();
    static WORDS: Interner<str> = Interner::new();
    static CACHE: StaticCache<u32, u32> = StaticCache::new();
    let (once, std, words, cache) = (&ONCE, &STD, &WORDS, &CACHE);
    assert_eq!(catch_unwind(|| *std.get_or_init(|| 1)).unwrap(), 1);
    assert_eq!(catch_unwind(|| *once.get_or_init(|| 1).unwrap()).unwrap(), 1);
    assert_eq!(catch_unwind(|| words.intern("w").unwrap().as_static()).unwrap(), "w");
    assert_eq!(catch_unwind(|| *cache.get_or_insert_with(&1, |&k| k + 1)).unwrap(), 2);
}

/// A value whose `Hash` writes nothing: every value has the same hash, so every value of an interner lands in the
/// same shard and bucket, and any insert takes the lock that an `Eq` or `Clone` of another value runs under.
#[derive(Debug)]
struct SameShard {
    id: u32,
    /// Which interner `Clone` and `Eq` call back into, when armed.
    into: &'static Interner<SameShard>,
}

/// Armed: `SameShard`'s `Clone` interns a new value into the same interner.
static CLONE_REENTERS: AtomicBool = AtomicBool::new(false);
/// Armed: `SameShard`'s `Eq` interns a new value into the same interner.
static EQ_REENTERS: AtomicBool = AtomicBool::new(false);
/// Fresh ids for the values the callbacks intern (each is new, so each needs an insert, so each needs the lock).
static NEXT_ID: AtomicU32 = AtomicU32::new(1_000_000);

impl Hash for SameShard {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

/// By id alone; this `Eq` never calls back (see [`SameShardEq`] for one that does).
impl PartialEq for SameShard {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for SameShard {}

impl Clone for SameShard {
    fn clone(&self) -> Self {
        if CLONE_REENTERS.load(SeqCst) {
            once_deep(|| {
                let _ = self.into.intern(&SameShard { id: NEXT_ID.fetch_add(1, SeqCst), into: self.into });
            });
        }
        SameShard { id: self.id, into: self.into }
    }
}

/// Equality by id, calling back into the interner first when armed.
fn same_id(a: &SameShard, b: &SameShard) -> bool {
    if EQ_REENTERS.load(SeqCst) {
        once_deep(|| {
            let _ = a.into.intern(&SameShard { id: NEXT_ID.fetch_add(1, SeqCst), into: a.into });
        });
    }
    a.id == b.id
}

thread_local! {
    /// Set while a callback calls back, so that the value it interns does not call back in turn (the callbacks
    /// also run on lock-free paths, where calling back is allowed and would otherwise recurse without end).
    static CALLING_BACK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `call_back` unless this thread is already inside a call back.
fn once_deep(call_back: impl FnOnce()) {
    if !CALLING_BACK.with(|inside| inside.replace(true)) {
        call_back();
        CALLING_BACK.with(|inside| inside.set(false));
    }
}

/// Serialises the tests that arm the callbacks above.
static ARMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn expect_reentry_panic(ended: std::thread::Result<()>, container: &str, type_name: &str) {
    let payload = ended.expect_err("the re-entrant call must panic");
    let message = panic_message(&*payload);
    assert!(
        message.contains(container) && message.contains(type_name) && message.contains("called back"),
        "the panic must name the container, the type and the re-entry: {message:?}"
    );
}

#[test]
fn an_interner_whose_clone_interns_into_it_panics_instead_of_deadlocking() {
    static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    static VALUES: Interner<SameShard> = Interner::in_budget(&BUDGET);
    let _armed = ARMING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // One value first, so that the interner's state and the shard's first bucket exist.
    let first = VALUES.intern(&SameShard { id: 1, into: &VALUES }).unwrap();
    let before = (VALUES.len(), BUDGET.reserved());

    CLONE_REENTERS.store(true, SeqCst);
    let ended = bounded(|| {
        let _ = VALUES.intern(&SameShard { id: 2, into: &VALUES });
    });
    CLONE_REENTERS.store(false, SeqCst);
    expect_reentry_panic(ended, "Interner", "SameShard");

    // Nothing was inserted or charged by the refused call, no lock stays held, and the interner works on.
    assert_eq!((VALUES.len(), BUDGET.reserved()), before);
    let works = bounded(|| VALUES.intern(&SameShard { id: 2, into: &VALUES }).unwrap()).unwrap();
    assert_eq!(works.id, 2);
    assert_eq!(VALUES.intern(&SameShard { id: 1, into: &VALUES }).unwrap(), first);
    assert_eq!(VALUES.len(), 2);
}

impl PartialEq<SameShardEq> for SameShardEq {
    fn eq(&self, other: &SameShardEq) -> bool {
        same_id(&self.0, &other.0)
    }
}

/// As [`SameShard`], but its `Eq` is the one that calls back.
#[derive(Debug, Clone)]
struct SameShardEq(SameShard);

impl Hash for SameShardEq {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

impl Eq for SameShardEq {}

#[test]
fn an_interner_whose_eq_interns_into_it_panics_instead_of_deadlocking() {
    static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    static TARGET: Interner<SameShard> = Interner::in_budget(&BUDGET);
    static VALUES: Interner<SameShardEq> = Interner::in_budget(&BUDGET);
    let _armed = ARMING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = VALUES.intern(&SameShardEq(SameShard { id: 1, into: &TARGET })).unwrap();
    let before = VALUES.len();

    // `Eq` interns into `TARGET`: a different interner, still refused while `VALUES` holds its shard lock (another
    // thread could hold `TARGET`'s lock and wait for `VALUES`'s).
    EQ_REENTERS.store(true, SeqCst);
    let ended = bounded(|| {
        let _ = VALUES.intern(&SameShardEq(SameShard { id: 2, into: &TARGET }));
    });
    EQ_REENTERS.store(false, SeqCst);
    expect_reentry_panic(ended, "Interner", "SameShardEq");

    // The refused value is not there (its call back from the lock-free look-up, before the lock, went to `TARGET`).
    assert_eq!(VALUES.len(), before);
    assert_eq!(VALUES.intern(&SameShardEq(SameShard { id: 1, into: &TARGET })).unwrap(), first);
    assert_eq!(VALUES.intern(&SameShardEq(SameShard { id: 2, into: &TARGET })).unwrap().0.id, 2);
}

/// A value whose `Eq` interns a new value into the interner it lives in, when armed. All values share one hash.
#[derive(Debug, Clone)]
struct SelfEq(u32);

static SELF_EQ_BUDGET: LeakBudget = LeakBudget::new(1 << 20);
static SELF_VALUES: Interner<SelfEq> = Interner::in_budget(&SELF_EQ_BUDGET);

impl PartialEq for SelfEq {
    fn eq(&self, other: &Self) -> bool {
        if EQ_REENTERS.load(SeqCst) {
            once_deep(|| {
                let _ = SELF_VALUES.intern(&SelfEq(NEXT_ID.fetch_add(1, SeqCst)));
            });
        }
        self.0 == other.0
    }
}

impl Eq for SelfEq {}

impl Hash for SelfEq {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

#[test]
fn an_interner_whose_eq_interns_into_itself_panics_instead_of_deadlocking() {
    let _armed = ARMING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = SELF_VALUES.intern(&SelfEq(1)).unwrap();
    let before = SELF_VALUES.len();

    EQ_REENTERS.store(true, SeqCst);
    let ended = bounded(|| {
        let _ = SELF_VALUES.intern(&SelfEq(2));
    });
    EQ_REENTERS.store(false, SeqCst);
    expect_reentry_panic(ended, "Interner", "SelfEq");

    // The call back from the lock-free look-up (no lock held) inserted one value; the refused one is not there.
    assert_eq!(SELF_VALUES.len(), before + 1);
    assert!(SELF_VALUES.get(&SelfEq(2)).is_none());
    assert_eq!(SELF_VALUES.intern(&SelfEq(1)).unwrap(), first);
    assert_eq!(SELF_VALUES.intern(&SelfEq(2)).unwrap().0, 2);
}

/// A cache key whose `Eq` asks the cache for a new key (a miss, so it needs the cache's locks) when armed.
#[derive(Debug, Clone, Copy)]
struct ReentrantKey(u32);

static KEY_EQ_REENTERS: AtomicBool = AtomicBool::new(false);
static KEYED: StaticCache<ReentrantKey, u32> = StaticCache::new();

impl PartialEq for ReentrantKey {
    fn eq(&self, other: &Self) -> bool {
        if KEY_EQ_REENTERS.load(SeqCst) {
            once_deep(|| {
                let _ = KEYED.get_or_insert_with(&(ReentrantKey(NEXT_ID.fetch_add(1, SeqCst))), |k| k.0);
            });
        }
        self.0 == other.0
    }
}

impl Eq for ReentrantKey {}

impl Hash for ReentrantKey {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

#[test]
fn a_cache_whose_key_eq_uses_the_cache_panics_instead_of_deadlocking() {
    let _armed = ARMING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(*KEYED.get_or_insert_with(&ReentrantKey(1), |k| k.0 * 10), 10);
    let before = KEYED.len();

    KEY_EQ_REENTERS.store(true, SeqCst);
    // A miss compares the key with the entries of its bucket under the cache's locks.
    let ended = bounded(|| {
        let _ = KEYED.get_or_insert_with(&ReentrantKey(2), |k| k.0 * 10);
    });
    KEY_EQ_REENTERS.store(false, SeqCst);
    expect_reentry_panic(ended, "StaticCache", "ReentrantKey");

    // The call back from the lock-free look-up (no lock held) cached one key; the refused one is not cached.
    assert_eq!(KEYED.len(), before + 1);
    assert!(KEYED.get(&ReentrantKey(2)).is_none());
    assert_eq!(*KEYED.get_or_insert_with(&ReentrantKey(1), |_| unreachable!("cached")), 10);
    assert_eq!(*bounded(|| KEYED.get_or_insert_with(&ReentrantKey(2), |k| k.0 * 10)).unwrap(), 20);
}

#[test]
fn a_cache_initialiser_asking_for_its_own_key_panics_and_the_cache_works_on() {
    static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    static SQUARES: StaticCache<u32, u64> = StaticCache::in_budget(&BUDGET);
    let ended = bounded(|| {
        let _ = SQUARES.get_or_insert_with(&3, |&n| *SQUARES.get_or_insert_with(&n, |&n| u64::from(n * n)));
    });
    let payload = ended.expect_err("asking for its own key must panic");
    assert!(panic_message(&*payload).contains("StaticCache"), "{:?}", panic_message(&*payload));
    assert_eq!(SQUARES.get(&3), None);
    // Other keys from inside an initialiser are fine (recursive memoization), and the key itself works on.
    let nine =
        bounded(|| *SQUARES.get_or_insert_with(&3, |&n| *SQUARES.get_or_insert_with(&(n - 1), |&m| u64::from(m)) + 7))
            .unwrap();
    assert_eq!(nine, 9);
}

#[test]
fn a_once_cell_initialiser_using_its_own_cell_panics_and_the_cell_works_on() {
    static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    static CELL: LeakOnce<u32> = LeakOnce::in_budget(&BUDGET);
    let ended = bounded(|| {
        let _ = CELL.get_or_init(|| *CELL.get_or_init(|| 1).unwrap() + 1);
    });
    let payload = ended.expect_err("re-entrant initialisation must panic");
    let message = panic_message(&*payload);
    assert!(message.contains("LeakOnce<u32>") && message.contains("re-entrant"), "{message:?}");
    assert_eq!(CELL.get(), None);
    assert_eq!(*bounded(|| CELL.get_or_init(|| 5).unwrap()).unwrap(), 5);
}

#[test]
fn user_code_may_read_a_container_lock_free_from_under_its_lock() {
    // Only what needs a lock is refused: a `Clone` that looks up a value already present (lock-free) is fine.
    static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    static NAMES: Interner<str> = Interner::in_budget(&BUDGET);
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct LooksUp(u32);
    impl Clone for LooksUp {
        fn clone(&self) -> Self {
            assert!(NAMES.get("present").is_some());
            assert_eq!(NAMES.intern("present").unwrap().as_static(), "present");
            LooksUp(self.0)
        }
    }
    static VALUES: Interner<LooksUp> = Interner::in_budget(&BUDGET);
    NAMES.intern("present").unwrap();
    let handle = bounded(|| VALUES.intern(&LooksUp(4)).unwrap()).unwrap();
    assert_eq!(handle.0, 4);
}

#[test]
fn a_refused_once_cell_gives_the_value_back_and_nothing_is_charged() {
    static NOTHING: LeakBudget = LeakBudget::new(0);
    static CELL: LeakOnce<String> = LeakOnce::in_budget(&NOTHING);
    let refused = CELL.set("kept".to_owned()).unwrap_err();
    assert_eq!(refused.into_inner(), "kept");
    assert_eq!(NOTHING.reserved(), 0);
    assert!(CELL.get().is_none());
}
