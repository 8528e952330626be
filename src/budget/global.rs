//! The process-wide default budget, sized by the `LEAK_BUDGET` environment variable, and free functions on it.

use super::LeakBudget;
use crate::config::global_limit_from_env;
use crate::error::{LeakError, Rejected};
use crate::sync::process::OnceLock;

/// The global budget, or why `LEAK_BUDGET` could not be used. Decided once, on first use.
static GLOBAL: OnceLock<Result<LeakBudget, LeakError>> = OnceLock::new();

impl LeakBudget {
    /// The process-wide default budget, named `"global"`.
    ///
    /// Its limit is read once, on first use, from the environment variable `LEAK_BUDGET` (a byte count with an
    /// optional unit, as [`parse_size`](crate::parse_size) accepts: `512MiB`, `2G`, `1048576`), or is
    /// [`DEFAULT_GLOBAL_LIMIT`](crate::DEFAULT_GLOBAL_LIMIT) (256 MiB) when the variable is unset.
    ///
    /// # Panics
    ///
    /// If `LEAK_BUDGET` is set to something that is not a valid size: an invalid value is never silently replaced by
    /// a default. Call [`try_global`](Self::try_global) to get the error instead (the free functions
    /// [`leak`] and [`leak_str`] do, and return it).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// let global = LeakBudget::global();
    /// assert_eq!(global.name(), "global");
    /// let motd: &'static str = global.leak_str("welcome")?;
    /// assert_eq!(motd, "welcome");
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    #[track_caller]
    pub fn global() -> &'static LeakBudget {
        match Self::try_global() {
            Ok(budget) => budget,
            Err(error) => panic!("{error}"),
        }
    }

    /// The process-wide default budget, or the reason `LEAK_BUDGET` is not usable.
    ///
    /// # Errors
    ///
    /// [`LeakError::InvalidConfig`] naming the variable, its value and what is wrong with it. The answer is decided
    /// once per process: changing the variable later has no effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// match LeakBudget::try_global() {
    ///     Ok(budget) => println!("leaking up to {} bytes", budget.limit()),
    ///     Err(error) => eprintln!("error: {error}"),
    /// }
    /// ```
    pub fn try_global() -> Result<&'static LeakBudget, LeakError> {
        GLOBAL.get_or_init(|| global_limit_from_env().map(LeakBudget::new_global)).as_ref().map_err(Clone::clone)
    }
}

/// Leaks `value` into the [global budget](LeakBudget::global).
///
/// # Errors
///
/// As [`LeakBudget::leak`], and [`LeakError::InvalidConfig`] (with the value given back) if `LEAK_BUDGET` is invalid.
///
/// # Examples
///
/// ```
/// let answer: &'static mut u32 = leak_budget::leak(42)?;
/// *answer += 1;
/// assert_eq!(*answer, 43);
/// # Ok::<(), leak_budget::Rejected<u32>>(())
/// ```
pub fn leak<T: 'static>(value: T) -> Result<&'static mut T, Rejected<T>> {
    match LeakBudget::try_global() {
        Ok(budget) => budget.leak(value),
        Err(error) => Err(Rejected::new(value, error)),
    }
}

/// Copies `s` into the [global budget](LeakBudget::global).
///
/// # Errors
///
/// As [`LeakBudget::leak_str`], and [`LeakError::InvalidConfig`] if `LEAK_BUDGET` is invalid.
///
/// # Examples
///
/// ```
/// let name: &'static str = leak_budget::leak_str(&format!("worker-{}", 3))?;
/// assert_eq!(name, "worker-3");
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
pub fn leak_str(s: &str) -> Result<&'static str, LeakError> {
    LeakBudget::try_global()?.leak_str(s)
}
