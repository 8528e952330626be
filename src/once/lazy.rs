//! [`LeakLazy`]: the `LazyLock` of leaked values, built on [`LeakOnce`].

use core::fmt;
use core::ops::Deref;

use super::LeakOnce;
use crate::budget::LeakBudget;
use crate::error::Rejected;

/// A value computed on first access and leaked into a budget: the `LazyLock` of `&'static` data.
///
/// The first access (through [`Deref`], [`force`](Self::force) or [`try_force`](Self::try_force)) runs `f`, leaks
/// its value into the budget, and from then on every thread gets the same `&'static T`. Usable in a `static`:
/// [`new`](Self::new) and [`in_budget`](Self::in_budget) are `const`.
///
/// # How it differs from `LazyLock`
///
/// - **No poisoning.** If `f` panics, nothing is stored and the next access runs `f` again (`LazyLock` poisons
///   itself for good). That is why `f` is an `Fn`, callable more than once, where `LazyLock` takes an `FnOnce`.
/// - **Bounded.** The value is charged to the budget; if the budget refuses it, [`Deref`] and `force` panic with a
///   message naming the budget and what to do, and [`try_force`](Self::try_force) gives the computed value back
///   instead. The lazy stays empty, so a later access (after [`LeakBudget::set_limit`], say) may succeed.
/// - **`&'static T`.** [`force`](Self::force) and [`get`](Self::get) hand out references that outlive the lazy
///   itself, and the value is never dropped.
/// - As with `LazyLock`, `f` runs at most once at a time: other threads that access the lazy meanwhile wait for it
///   (and run `f` themselves only if it panicked or was refused). `f` reading the same lazy is detected and panics
///   rather than waiting for itself; two lazies whose initialisers read each other from two threads at once wait for
///   each other forever, as two `LazyLock`s would.
///
/// `Sync` when `T: Sync` and `F: Sync` (the value is only ever shared, never moved to another thread or dropped, so
/// `T: Send` is not needed); unwind-safe when `T` is and `F` is `RefUnwindSafe` (`f` is called by reference, and
/// called again after a panic).
///
/// # Examples
///
/// ```
/// use leak_budget::{LeakBudget, LeakLazy};
///
/// #[derive(Debug)]
/// struct Config { workers: usize, name: String }
///
/// fn load() -> Config {
///     Config { workers: 4, name: String::from("demo") }
/// }
///
/// static BUDGET: LeakBudget = LeakBudget::named("config", 64 << 10);
/// static CONFIG: LeakLazy<Config> = LeakLazy::in_budget(&BUDGET, load);
///
/// assert_eq!(CONFIG.workers, 4); // the first access runs `load`
/// let config: &'static Config = LeakLazy::force(&CONFIG);
/// std::thread::spawn(move || assert_eq!(config.name, "demo")).join().unwrap();
/// ```
///
/// The fallible form, for a budget that may be full:
///
/// ```
/// use leak_budget::{LeakBudget, LeakLazy};
///
/// static NONE: LeakBudget = LeakBudget::new(0);
/// static TABLE: LeakLazy<[u32; 256]> = LeakLazy::in_budget(&NONE, || [7; 256]);
///
/// let refused = LeakLazy::try_force(&TABLE).unwrap_err();
/// assert_eq!(refused.into_inner()[0], 7); // the computed value comes back
/// assert!(LeakLazy::get(&TABLE).is_none());
///
/// NONE.set_limit(4096)?;
/// assert_eq!(LeakLazy::try_force(&TABLE).unwrap()[255], 7);
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
///
/// Like `LeakOnce`, it is invariant in `T` (a `compile_fail` test in `src/compile_fail_tests.rs` pins it).
pub struct LeakLazy<T: 'static, F = fn() -> T> {
    /// The published value, and the budget it is charged to. Invariant in `T`, as it stores and hands out `T`s.
    cell: LeakOnce<T>,
    /// The initialiser, called (by reference) until one call's value is stored.
    init: F,
}

impl<T: 'static, F> LeakLazy<T, F> {
    crate::sync::loom_const_fn! {
        /// A lazy value charged to the [global budget](LeakBudget::global).
        ///
        /// # Examples
        ///
        /// ```
        /// static GREETING: leak_budget::LeakLazy<String> = leak_budget::LeakLazy::new(|| "hello".repeat(2));
        /// assert_eq!(*GREETING, "hellohello");
        /// ```
        #[must_use]
        pub fn new(f: F) -> Self {
            Self { cell: LeakOnce::new(), init: f }
        }
    }

    crate::sync::loom_const_fn! {
        /// A lazy value charged to `budget`.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::{LeakBudget, LeakLazy};
        ///
        /// static BUDGET: LeakBudget = LeakBudget::new(4096);
        /// static PRIMES: LeakLazy<Vec<u32>> = LeakLazy::in_budget(&BUDGET, || vec![2, 3, 5, 7]);
        /// assert_eq!(PRIMES.len(), 4);
        /// assert!(BUDGET.reserved() > 0);
        /// ```
        #[must_use]
        pub fn in_budget(budget: &'static LeakBudget, f: F) -> Self {
            Self { cell: LeakOnce::in_budget(budget), init: f }
        }
    }
}

impl<T: 'static, F: Fn() -> T> LeakLazy<T, F> {
    /// The value, computing and leaking it on first access. Same as dereferencing.
    ///
    /// # Panics
    ///
    /// If the budget refuses the value (the message names the budget, the bytes needed and what to do: use
    /// [`try_force`](Self::try_force) to get the value back instead), if `f` panics (the lazy stays empty and the
    /// next access retries), or if `f` accesses this same lazy (it would wait for itself).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakLazy;
    ///
    /// static WORDS: LeakLazy<Vec<&str>> = LeakLazy::new(|| "a b c".split(' ').collect());
    /// let words: &'static Vec<&str> = LeakLazy::force(&WORDS);
    /// assert_eq!(words.len(), 3);
    /// ```
    #[track_caller]
    pub fn force(this: &Self) -> &'static T {
        match Self::try_force(this) {
            Ok(value) => value,
            Err(refused) => refused_panic(core::any::type_name::<T>(), refused.error()),
        }
    }

    /// The value, computing and leaking it on first access; if the budget refuses it, the computed value comes back.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding the value `f` computed and the budget's refusal. The lazy stays empty: a later access
    /// runs `f` again.
    ///
    /// # Panics
    ///
    /// If `f` panics (the lazy stays empty and the next access retries), or if `f` accesses this same lazy.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakLazy};
    ///
    /// static SMALL: LeakBudget = LeakBudget::new(1 << 10);
    /// static BIG: LeakLazy<[u8; 4096]> = LeakLazy::in_budget(&SMALL, || [1; 4096]);
    /// let refused = LeakLazy::try_force(&BIG).unwrap_err();
    /// assert_eq!(refused.value().len(), 4096);
    /// ```
    #[track_caller]
    pub fn try_force(this: &Self) -> Result<&'static T, Rejected<T>> {
        this.cell.get_or_init_as(super::CellName::Lazy(core::any::type_name::<T>()), || (this.init)())
    }
}

impl<T: 'static, F> LeakLazy<T, F> {
    /// The value if it has been computed and stored, without computing it or waiting for a thread that is.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakLazy;
    ///
    /// static ANSWER: LeakLazy<u64> = LeakLazy::new(|| 42);
    /// assert_eq!(LeakLazy::get(&ANSWER), None);
    /// assert_eq!(*ANSWER, 42);
    /// assert_eq!(LeakLazy::get(&ANSWER), Some(&42));
    /// ```
    #[must_use]
    pub fn get(this: &Self) -> Option<&'static T> {
        this.cell.get()
    }
}

/// Panics for a value the budget refused, naming the type and saying what the refusal says (the budget, the bytes
/// needed, what to do).
#[cold]
#[inline(never)]
#[track_caller]
fn refused_panic(type_name: &str, error: &crate::error::LeakError) -> ! {
    panic!(
        "LeakLazy<{type_name}>: the budget refused its value: {error}; use LeakLazy::try_force to get the value back \
         instead of this panic"
    )
}

impl<T: 'static, F: Fn() -> T> Deref for LeakLazy<T, F> {
    type Target = T;

    /// As [`LeakLazy::force`].
    #[track_caller]
    fn deref(&self) -> &T {
        Self::force(self)
    }
}

impl<T: fmt::Debug + 'static, F> fmt::Debug for LeakLazy<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lazy = f.debug_struct("LeakLazy");
        match Self::get(self) {
            Some(value) => lazy.field("value", value),
            None => lazy.field("value", &format_args!("<not computed>")),
        };
        lazy.finish_non_exhaustive()
    }
}
