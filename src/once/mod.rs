//! [`LeakOnce`]: a once-cell whose value is leaked into a [`LeakBudget`], so it hands out `&'static T` wherever the
//! cell itself lives; [`LeakLazy`], a value computed on first access (`lazy.rs`); and
//! [`leak_once!`](crate::leak_once), a cell per call site (`site.rs`). Both publish their value
//! with the protocol in `publication.rs`, whose module note gives its memory orderings.
use core::any::type_name;
use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomData;
use core::panic::{RefUnwindSafe, UnwindSafe};

use crate::budget::LeakBudget;
use crate::error::{LeakError, Rejected};
use crate::sync::loom_const_fn;

mod lazy;
mod publication;
mod site;

pub use lazy::LeakLazy;
use publication::{CellName, Owner, Publication};
pub use site::LeakOnceSite;

/// A once-cell whose value is leaked into a [`LeakBudget`]: it hands out `&'static T`, from any thread, even when
/// the cell itself is a local or a field rather than a `static`.
///
/// - **Once.** However many threads race, exactly one initialiser's value is published and every caller gets the
///   same reference; callers that find an initialiser running block (they do not spin) until it is done.
/// - **Bounded.** The value is leaked into the cell's budget ([`LeakBudget::global`] for [`new`](Self::new), any
///   `&'static LeakBudget` for [`in_budget`](Self::in_budget)) and charged once. The initialiser runs *before*
///   anything is charged; if the budget refuses its value, the caller gets the value back in a [`Rejected`] and the
///   cell stays empty, so a later call may try again.
/// - **Panic-safe.** An initialiser that panics charges nothing and leaves the cell empty; threads waiting for it
///   wake up and one of them initialises the cell.
/// - **No silent deadlock.** An initialiser that calls back into its own cell (through `get_or_init`,
///   `get_or_try_init` or `set`) makes that call panic with a message saying so.
/// - **Never dropped.** The value lives in the budget until the process exits; dropping the cell drops nothing.
///
/// # Examples
///
/// ```
/// use leak_budget::LeakOnce;
///
/// #[derive(Debug)]
/// struct Config {
///     workers: usize,
/// }
///
/// static CONFIG: LeakOnce<Config> = LeakOnce::new();
///
/// let config: &'static Config = CONFIG.get_or_init(|| Config { workers: 4 })?;
/// let handles: Vec<_> = (0..config.workers).map(|i| std::thread::spawn(move || i * config.workers)).collect();
/// let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(total, 24);
/// assert!(std::ptr::eq(CONFIG.get().unwrap(), config));
/// # Ok::<(), leak_budget::Rejected<Config>>(())
/// ```
///
/// # Sharing across threads
///
/// Every thread that reads the cell gets a `&'static T` to the same value, so the cell can be shared or sent across
/// threads only if `T: Sync`. Unlike `OnceLock`, `T: Send` is not required: the value is never moved, dropped or
/// borrowed mutably once it is leaked. A cell of a non-`Sync` type cannot be a `static`:
///
/// ```compile_fail,E0277
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use std::cell::Cell;
/// use leak_budget::LeakOnce;
///
/// static HITS: LeakOnce<Cell<u32>> = LeakOnce::new(); // error: `Cell<u32>` cannot be shared between threads
/// ```
///
/// while one of a `Sync` type can:
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use leak_budget::LeakOnce;
///
/// static HITS: LeakOnce<AtomicU32> = LeakOnce::new();
/// let hits = HITS.get_or_init(|| AtomicU32::new(0))?;
/// std::thread::spawn(move || hits.fetch_add(1, Ordering::Relaxed)).join().unwrap();
/// assert_eq!(hits.load(Ordering::Relaxed), 1);
/// # Ok::<(), leak_budget::Rejected<AtomicU32>>(())
/// ```
///
/// A local cell of a non-`Sync` type cannot be borrowed by another thread either:
///
/// ```compile_fail,E0277
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use std::cell::Cell;
/// use leak_budget::{LeakBudget, LeakOnce};
///
/// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
/// let hits: LeakOnce<Cell<u32>> = LeakOnce::in_budget(&BUDGET);
/// std::thread::scope(|s| {
///     s.spawn(|| hits.get_or_init(|| Cell::new(0)).unwrap().set(1)); // error: `Cell<u32>` is not `Sync`
/// });
/// ```
///
/// while a local cell of a `Sync` type can:
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use leak_budget::{LeakBudget, LeakOnce};
///
/// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
/// let hits: LeakOnce<AtomicU32> = LeakOnce::in_budget(&BUDGET);
/// std::thread::scope(|s| {
///     s.spawn(|| hits.get_or_init(|| AtomicU32::new(0)).unwrap().store(1, Ordering::Relaxed));
/// });
/// assert_eq!(hits.get().unwrap().load(Ordering::Relaxed), 1);
/// ```
///
/// Nor can such a cell be moved to another thread once this one holds its value:
///
/// ```compile_fail,E0277
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use std::cell::Cell;
/// use leak_budget::{LeakBudget, LeakOnce};
///
/// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
/// let hits: LeakOnce<Cell<u32>> = LeakOnce::in_budget(&BUDGET);
/// let mine: &'static Cell<u32> = hits.get_or_init(|| Cell::new(0)).unwrap();
/// let theirs = std::thread::spawn(move || hits.get().unwrap().set(1)); // error: `Cell<u32>` is not `Sync`
/// mine.set(2);
/// ```
///
/// while one of a `Sync` type can:
///
/// ```
/// use leak_budget::{LeakBudget, LeakOnce};
///
/// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
/// let limit: LeakOnce<u32> = LeakOnce::in_budget(&BUDGET);
/// let mine: &'static u32 = limit.get_or_init(|| 10).unwrap();
/// let theirs = std::thread::spawn(move || *limit.get().unwrap()).join().unwrap();
/// assert_eq!((*mine, theirs), (10, 10));
/// ```
pub struct LeakOnce<T> {
    /// The publication protocol. Invariant: a non-null `publication.value` is the address of a `T` leaked with
    /// [`LeakBudget::leak`] (published only by [`LeakOnce::store`]).
    publication: Publication,
    /// The budget the value is leaked into; `None` for [`LeakBudget::global`], looked up only when a value is stored
    /// (so a `const` cell can use it, and an invalid `LEAK_BUDGET` becomes an error of the call that stores).
    budget: Option<&'static LeakBudget>,
    /// The cell hands out `&'static T`: `Send` and `Sync` are implemented below, with the bounds that requires.
    /// `*mut T` also makes the cell invariant in `T`, as `OnceLock` is: were it covariant, a
    /// `&LeakOnce<for<'a> fn(&'a u8) -> &'a u8>` could be used as a `&LeakOnce<fn(&'static u8) -> &'static u8>` to
    /// store a function that every reader would then call with short-lived references.
    _value: PhantomData<*mut T>,
}

// SAFETY: sharing a `&LeakOnce<T>` lets every thread that has it get the same `&'static T` (and run the initialiser),
// so `T` is used through shared references from several threads at once: `T: Sync` is required. `T: Send` is not,
// unlike for `OnceLock<T>` (whose `Sync` needs `T: Send + Sync`, because a value built on one thread may be dropped or
// taken out on another): a value built for this cell is built, leaked and (when refused) handed back on the calling
// thread, and once leaked it is never moved, dropped or borrowed mutably. The other fields (atomics, a mutex, a
// condition variable and a `&'static LeakBudget`) are `Sync`.
unsafe impl<T: Sync> Sync for LeakOnce<T> {}

// SAFETY: a `LeakOnce<T>` moved to another thread hands out there the same `&'static T` the first thread may still
// hold, so moving the cell shares the value: `T: Sync` is required. Moving the cell moves no `T` (the value lives in
// the budget), so `T: Send` is not, unlike for `OnceLock<T>`, which owns its value. The other fields are `Send`.
unsafe impl<T: Sync> Send for LeakOnce<T> {}

/// A panicking initialiser leaves the cell empty and consistent (no lock stays held, waiters are woken), so, as for
/// `OnceLock<T>`, the cell is unwind-safe when its value is. The explicit impls make this hold under every lock
/// backend (`parking_lot`'s mutex is not `RefUnwindSafe`, std's is), with `OnceLock`'s bounds.
impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for LeakOnce<T> {}
impl<T: UnwindSafe> UnwindSafe for LeakOnce<T> {}

impl<T> LeakOnce<T> {
    loom_const_fn! {
        /// An empty cell whose value will be leaked into the [global budget](LeakBudget::global), looked up when a
        /// value is stored.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::LeakOnce;
        ///
        /// static GREETING: LeakOnce<String> = LeakOnce::new();
        /// assert!(GREETING.get().is_none());
        /// assert_eq!(GREETING.get_or_init(|| "hello".repeat(2))?, "hellohello");
        /// # Ok::<(), leak_budget::Rejected<String>>(())
        /// ```
        #[must_use]
        pub fn new() -> Self {
            Self { publication: Publication::new(), budget: None, _value: PhantomData }
        }
    }

    loom_const_fn! {
        /// An empty cell whose value will be leaked into `budget`.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::{LeakBudget, LeakOnce};
        ///
        /// static CONFIG_BUDGET: LeakBudget = LeakBudget::named("config", 64 << 10);
        /// static CONFIG: LeakOnce<Vec<String>> = LeakOnce::in_budget(&CONFIG_BUDGET);
        ///
        /// CONFIG.get_or_init(|| vec!["a".into(), "b".into()])?;
        /// assert_eq!(CONFIG_BUDGET.stats().allocations, 1);
        /// # Ok::<(), leak_budget::Rejected<Vec<String>>>(())
        /// ```
        #[must_use]
        pub fn in_budget(budget: &'static LeakBudget) -> Self {
            Self { publication: Publication::new(), budget: Some(budget), _value: PhantomData }
        }
    }
}

impl<T: 'static> LeakOnce<T> {
    /// The value, if one was published. Never blocks: while an initialiser runs, this is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakOnce};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let cell = LeakOnce::in_budget(&BUDGET);
    /// assert_eq!(cell.get(), None);
    /// cell.set(7u8)?;
    /// let seven: &'static u8 = cell.get().unwrap();
    /// drop(cell); // the value lives in the budget, not in the cell
    /// assert_eq!(*seven, 7);
    /// # Ok::<(), leak_budget::Rejected<u8>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn get(&self) -> Option<&'static T> {
        // SAFETY: by the `LeakOnce::publication` invariant a non-null address is that of a `T` leaked into a budget, which is
        // never freed, moved or borrowed mutably; the `Acquire` load in `Publication::load` makes its contents visible.
        unsafe { self.publication.load().cast::<T>().as_ref() }
    }

    /// Stores `value` if the cell is empty, and returns the stored value. If another thread is initialising the cell,
    /// waits for it to finish first.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding `value` unchanged, and:
    /// - [`LeakError::AlreadySet`] if the cell already holds a value (read it with [`get`](Self::get)); nothing is
    ///   charged;
    /// - [`LeakError::BudgetExceeded`] or [`LeakError::AllocFailed`] if the budget cannot store it;
    /// - [`LeakError::InvalidConfig`] for a cell made with [`new`](Self::new) if `LEAK_BUDGET` is invalid.
    ///
    /// In every case but the first, the cell stays empty.
    ///
    /// # Panics
    ///
    /// If called from an initialiser running for this cell on the same thread, which would otherwise wait for itself
    /// forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError, LeakOnce};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// static MOTD: LeakOnce<String> = LeakOnce::in_budget(&BUDGET);
    ///
    /// assert_eq!(MOTD.set("first".to_owned())?, "first");
    /// let refused = MOTD.set("second".to_owned()).unwrap_err();
    /// assert_eq!(refused.error(), &LeakError::AlreadySet);
    /// assert_eq!(refused.into_inner(), "second");
    /// assert_eq!(MOTD.get().unwrap(), "first");
    /// # Ok::<(), leak_budget::Rejected<String>>(())
    /// ```
    #[track_caller]
    pub fn set(&self, value: T) -> Result<&'static T, Rejected<T>> {
        if self.get().is_some() {
            return Err(Rejected::new(value, LeakError::AlreadySet));
        }
        match self.publication.claim(CellName::Typed(type_name::<T>())) {
            Ok(owner) => self.store(owner, value),
            Err(_published) => Err(Rejected::new(value, LeakError::AlreadySet)),
        }
    }

    /// The value, initialised with `f` if the cell is empty.
    ///
    /// If another thread is running its initialiser, waits (blocked, not spinning) until it is done, then returns its
    /// value, or, if it stored nothing (it panicked or its value was refused), tries again with `f`. `f` runs at most
    /// once per call, on the calling thread, with no lock held, and before anything is charged.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding the value `f` returned if it cannot be stored: [`LeakError::BudgetExceeded`] or
    /// [`LeakError::AllocFailed`] from the budget, or [`LeakError::InvalidConfig`] for a cell made with
    /// [`new`](Self::new) if `LEAK_BUDGET` is invalid. The cell stays empty and nothing is charged.
    ///
    /// # Panics
    ///
    /// If `f` panics: the panic propagates, the cell stays empty and nothing is charged. If `f` (or anything it calls
    /// on this thread) calls `get_or_init`, [`get_or_try_init`](Self::get_or_try_init) or [`set`](Self::set) on this
    /// same cell: that inner call panics rather than wait for itself forever (so does [`OnceLock`], but it
    /// deadlocks instead). Cells that wait for each other across threads (`a`'s initialiser needs `b` while `b`'s,
    /// on another thread, needs `a`) still deadlock, as locks taken in opposite orders do.
    ///
    /// [`OnceLock`]: std::sync::OnceLock
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakOnce};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// static PRIMES: LeakOnce<Vec<u32>> = LeakOnce::in_budget(&BUDGET);
    ///
    /// let primes = PRIMES.get_or_init(|| (2..50).filter(|n| (2..*n).all(|d| n % d != 0)).collect())?;
    /// assert_eq!(primes[..5], [2, 3, 5, 7, 11]);
    /// let again = PRIMES.get_or_init(|| unreachable!("already initialised"))?;
    /// assert!(std::ptr::eq(primes, again));
    /// # Ok::<(), leak_budget::Rejected<Vec<u32>>>(())
    /// ```
    ///
    /// A value the budget cannot hold comes back, and the cell stays empty:
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakOnce};
    ///
    /// static TINY: LeakBudget = LeakBudget::new(16);
    /// static TABLE: LeakOnce<[u64; 64]> = LeakOnce::in_budget(&TINY);
    ///
    /// let refused = TABLE.get_or_init(|| [1; 64]).unwrap_err();
    /// assert_eq!(refused.into_inner(), [1; 64]);
    /// assert!(TABLE.get().is_none());
    /// ```
    #[inline]
    #[track_caller]
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> Result<&'static T, Rejected<T>> {
        if let Some(value) = self.get() {
            return Ok(value);
        }
        self.get_or_init_as(CellName::Typed(type_name::<T>()), f)
    }

    /// [`get_or_init`](Self::get_or_init) for a cell that panics under another name (a `LeakLazy`'s).
    #[track_caller]
    pub(in crate::once) fn get_or_init_as(
        &self,
        name: CellName,
        f: impl FnOnce() -> T,
    ) -> Result<&'static T, Rejected<T>> {
        if let Some(value) = self.get() {
            return Ok(value);
        }
        match self.initialize(name, || Ok::<T, Infallible>(f())) {
            Ok(value) => Ok(value),
            Err(InitError::Leak(rejected)) => Err(rejected),
            Err(InitError::Init(never)) => match never {},
        }
    }

    /// The value, initialised with `f` if the cell is empty; if `f` fails, its error is returned and the cell stays
    /// empty. Otherwise as [`get_or_init`](Self::get_or_init).
    ///
    /// # Errors
    ///
    /// - [`InitError::Init`] with `f`'s error: nothing was leaked or charged.
    /// - [`InitError::Leak`] with `f`'s value and the reason it could not be stored, as for
    ///   [`get_or_init`](Self::get_or_init).
    ///
    /// Either way the cell stays empty, and a later call may try again.
    ///
    /// # Panics
    ///
    /// As [`get_or_init`](Self::get_or_init): if `f` panics, or calls back into this cell on the same thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{InitError, LeakBudget, LeakOnce};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// static PORT: LeakOnce<u16> = LeakOnce::in_budget(&BUDGET);
    ///
    /// let bad = PORT.get_or_try_init(|| "http".parse::<u16>());
    /// assert!(matches!(bad, Err(InitError::Init(_))));
    /// assert!(PORT.get().is_none());
    ///
    /// let port = PORT.get_or_try_init(|| "8080".parse::<u16>())?;
    /// assert_eq!(*port, 8080);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[track_caller]
    pub fn get_or_try_init<E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<&'static T, InitError<T, E>> {
        if let Some(value) = self.get() {
            return Ok(value);
        }
        self.initialize(CellName::Typed(type_name::<T>()), f)
    }

    /// The slow path of the `get_or_*` methods: waits for the owner role or a published value.
    #[cold]
    #[track_caller]
    fn initialize<E>(&self, name: CellName, f: impl FnOnce() -> Result<T, E>) -> Result<&'static T, InitError<T, E>> {
        match self.publication.claim(name) {
            // SAFETY: by the `LeakOnce::publication` invariant the published address is that of a `T` leaked into a budget,
            // never freed, moved or borrowed mutably; `claim` loaded it with `Acquire`.
            Err(published) => Ok(unsafe { published.cast::<T>().as_ref() }),
            Ok(owner) => {
                // Should `f` panic, `owner` is dropped while unwinding: the cell stays empty and waiters wake up.
                let value = f().map_err(InitError::Init)?;
                self.store(owner, value).map_err(InitError::Leak)
            }
        }
    }

    /// Leaks `value` into the cell's budget and publishes it, as `owner`.
    fn store(&self, owner: Owner<'_>, value: T) -> Result<&'static T, Rejected<T>> {
        let budget = match self.budget {
            Some(budget) => budget,
            None => match LeakBudget::try_global() {
                Ok(budget) => budget,
                Err(error) => return Err(Rejected::new(value, error)),
            },
        };
        let value: &'static T = budget.leak(value)?;
        // The `LeakOnce::publication` invariant holds: `value` is a `T` leaked with `LeakBudget::leak`.
        owner.publish(value);
        Ok(value)
    }
}

impl<T> Default for LeakOnce<T> {
    /// An empty cell using the global budget, as [`LeakOnce::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug + 'static> fmt::Debug for LeakOnce<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cell = f.debug_struct("LeakOnce");
        match self.get() {
            Some(value) => cell.field("value", value),
            None => cell.field("value", &format_args!("<empty>")),
        };
        cell.field("budget", &self.budget.map_or("global", LeakBudget::name)).finish_non_exhaustive()
    }
}

/// Why [`LeakOnce::get_or_try_init`] returned no value: the initialiser's own error, or the budget's refusal of the
/// value it built. Either way the cell stays empty.
///
/// # Examples
///
/// ```
/// use leak_budget::{InitError, LeakBudget, LeakError, LeakOnce};
///
/// static NONE: LeakBudget = LeakBudget::new(0);
/// static LIMITS: LeakOnce<Vec<u32>> = LeakOnce::in_budget(&NONE);
///
/// match LIMITS.get_or_try_init(|| "1,2,x".split(',').map(str::parse).collect::<Result<Vec<u32>, _>>()) {
///     Err(InitError::Init(error)) => assert_eq!(error.to_string(), "invalid digit found in string"),
///     other => panic!("unexpected {other:?}"),
/// }
/// match LIMITS.get_or_try_init(|| "1,2,3".split(',').map(str::parse).collect::<Result<Vec<u32>, _>>()) {
///     Err(InitError::Leak(refused)) => {
///         assert!(matches!(refused.error(), LeakError::BudgetExceeded { .. }));
///         assert_eq!(refused.into_inner(), [1, 2, 3]); // the parsed value comes back
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum InitError<T, E> {
    /// The initialiser returned this error. Nothing was leaked or charged.
    Init(E),
    /// The initialiser built a value that could not be stored; it is given back with the reason.
    Leak(Rejected<T>),
}

/// Shows the initialiser's error, or the refusal (which names the value's type but does not show the value, so that
/// `unwrap()` works for every `T`).
impl<T, E: fmt::Debug> fmt::Debug for InitError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Init(error) => f.debug_tuple("Init").field(error).finish(),
            Self::Leak(rejected) => f.debug_tuple("Leak").field(rejected).finish(),
        }
    }
}

impl<T, E: fmt::Display> fmt::Display for InitError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Init(error) => write!(f, "the initialiser failed, so the cell stays empty: {error}"),
            Self::Leak(rejected) => write!(f, "the initialiser's {rejected}"),
        }
    }
}

impl<T, E: std::error::Error + 'static> std::error::Error for InitError<T, E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Init(error) => Some(error),
            Self::Leak(rejected) => Some(rejected.error()),
        }
    }
}

/// A `&LeakOnce<T>` cannot be used as a cell of a supertype of `T`, which could store a value that readers then use at
/// the narrower type: the cell is invariant in `T`.
///
/// ```compile_fail,E0308
/// # #![allow(unused)] // only the error under test may stop the compilation
/// use leak_budget::LeakOnce;
///
/// type AnyLifetime = for<'a> fn(&'a u8) -> &'a u8;
/// type StaticOnly = fn(&'static u8) -> &'static u8;
/// fn widen(cell: &LeakOnce<AnyLifetime>) -> &LeakOnce<StaticOnly> {
///     cell
/// }
/// ```
///
/// ```
/// use leak_budget::LeakOnce;
///
/// type AnyLifetime = for<'a> fn(&'a u8) -> &'a u8;
/// fn same(cell: &LeakOnce<AnyLifetime>) -> &LeakOnce<AnyLifetime> {
///     cell
/// }
/// let cell: LeakOnce<AnyLifetime> = LeakOnce::new();
/// assert!(same(&cell).get().is_none());
/// ```
#[cfg(doctest)]
pub struct Invariance;
