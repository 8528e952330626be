//! [`Cached<V>`], what a cache look-up returns, and [`CacheStats`], how a cache has been used.

use core::fmt;
use core::ops::Deref;

#[cfg(doc)]
use super::StaticCache;
#[cfg(doc)]
use crate::error::Rejected;

/// A value from a [`StaticCache`]: the cached `&'static V`, or, when the cache is full, the value computed for this
/// call alone. Either way it dereferences to `V`, so code that only reads it need not care which.
///
/// # Examples
///
/// ```
/// use leak_budget::{Cached, LeakBudget, StaticCache};
///
/// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
/// static LENGTHS: StaticCache<u64, String> = StaticCache::in_budget(&BUDGET);
///
/// let first: Cached<String> = LENGTHS.get_or_insert_with(&7, |n| format!("{n} bytes"));
/// assert_eq!(first.len(), 7); // `String::len` through `Deref`
/// assert!(first.is_static());
/// let again = LENGTHS.get_or_insert_with(&7, |_| unreachable!("cached"));
/// assert!(core::ptr::eq(first.as_static().unwrap(), again.as_static().unwrap()));
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Cached<V: 'static> {
    /// The cached value, shared by every caller for as long as the process runs.
    Static(&'static V),
    /// A value computed for this call and not cached, because the cache is full.
    Owned(V),
}

impl<V: 'static> Cached<V> {
    /// Whether the value is cached.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::Cached;
    ///
    /// assert!(Cached::Static(&5).is_static());
    /// assert!(!Cached::Owned(5).is_static());
    /// ```
    #[must_use]
    pub const fn is_static(&self) -> bool {
        matches!(self, Self::Static(_))
    }

    /// The cached `&'static V`, if the value is cached.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::Cached;
    ///
    /// static FIVE: u32 = 5;
    /// assert_eq!(Cached::Static(&FIVE).as_static(), Some(&5));
    /// assert_eq!(Cached::Owned(5).as_static(), None);
    /// ```
    #[must_use]
    pub const fn as_static(&self) -> Option<&'static V> {
        match self {
            Self::Static(value) => Some(*value),
            Self::Owned(_) => None,
        }
    }

    /// The value, cloned out of the cache if it is cached.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::Cached;
    ///
    /// static NAME: String = String::new();
    /// assert_eq!(Cached::Static(&NAME).into_owned(), "");
    /// assert_eq!(Cached::Owned(String::from("x")).into_owned(), "x");
    /// ```
    #[must_use]
    pub fn into_owned(self) -> V
    where
        V: Clone,
    {
        match self {
            Self::Static(value) => value.clone(),
            Self::Owned(value) => value,
        }
    }
}

impl<V: 'static> Deref for Cached<V> {
    type Target = V;

    #[inline]
    fn deref(&self) -> &V {
        match self {
            Self::Static(value) => value,
            Self::Owned(value) => value,
        }
    }
}

impl<V: 'static> AsRef<V> for Cached<V> {
    fn as_ref(&self) -> &V {
        self
    }
}

impl<V: 'static> core::borrow::Borrow<V> for Cached<V> {
    fn borrow(&self) -> &V {
        self
    }
}

/// Compares the values, whether cached or not (as `Cow` does).
impl<V: PartialEq + 'static> PartialEq for Cached<V> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<V: Eq + 'static> Eq for Cached<V> {}

impl<V: fmt::Display + 'static> fmt::Display for Cached<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// How a [`StaticCache`] has been used, from [`StaticCache::stats`]. Counts the `*_insert_with` calls; [`get`] is
/// a plain look-up and is not counted.
///
/// Every such call that got past hashing its key is either a hit or a miss. Each figure is exact when read; while
/// other threads use the cache, the figures are read one after another and may come from slightly different
/// instants.
///
/// # Examples
///
/// ```
/// use leak_budget::{LeakBudget, StaticCache};
///
/// static BUDGET: LeakBudget = LeakBudget::new(64 << 10);
/// static SQUARES: StaticCache<u32, u64> = StaticCache::in_budget(&BUDGET);
///
/// for n in [3, 4, 3, 3] {
///     SQUARES.get_or_insert_with(&n, |&n| u64::from(n) * u64::from(n));
/// }
/// let stats = SQUARES.stats();
/// assert_eq!((stats.hits, stats.misses, stats.degraded, stats.waits), (2, 2, 0, 0));
/// assert_eq!(stats.to_string(), "4 look-ups: 2 hits, 2 misses (0 degraded), 0 waits");
/// ```
///
/// [`get`]: StaticCache::get
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered from the cache, including those that waited for another thread to compute the value.
    pub hits: usize,
    /// Calls that ran their initialiser (whatever came of it: a cached value, an uncached one, an error or a panic).
    pub misses: usize,
    /// Misses whose value was handed back uncached ([`Cached::Owned`], or [`Rejected`]) because the cache is full.
    pub degraded: usize,
    /// Calls that waited for another thread computing the same key (they count as hits if they then found it).
    pub waits: usize,
}

impl CacheStats {
    /// `hits + misses`: the calls counted.
    ///
    /// # Examples
    ///
    /// ```
    /// static CACHE: leak_budget::StaticCache<u8, u8> = leak_budget::StaticCache::new();
    /// CACHE.get_or_insert_with(&1, |&k| k);
    /// CACHE.get_or_insert_with(&1, |&k| k);
    /// assert_eq!(CACHE.stats().lookups(), 2);
    /// ```
    #[must_use]
    pub const fn lookups(&self) -> usize {
        self.hits.saturating_add(self.misses)
    }

    /// `hits / lookups`, or 0 before the first look-up.
    ///
    /// # Examples
    ///
    /// ```
    /// static CACHE: leak_budget::StaticCache<u8, u8> = leak_budget::StaticCache::new();
    /// assert_eq!(CACHE.stats().hit_rate(), 0.0);
    /// for _ in 0..4 {
    ///     CACHE.get_or_insert_with(&1, |&k| k);
    /// }
    /// assert_eq!(CACHE.stats().hit_rate(), 0.75);
    /// ```
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        if self.lookups() == 0 { 0.0 } else { self.hits as f64 / self.lookups() as f64 }
    }
}

impl fmt::Display for CacheStats {
    /// `N look-ups: H hits, M misses (D degraded), W waits`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} look-ups: {} hits, {} misses ({} degraded), {} waits",
            self.lookups(),
            self.hits,
            self.misses,
            self.degraded,
            self.waits
        )
    }
}
