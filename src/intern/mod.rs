//! Interning into a budget: [`Interner<T>`], [`Interned<T>`] and [`intern`].
//!
//! An interner keeps one copy of each distinct value in a [`LeakBudget`] and hands out [`Interned`] handles: one
//! pointer, compared and hashed by address. Its index (the [table](crate::table)) lives in the same budget, so the cap
//! covers everything the interner takes. Look-ups of values already present take no lock and write nothing shared.
//!
//! `mod.rs` holds the interner and its insert path, `handle.rs` the handle, `entry.rs` how each type is laid out.
//!
//! User code: `Hash` runs before any lock; `Eq` and `Clone` run under a shard lock, released on unwinding, so a panic leaves the interner consistent (growth made for a value whose `Clone`
//! panics stays charged and serves later inserts). A call back into the crate for a lock from there panics instead of
//! deadlocking ([`UserCode`]).

use core::alloc::Layout;
use core::fmt;
use core::hash::Hash;
use core::marker::PhantomData;
use core::panic::{RefUnwindSafe, UnwindSafe};
use core::ptr::NonNull;

use crate::budget::LeakBudget;
use crate::error::{LeakError, Rejected};
use crate::hash::{HashState as RandomState, hash_state};
use crate::lazy::LazyState;
use crate::marker::StoresShared;
use crate::sync::{UserCode, loom_const_fn};
use crate::table::{EntryRef, Insert, TypedTable};

mod entry;
mod handle;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
mod serde;

use entry::{SizedEntry, Values};
pub use handle::Interned;

/// Types an [`Interner`] can hold: `str`, slices `[T]` of `T: Copy + Hash + Eq` (so `[u8]` too), and sized
/// `T: Hash + Eq + Clone`. Sealed: the crate controls how each is laid out in the budget.
pub trait Internable: entry::Entry + 'static {}

impl Internable for str {}
impl<T: Copy + Hash + Eq + 'static> Internable for [T] {}
impl<T: Hash + Eq + Clone + 'static> Internable for T {}

/// What an interner keeps in its budget: the hasher (randomly seeded per interner) and the table.
#[derive(Debug)]
struct State<T: ?Sized> {
    hasher: RandomState,
    table: TypedTable<Values<T>>,
}

/// A thread-safe interner whose values *and* index live in a [`LeakBudget`].
///
/// `Interner<str>`, `Interner<[u8]>`, `Interner<[T]>` for `T: Copy + Hash + Eq`, and `Interner<T>` for sized
/// `T: Hash + Eq + Clone`. Each distinct value is stored once (copied into the budget on first sight) and every
/// `intern` of an equal value, from any thread, returns the same [`Interned`] handle. Nothing is ever removed.
///
/// - **Bounded**: values, hash table and bookkeeping are charged to the budget; once it is exhausted, interning a
///   *new* value returns an error and changes nothing (but the interner's state, set up once by its first call),
///   while values already present keep interning and resolving.
/// - **Lazy**: `const fn` constructors, so an interner can be a `static`; nothing is allocated before the first
///   `intern`.
/// - **Fast reads**: interning a value already present takes no lock and writes no shared memory.
///
/// # Examples
///
/// ```
/// use leak_budget::{Interner, LeakBudget};
///
/// static BUDGET: LeakBudget = LeakBudget::named("symbols", 1 << 20);
/// static SYMBOLS: Interner<str> = Interner::in_budget(&BUDGET);
///
/// let words = ["let", "x", "=", "x", "+", "let"];
/// let handles: Vec<_> = words.iter().map(|w| SYMBOLS.intern(w)).collect::<Result<_, _>>()?;
/// assert_eq!(handles[0], handles[5]);
/// assert_eq!(SYMBOLS.len(), 4);
/// assert!(SYMBOLS.get("+").is_some() && SYMBOLS.get("-").is_none());
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
///
/// Sharing across threads needs `T: Sync`, as for any `&T`:
///
/// ```compile_fail
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use std::cell::Cell;
/// use leak_budget::Interner;
///
/// #[derive(Clone, PartialEq, Eq, Hash)]
/// struct Unshareable(u32, std::marker::PhantomData<Cell<()>>);
/// static VALUES: Interner<Unshareable> = Interner::new(); // `Interner<Unshareable>` is not `Sync`
/// ```
///
/// ```
/// use leak_budget::Interner;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// struct Shareable(u32);
/// static VALUES: Interner<Shareable> = Interner::new();
/// let there = std::thread::spawn(|| VALUES.intern(&Shareable(7)).unwrap()).join().unwrap();
/// assert_eq!(VALUES.intern(&Shareable(7))?, there);
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
pub struct Interner<T: ?Sized + 'static> {
    /// The budget, and the interner's state in it, created by the first `intern`.
    state: LazyState<State<T>>,
    /// Invariant in `T` (values of `T` are stored and handed out again), and `Send`/`Sync` exactly when `&T` is: see
    /// [`StoresShared`] for why both are right.
    values: StoresShared<T>,
}

impl<T: ?Sized + 'static> Interner<T> {
    loom_const_fn! {
        /// An empty interner charging the [global budget](LeakBudget::global). Allocates nothing until first used.
        ///
        /// # Examples
        ///
        /// ```
        /// static TAGS: leak_budget::Interner<str> = leak_budget::Interner::new();
        /// assert_eq!(TAGS.intern("a")?, TAGS.intern("a")?);
        /// # Ok::<(), leak_budget::LeakError>(())
        /// ```
        #[must_use]
        pub fn new() -> Self {
            Self { state: LazyState::new(None), values: PhantomData }
        }
    }

    loom_const_fn! {
        /// An empty interner charging `budget`. Allocates nothing until first used.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::{Interner, LeakBudget};
        ///
        /// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
        /// static WORDS: Interner<str> = Interner::in_budget(&BUDGET);
        /// WORDS.intern("hello")?;
        /// assert!(BUDGET.reserved() > 0);
        /// # Ok::<(), leak_budget::LeakError>(())
        /// ```
        #[must_use]
        pub fn in_budget(budget: &'static LeakBudget) -> Self {
            Self { state: LazyState::new(Some(budget)), values: PhantomData }
        }
    }

    /// The budget this interner charges, or `None` for the global budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{Interner, LeakBudget};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::named("words", 64 << 10);
    /// static WORDS: Interner<str> = Interner::in_budget(&BUDGET);
    /// assert_eq!(WORDS.budget().map(LeakBudget::name), Some("words"));
    /// ```
    #[must_use]
    pub fn budget(&self) -> Option<&'static LeakBudget> {
        self.state.budget()
    }

    /// Values interned so far.
    ///
    /// # Examples
    ///
    /// ```
    /// static WORDS: leak_budget::Interner<str> = leak_budget::Interner::new();
    /// assert!(WORDS.is_empty());
    /// WORDS.intern("a")?;
    /// WORDS.intern("a")?;
    /// assert_eq!(WORDS.len(), 1);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.state.get().map_or(0, |state| state.table.len())
    }

    /// Whether nothing has been interned yet.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leak_budget::Interner::<str>::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: ?Sized + Internable> Interner<T> {
    /// Describes the user code (`T`'s `Eq`, `Clone` and `Drop`) the table runs under a shard lock.
    fn user_code() -> UserCode {
        UserCode { container: "Interner", type_name: core::any::type_name::<T>(), what: "Eq, Clone or Drop" }
    }

    /// Returns the handle of the value equal to `value`, copying it into the budget first if it is new.
    ///
    /// # Errors
    ///
    /// [`LeakError::BudgetExceeded`] if `value` is new and it (or the table growth it needs) does not fit: nothing
    /// is changed, and values already interned keep working. One exception: an interner's first call sets up its
    /// state (hasher and table root) in the budget before asking for room for the value, and that state stays
    /// charged if the value is then refused; it is the state every later call uses, so it is set up only once.
    /// [`LeakError::SizeOverflow`] for a value too large to describe, [`LeakError::AllocFailed`] if the global
    /// allocator fails, and [`LeakError::InvalidConfig`] for an interner on the global budget when `LEAK_BUDGET` is
    /// invalid.
    ///
    /// # Panics
    ///
    /// If `T`'s `Hash`, `Eq` or `Clone` panics (the interner stays consistent), or if `T`'s `Eq`, `Clone` or `Drop`,
    /// which run under one of the interner's locks when `value` is new, call back into an interner, cache or
    /// once-cell in a way that needs a lock (an insert): that would deadlock, so it panics, naming the interner and
    /// `T`. Look-ups of values already present are lock-free and allowed.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{Interner, LeakBudget, LeakError};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(8 << 10);
    /// static WORDS: Interner<str> = Interner::in_budget(&BUDGET);
    /// let kept = WORDS.intern("kept")?;
    /// let too_long = "x".repeat(64 << 10);
    /// assert!(matches!(WORDS.intern(&too_long), Err(LeakError::BudgetExceeded { .. })));
    /// assert_eq!(WORDS.intern("kept")?, kept); // still works
    /// # Ok::<(), LeakError>(())
    /// ```
    #[inline]
    #[track_caller]
    pub fn intern(&self, value: &T) -> Result<Interned<T>, LeakError> {
        self.find_or_insert(value).map_err(|rejected| rejected.into_parts().1)
    }

    /// The path `intern` and `intern_owned` share: a lock-free look-up, then, on a miss, an insert of `offer`.
    #[inline(always)]
    #[track_caller]
    fn find_or_insert<O: Offer<T>>(&self, offer: O) -> Result<Interned<T>, Rejected<O>> {
        let state = match self.state.get() {
            Some(state) => state,
            None => {
                match self.state.get_or_create(
                    || None,
                    TypedTable::<Values<T>>::charge_bound,
                    |budget| Ok(State { hasher: hash_state(), table: TypedTable::new(budget)? }),
                ) {
                    Ok(state) => state,
                    Err(error) => return Err(Rejected::new(offer, error)),
                }
            }
        };
        let hash = offer.value().hash_with(&state.hasher);
        if let Some(entry) = state.table.find(hash, |entry| offer.value().matches(entry)) {
            return Ok(Interned::new(entry));
        }
        self.insert(state, hash, offer)
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn insert<O: Offer<T>>(&self, state: &'static State<T>, hash: u64, offer: O) -> Result<Interned<T>, Rejected<O>> {
        let budget = match self.state.resolve_budget() {
            Ok(budget) => budget,
            Err(error) => return Err(Rejected::new(offer, error)),
        };
        let layout = match offer.value().entry_layout() {
            Ok(layout) => layout,
            Err(error) => return Err(Rejected::new(offer, error)),
        };
        let probe = Probe { offer, hash, layout, hasher: &state.hasher, values: PhantomData };
        match state.table.find_or_insert(Self::user_code(), budget, hash, probe) {
            Ok(entry) => Ok(Interned::new(entry)),
            Err(rejected) => Err(rejected.map(|probe| probe.offer)),
        }
    }

    /// The handle of the value equal to `value`, if it was interned. Never allocates or charges.
    ///
    /// # Examples
    ///
    /// ```
    /// static WORDS: leak_budget::Interner<str> = leak_budget::Interner::new();
    /// let a = WORDS.intern("a")?;
    /// assert_eq!(WORDS.get("a"), Some(a));
    /// assert_eq!(WORDS.get("b"), None);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    #[track_caller]
    pub fn get(&self, value: &T) -> Option<Interned<T>> {
        let state = self.state.get()?;
        let hash = value.hash_with(&state.hasher);
        let matches = |entry| value.matches(entry);
        // A lock-free miss can be a concurrent split moving the entry: confirm misses under the lock.
        let entry =
            state.table.find(hash, matches).or_else(|| state.table.find_locked(Self::user_code(), hash, matches))?;
        Some(Interned::new(entry))
    }

    /// The handles interned so far, in no particular order, each once.
    ///
    /// The iterator does not gather them all first: it visits the table's shards one after another, copying one
    /// shard's handles at a time under that shard's lock (no user code runs under it), and hands them out after the
    /// lock is released. A value interned before the call is always visited; one interned while the iterator runs
    /// is visited if its shard has not been copied yet. An iterator holds no lock between calls to `next`, so it may
    /// be kept as long as wanted, and the interner used meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// static WORDS: leak_budget::Interner<str> = leak_budget::Interner::new();
    /// WORDS.intern("b")?;
    /// WORDS.intern("a")?;
    /// WORDS.intern("b")?;
    /// let mut all: Vec<&str> = WORDS.iter().map(|word| word.as_static()).collect();
    /// all.sort_unstable();
    /// assert_eq!(all, ["a", "b"]);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { table: self.state.get().map(|state| &state.table), shard: 0, copied: Vec::new() }
    }
}

impl<T: Hash + Eq + Clone + 'static> Interner<T> {
    /// Interns an owned value without cloning it: it is moved into the budget if new, or dropped if an equal value
    /// is already there.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding `value` if it is new and does not fit (see [`intern`](Self::intern)).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{Interner, LeakBudget};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
    /// static PATHS: Interner<Vec<String>> = Interner::in_budget(&BUDGET);
    /// let path = vec![String::from("src"), String::from("lib.rs")];
    /// let handle = PATHS.intern_owned(path.clone()).unwrap();
    /// assert_eq!(*handle, path);
    ///
    /// static NONE: LeakBudget = LeakBudget::new(0);
    /// static REFUSED: Interner<Vec<String>> = Interner::in_budget(&NONE);
    /// assert_eq!(REFUSED.intern_owned(path.clone()).unwrap_err().into_inner(), path);
    /// ```
    #[track_caller]
    pub fn intern_owned(&self, value: T) -> Result<Interned<T>, Rejected<T>> {
        self.find_or_insert(Owned(value)).map_err(|rejected| rejected.map(|Owned(value)| value))
    }
}

/// A value offered to an interner: borrowed (`&T`, copied into the budget if new) or owned ([`Owned`], moved there).
///
/// # Safety
///
/// [`make`](Offer::make) must return a fully written entry of kind `Values<T>`, as `T`'s [`Entry`](entry::Entry) impl lays it
/// out (and as [`leak_entry`](entry::Entry::leak_entry) writes it), never written or freed afterwards, with provenance over all of it.
unsafe trait Offer<T: ?Sized + Internable>: Sized {
    /// The value offered.
    fn value(&self) -> &T;
    /// Leaks the value's entry, with `hash`, into `budget`; gives the offer back if refused.
    fn make(self, hash: u64, budget: &LeakBudget) -> Result<NonNull<T::Record>, Rejected<Self>>;
}

// SAFETY: `make` returns what `Entry::leak_entry` returns, which the `Entry` contract makes such an entry.
unsafe impl<T: ?Sized + Internable> Offer<T> for &T {
    #[inline(always)]
    fn value(&self) -> &T {
        self
    }

    fn make(self, hash: u64, budget: &LeakBudget) -> Result<NonNull<T::Record>, Rejected<Self>> {
        self.leak_entry(hash, budget).map_err(|error| Rejected::new(self, error))
    }
}

/// An owned value offered by [`Interner::intern_owned`]: moved into its entry, dropped if an equal one is there.
struct Owned<T>(T);

// SAFETY: `make` leaks a `SizedEntry<T>` (the entry of a sized `T`, as its `Entry` impl lays it out) with
// `LeakBudget::leak`: fully written, never freed, not written again.
unsafe impl<T: Hash + Eq + Clone + 'static> Offer<T> for Owned<T> {
    #[inline(always)]
    fn value(&self) -> &T {
        &self.0
    }

    fn make(self, hash: u64, budget: &LeakBudget) -> Result<NonNull<SizedEntry<T>>, Rejected<Self>> {
        match budget.leak(SizedEntry { hash, value: self.0 }) {
            Ok(entry) => Ok(NonNull::from(entry)),
            Err(rejected) => Err(rejected.map(|entry| Owned(entry.value))),
        }
    }
}

/// An offer on its way into an interner's table.
struct Probe<T: ?Sized, O> {
    offer: O,
    /// The offered value's hash.
    hash: u64,
    /// The layout of its entry.
    layout: Layout,
    /// The interner's hasher, to rehash entries when a bucket splits.
    hasher: &'static RandomState,
    /// Contravariant in `T`: a probe only reads a borrowed `&T` offered to it and stores nothing of `T`, and a
    /// function pointer adds no auto-trait bound.
    values: PhantomData<fn(&T)>,
}

// SAFETY: `make` returns what `Offer::make` returns, which the `Offer` contract makes a fully written entry of kind
// `Values<T>`.
unsafe impl<T: ?Sized + Internable, O: Offer<T>> Insert<Values<T>> for Probe<T, O> {
    fn matches(&self, entry: EntryRef<Values<T>>) -> bool {
        self.offer.value().matches(entry)
    }

    fn rehash(&self, entry: EntryRef<Values<T>>) -> u64 {
        T::entry_hash(entry, self.hasher)
    }

    fn layout(&self) -> Layout {
        self.layout
    }

    fn make(self, budget: &LeakBudget) -> Result<NonNull<T::Record>, Rejected<Self>> {
        let Self { offer, hash, layout, hasher, values } = self;
        offer.make(hash, budget).map_err(|rejected| rejected.map(|offer| Self { offer, hash, layout, hasher, values }))
    }
}

/// A panic in user code (`Hash`, `Eq`, `Clone`, `Drop`) leaves the interner consistent: nothing is half-inserted and
/// no lock stays held. So, as for `OnceLock<T>`, an interner is unwind-safe when what it stores is. The explicit impls
/// make this hold under every lock backend (`parking_lot`'s mutex is not `RefUnwindSafe`, std's is).
impl<T: ?Sized + RefUnwindSafe + UnwindSafe + 'static> RefUnwindSafe for Interner<T> {}
impl<T: ?Sized + UnwindSafe + 'static> UnwindSafe for Interner<T> {}

impl<T: ?Sized + 'static> Default for Interner<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized + 'static> fmt::Debug for Interner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner")
            .field("budget", &self.budget().map_or("global", LeakBudget::name))
            .field("len", &self.state.get().map_or(0, |state| state.table.len()))
            .finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized + Internable> IntoIterator for &'a Interner<T> {
    type Item = Interned<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// The handles of an [`Interner`], from [`Interner::iter`].
pub struct Iter<'a, T: ?Sized + Internable> {
    /// The interner's table; `None` if it had no state (nothing interned) when the iterator was made.
    table: Option<&'a TypedTable<Values<T>>>,
    /// The next shard to copy.
    shard: usize,
    /// Handles copied from the last shard and not handed out yet.
    copied: Vec<Interned<T>>,
}

impl<T: ?Sized + Internable> Iterator for Iter<'_, T> {
    type Item = Interned<T>;

    fn next(&mut self) -> Option<Interned<T>> {
        loop {
            if let Some(handle) = self.copied.pop() {
                return Some(handle);
            }
            let table = self.table?;
            if self.shard == table.shard_count() {
                return None;
            }
            let mut entries = Vec::new();
            table.shard_entries(self.shard, &mut entries);
            self.copied.extend(entries.into_iter().map(Interned::new));
            self.shard += 1;
        }
    }
}

impl<T: ?Sized + Internable> core::iter::FusedIterator for Iter<'_, T> {}

/// As for the interner itself: a panic leaves its table consistent (the iterator only copies handles), so the
/// iterator is unwind-safe when the values are. Explicit, because the table's lock backend is not `RefUnwindSafe`.
impl<T: ?Sized + Internable + RefUnwindSafe> RefUnwindSafe for Iter<'_, T> {}
impl<T: ?Sized + Internable + RefUnwindSafe> UnwindSafe for Iter<'_, T> {}

impl<T: ?Sized + Internable> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("shard", &self.shard).field("copied", &self.copied.len()).finish_non_exhaustive()
    }
}

/// Interns `s` in a process-wide string interner on the [global budget](LeakBudget::global), as
/// [`Interner::intern`] does: the handle compares in O(1) by address, and [`Interned::as_static`] (or `.into()`) gives
/// the `&'static str`.
///
/// # Errors
///
/// As [`Interner::intern`].
///
/// # Examples
///
/// ```
/// use leak_budget::Interned;
///
/// let a: Interned<str> = leak_budget::intern("shared")?;
/// let b = leak_budget::intern(&format!("sha{}", "red"))?;
/// assert_eq!(a, b); // one pointer compare
/// let text: &'static str = a.into();
/// assert_eq!(text, "shared");
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
#[cfg(not(loom))]
pub fn intern(s: &str) -> Result<Interned<str>, LeakError> {
    global_strings().intern(s)
}

/// The process-wide string interner of [`intern`], on the global budget.
#[cfg(not(loom))]
fn global_strings() -> &'static Interner<str> {
    static STRINGS: Interner<str> = Interner::new();
    &STRINGS
}
