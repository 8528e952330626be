//! Errors: [`LeakError`] says why a request was refused; [`Rejected`] pairs it with the value the caller handed in, so
//! nothing is lost when a budget says no.

use core::fmt;

/// Why a budget refused a request.
///
/// Every variant leaves the budget exactly as it was before the call (apart from its rejection counter), so the caller
/// may retry, fall back to an owned value, or report the error. One qualification: bookkeeping the request obtained
/// before it failed (the budget's record on its first request, a lane for the calling thread) stays charged and serves
/// later requests; this happens after [`AllocFailed`](Self::AllocFailed), or when a concurrent request takes the room
/// between the two. After `AllocFailed`, `peak_reserved` also includes the refunded charge.
///
/// # Examples
///
/// ```
/// use leak_budget::{LeakBudget, LeakError};
///
/// static TINY: LeakBudget = LeakBudget::new(0);
/// let err = TINY.leak_str("no room").unwrap_err();
/// assert!(matches!(err, LeakError::BudgetExceeded { limit: 0, remaining: 0, .. }));
/// assert!(err.to_string().contains("raise this budget's limit"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeakError {
    /// The request does not fit in what is left of a budget (the one it was made on, or an ancestor).
    #[error(
        "leak budget `{budget}` exceeded: {}, but only {remaining} of its {limit} bytes remain; {}",
        needs(*requested, *value),
        advice(*global)
    )]
    BudgetExceeded {
        /// Name of the budget that refused: the one the request was made on, or the ancestor that had no room.
        budget: &'static str,
        /// Bytes the request would have charged: the value, alignment padding, and any bookkeeping it needed (a
        /// chunk header, a new lane, the budget's own record on first use).
        requested: usize,
        /// Of `requested`, the bytes of the value itself (what `size_of_val` gives), so that the bookkeeping shows as
        /// the difference. Equal to `requested` when the request is not for one value (a table's growth, a
        /// child's record).
        value: usize,
        /// Whether the refusing budget is the [global budget](crate::LeakBudget::global), whose limit `LEAK_BUDGET`
        /// sets: the message then says so.
        global: bool,
        /// `limit - reserved` of the refusing budget when the request was refused.
        remaining: usize,
        /// The refusing budget's limit.
        limit: usize,
    },
    /// `len` elements of `elem_size` bytes (plus bookkeeping) do not fit in `isize::MAX` bytes.
    #[error(
        "cannot leak {len} element(s) of {elem_size} bytes: the total size overflows isize::MAX; split the request"
    )]
    SizeOverflow {
        /// Size of one element in bytes.
        elem_size: usize,
        /// Number of elements requested.
        len: usize,
    },
    /// The requested alignment is larger than [`MAX_ALIGN`](crate::MAX_ALIGN) (2^29, the largest any Rust type has).
    #[error("alignment {align} is not supported: the largest supported alignment is 2^29 (536870912)")]
    UnsupportedAlignment {
        /// The alignment that was asked for.
        align: usize,
    },
    /// The global allocator returned null. The budget's charge for the request was refunded.
    #[error("the global allocator could not provide {size} bytes (alignment {align}); the system may be out of memory")]
    AllocFailed {
        /// Bytes asked of the allocator.
        size: usize,
        /// Alignment asked of the allocator.
        align: usize,
    },
    /// A size string (such as `64MiB`) could not be parsed; see [`parse_size`](crate::parse_size).
    #[error(
        "invalid size {input:?}: {reason}; expected a byte count with an optional unit k/KiB, M/MiB, G/GiB or T/TiB \
         (powers of 1024, case-insensitive), e.g. 64MiB"
    )]
    InvalidSize {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An environment variable that configures the crate holds a value that is not accepted.
    #[error(
        "invalid {var}={value:?}: {reason}; expected a byte count with an optional unit k/KiB, M/MiB, G/GiB or T/TiB \
         (powers of 1024, case-insensitive), e.g. {var}=64MiB, or unset it to use the default"
    )]
    InvalidConfig {
        /// The environment variable, e.g. `LEAK_BUDGET`.
        var: &'static str,
        /// Its value (lossily decoded if it was not UTF-8).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A [`LeakOnce`](crate::LeakOnce) already holds a value, so the one offered to
    /// [`set`](crate::LeakOnce::set) was not stored (nothing was charged).
    #[error(
        "the cell already holds a value, so this one was not stored and nothing was charged; read the stored value \
         with `get`, or use `get_or_init` to set it only when empty"
    )]
    AlreadySet,
    /// The budget's parent chain leads back to itself: it is its own ancestor (`static A: LeakBudget =
    /// LeakBudget::child_of(&A, ..)`, or a longer loop such as `A → B → A`), so it has no root to charge and can never
    /// have a record. Every request that would charge it, or a budget whose chain runs into the loop, is refused; its
    /// `const` accessors and figures keep answering (with zeros, and the refusals counted). `budget` is the first
    /// budget of the requesting budget's chain that lies on the loop (the requesting budget itself if it does).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError};
    ///
    /// static LOOP: LeakBudget = LeakBudget::child_of(&LOOP, "loop", 1 << 20);
    /// static UNDER: LeakBudget = LeakBudget::child_of(&LOOP, "under", 1 << 20);
    ///
    /// assert_eq!(LOOP.leak_str("x").unwrap_err(), LeakError::ParentCycle { budget: "loop" });
    /// assert_eq!(UNDER.register().unwrap_err(), LeakError::ParentCycle { budget: "loop" });
    /// assert_eq!((LOOP.limit(), LOOP.reserved(), LOOP.stats().rejections), (1 << 20, 0, 1));
    /// assert!(LOOP.leak(1u8).unwrap_err().to_string().contains("leads back to itself"));
    /// ```
    #[error(
        "leak budget `{budget}` is its own ancestor: its parent chain leads back to itself, so nothing can be charged \
         to it or to a budget under it; build the tree from a root (a budget made with `new` or `named`)"
    )]
    ParentCycle {
        /// Name of the budget on the loop: the requesting budget, or its nearest ancestor that is its own ancestor.
        budget: &'static str,
    },
    /// The budget was asked for memory by the very thread that is creating its record: a custom global allocator
    /// that leaks into a budget while serving that budget's first request, say. Waiting for the record would wait
    /// for itself, so the request is refused instead (the outer request, and later ones, proceed as usual). Requests
    /// from other threads wait for the record briefly, as always.
    ///
    /// Register such a budget (and its ancestors) at start-up, before the allocator can re-enter it:
    /// [`register`](crate::LeakBudget::register) creates the records, after which re-entry is served like any request.
    #[error(
        "leak budget `{budget}` was asked for memory by the thread that is creating its record (a global allocator \
         leaking into the budget it serves?); refused rather than waiting for itself: call `register()` on the \
         budget at start-up"
    )]
    Reentrant {
        /// Name of the budget whose record the calling thread is creating: the requesting budget or an ancestor.
        budget: &'static str,
    },
    /// The limit of a prepaid child cannot change once its record exists: its whole limit was charged to its parent
    /// then ([`LeakBudget::set_limit`](crate::LeakBudget::set_limit)).
    #[error(
        "the limit of budget `{budget}` cannot change: it is a prepaid child, whose whole limit was charged to its \
         parent when its record was created; give it a new prepaid child with the limit wanted instead"
    )]
    FixedLimit {
        /// Name of the prepaid budget.
        budget: &'static str,
    },
}

/// What a refused request needed, for [`LeakError::BudgetExceeded`]'s message.
fn needs(requested: usize, value: usize) -> String {
    if value < requested {
        format!(
            "this {value}-byte value needs {requested} bytes with the budget's bookkeeping ({} for a chunk header, \
             alignment padding, a lane or the budget's record)",
            requested - value
        )
    } else {
        format!("this request needs {requested} bytes")
    }
}

/// What to do about a refusal, for [`LeakError::BudgetExceeded`]'s message.
fn advice(global: bool) -> &'static str {
    if global {
        "raise the global budget's limit: set LEAK_BUDGET (e.g. LEAK_BUDGET=512MiB), or call \
         LeakBudget::global().set_limit"
    } else {
        "raise this budget's limit where it is declared, or call set_limit on it"
    }
}

impl LeakError {
    /// The error of a request for `requested` bytes that a budget refused, `remaining` of its `limit` left.
    pub(crate) const fn exceeded(
        budget: &'static str,
        global: bool,
        requested: usize,
        remaining: usize,
        limit: usize,
    ) -> Self {
        Self::BudgetExceeded { budget, requested, value: requested, global, remaining, limit }
    }

    /// This error, for a request whose value itself is `value` bytes (the rest of `requested` is bookkeeping).
    pub(crate) fn for_value(self, value: usize) -> Self {
        match self {
            Self::BudgetExceeded { budget, requested, global, remaining, limit, .. } => {
                Self::BudgetExceeded { budget, requested, value: value.min(requested), global, remaining, limit }
            }
            other => other,
        }
    }

    /// The one way the crate reports a size that cannot be described: `len` elements of `elem_size` bytes (a single
    /// value, or a layout, is one element of its size).
    pub(crate) const fn size_overflow(elem_size: usize, len: usize) -> Self {
        Self::SizeOverflow { elem_size, len }
    }
}

/// A refused request that gives the caller's value back: nothing is dropped or lost.
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static EMPTY: LeakBudget = LeakBudget::new(0);
/// let refused = EMPTY.leak(String::from("precious")).unwrap_err();
/// assert!(matches!(refused.error(), leak_budget::LeakError::BudgetExceeded { .. }));
/// assert_eq!(refused.into_inner(), "precious");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Rejected<T> {
    value: T,
    error: LeakError,
}

impl<T> Rejected<T> {
    /// Pairs a value with the reason it was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakError, Rejected};
    ///
    /// let r = Rejected::new(7, LeakError::UnsupportedAlignment { align: 1 << 30 });
    /// assert_eq!(r.into_parts(), (7, LeakError::UnsupportedAlignment { align: 1 << 30 }));
    /// ```
    pub const fn new(value: T, error: LeakError) -> Self {
        Self { value, error }
    }

    /// Why the value was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static EMPTY: LeakBudget = LeakBudget::new(0);
    /// let refused = EMPTY.leak([1u8; 8]).unwrap_err();
    /// assert!(refused.error().to_string().contains("exceeded"));
    /// ```
    pub const fn error(&self) -> &LeakError {
        &self.error
    }

    /// A shared reference to the value that was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static EMPTY: LeakBudget = LeakBudget::new(0);
    /// assert_eq!(*EMPTY.leak(5u64).unwrap_err().value(), 5);
    /// ```
    pub const fn value(&self) -> &T {
        &self.value
    }

    /// Gives the refused value back.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static EMPTY: LeakBudget = LeakBudget::new(0);
    /// let v = EMPTY.leak_vec(vec![1, 2, 3]).unwrap_err().into_inner();
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Splits into the value and the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static EMPTY: LeakBudget = LeakBudget::new(0);
    /// let (value, error) = EMPTY.leak('x').unwrap_err().into_parts();
    /// assert_eq!(value, 'x');
    /// assert!(matches!(error, leak_budget::LeakError::BudgetExceeded { .. }));
    /// ```
    pub fn into_parts(self) -> (T, LeakError) {
        (self.value, self.error)
    }

    /// Applies `f` to the value, keeping the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakError, Rejected};
    ///
    /// let r = Rejected::new(2, LeakError::UnsupportedAlignment { align: 1 << 30 });
    /// assert_eq!(r.map(|v| v * 10).into_inner(), 20);
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Rejected<U> {
        Rejected { value: f(self.value), error: self.error }
    }
}

/// Shows the error and the type of the value, not the value itself, so that `unwrap()` and `expect()` work for every
/// `T`, `Debug` or not.
impl<T> fmt::Debug for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("value", &format_args!("<{}>", core::any::type_name::<T>()))
            .field("error", &self.error)
            .finish()
    }
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value of type {} was not leaked: {}", core::any::type_name::<T>(), self.error)
    }
}

impl<T> std::error::Error for Rejected<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<Rejected<T>> for LeakError {
    /// Drops the value and keeps the reason, for callers that only propagate errors.
    fn from(rejected: Rejected<T>) -> Self {
        rejected.error
    }
}

/// Why [`LeakBudget::leak_try_with`](crate::LeakBudget::leak_try_with) returned no value: the budget refused the room
/// (the initialiser did not run), or the initialiser failed.
///
/// # Examples
///
/// ```
/// use leak_budget::{LeakBudget, LeakError, TryWithError};
///
/// static NONE: LeakBudget = LeakBudget::new(0);
/// let error = NONE.leak_try_with(|| Ok::<_, String>(1u32)).unwrap_err();
/// assert!(matches!(error, TryWithError::Leak(LeakError::BudgetExceeded { .. })));
/// assert!(error.to_string().starts_with("no room was reserved"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryWithError<E> {
    /// The budget refused the room; the initialiser was not called.
    Leak(LeakError),
    /// The initialiser returned this error. The room reserved for its value stays charged.
    Init(E),
}

impl<E: fmt::Display> fmt::Display for TryWithError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leak(error) => write!(f, "no room was reserved, so the initialiser did not run: {error}"),
            Self::Init(error) => write!(f, "the initialiser failed: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TryWithError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Leak(error) => Some(error),
            Self::Init(error) => Some(error),
        }
    }
}
