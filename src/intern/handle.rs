//! [`Interned<T>`]: the handle an interner hands out, and its trait impls.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use super::Internable;
use super::entry::Values;
use crate::table::EntryRef;

/// A handle to a value interned by an [`Interner`](super::Interner): one pointer, `Copy`, compared and hashed by address in O(1).
///
/// Two handles from the same interner are equal exactly when their values are. Ordering is by value (ties between
/// equal values from different interners broken by address, so `Ord` agrees with `Eq`); `Debug` and `Display` show
/// the value. The value lives until the process exits: [`as_static`](Self::as_static) gives it as `&'static T`.
///
/// # Examples
///
/// ```
/// use leak_budget::{Interned, Interner, LeakBudget};
///
/// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
/// static NAMES: Interner<str> = Interner::in_budget(&BUDGET);
///
/// let a: Interned<str> = NAMES.intern("alpha")?;
/// let b = NAMES.intern(&String::from("alpha"))?;
/// assert_eq!(a, b); // pointer comparison
/// assert_eq!(&*a, "alpha");
/// assert_eq!(a.to_string(), "alpha");
/// assert_eq!(size_of::<Interned<str>>(), size_of::<usize>());
/// let name: &'static str = a.as_static();
/// assert_eq!(name, "alpha");
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
///
/// # Strings and byte strings
///
/// `Interned<str>` and `Interned<[u8]>` compare with the plain values they stand for (by value; two handles compare by
/// address, which for handles of one interner is the same thing).
///
/// There is deliberately no `Borrow<str>` for `Interned<str>` (nor `Borrow<[u8]>`): `Borrow` promises that a value
/// and its borrowed form hash and compare alike, and a handle hashes its address, not its characters, so a
/// `HashMap<Interned<str>, V>` looked up with a `&str` would silently miss. To turn a borrowed string into its
/// handle, ask the interner: [`Interner::get`](super::Interner::get) never allocates.
///
/// ```
/// use std::collections::HashMap;
/// use std::path::Path;
/// use leak_budget::{Interned, Interner};
///
/// static WORDS: Interner<str> = Interner::new();
/// let word = WORDS.intern("serde")?;
/// assert!(word == "serde" && "serde" == word && word == String::from("serde"));
/// let _: &std::ffi::OsStr = word.as_ref();
/// assert_eq!(AsRef::<Path>::as_ref(&word), Path::new("serde"));
/// let plain: &'static str = word.into();
///
/// let mut counts: HashMap<Interned<str>, u32> = HashMap::new();
/// *counts.entry(word).or_default() += 1;
/// let key = WORDS.get(plain).expect("interned above"); // a &str becomes its handle without allocating
/// assert_eq!(counts[&key], 1);
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
pub struct Interned<T: ?Sized + Internable> {
    /// An [`EntryRef<Values<T>>`](EntryRef), erased so that `T`'s variance is decided below, not by `T::Record`.
    entry: NonNull<u8>,
    /// Covariant in `T`, as `&'static T` is: a handle only reads its value, and nothing can be stored through it, so
    /// viewing it at a supertype of `T` is as sound as widening a `&'static T`. The containers that store values are
    /// invariant instead (see `marker::StoresShared`).
    values: PhantomData<&'static T>,
}

impl<T: ?Sized + Internable> Interned<T> {
    pub(super) fn new(entry: EntryRef<Values<T>>) -> Self {
        Self { entry: entry.erase(), values: PhantomData }
    }

    /// The interned value, for as long as the process runs.
    ///
    /// # Examples
    ///
    /// ```
    /// let answer: &'static str = leak_budget::Interner::<str>::new().intern("42")?.as_static();
    /// assert_eq!(answer, "42");
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn as_static(self) -> &'static T {
        // SAFETY: `entry` was erased from an `EntryRef<Values<T>>` (the field's invariant).
        T::value(unsafe { EntryRef::from_erased(self.entry) })
    }
}

// SAFETY: an `Interned<T>` is a `&'static T` in disguise (it only ever gives out shared references to an immutable,
// never-freed value), so it may cross threads exactly when `&T` may: when `T: Sync`.
unsafe impl<T: ?Sized + Internable + Sync> Send for Interned<T> {}
// SAFETY: as above: sharing an `Interned<T>` shares only `&T`.
unsafe impl<T: ?Sized + Internable + Sync> Sync for Interned<T> {}

impl<T: ?Sized + Internable> Clone for Interned<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized + Internable> Copy for Interned<T> {}

impl<T: ?Sized + Internable> Deref for Interned<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        self.as_static()
    }
}

impl<T: ?Sized + Internable> AsRef<T> for Interned<T> {
    fn as_ref(&self) -> &T {
        self.as_static()
    }
}

impl<T: ?Sized + Internable> PartialEq for Interned<T> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.entry == other.entry
    }
}

impl<T: ?Sized + Internable> Eq for Interned<T> {}

impl<T: ?Sized + Internable> Hash for Interned<T> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entry.hash(state);
    }
}

impl<T: ?Sized + Internable + Ord> PartialOrd for Interned<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: ?Sized + Internable + Ord> Ord for Interned<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.entry == other.entry {
            return Ordering::Equal;
        }
        self.as_static().cmp(other.as_static()).then_with(|| self.entry.cmp(&other.entry))
    }
}

impl<T: ?Sized + Internable + fmt::Debug> fmt::Debug for Interned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_static(), f)
    }
}

impl<T: ?Sized + Internable + fmt::Display> fmt::Display for Interned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_static(), f)
    }
}

// `Interned<str>` and `Interned<[u8]>` == the plain values they stand for, both ways round.
macro_rules! compares_with_plain_values {
    ($target:ty, [$($plain:ty),*]) => {$(
        impl PartialEq<$plain> for Interned<$target> {
            #[inline]
            fn eq(&self, other: &$plain) -> bool {
                <$target as PartialEq>::eq(self.as_static(), &other[..])
            }
        }

        impl PartialEq<Interned<$target>> for $plain {
            #[inline]
            fn eq(&self, other: &Interned<$target>) -> bool {
                <$target as PartialEq>::eq(&self[..], other.as_static())
            }
        }
    )*};
}

compares_with_plain_values!(str, [str, &str, String]);
compares_with_plain_values!([u8], [[u8], &[u8], Vec<u8>]);

impl AsRef<[u8]> for Interned<str> {
    fn as_ref(&self) -> &[u8] {
        self.as_static().as_bytes()
    }
}

impl AsRef<std::ffi::OsStr> for Interned<str> {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.as_static().as_ref()
    }
}

impl AsRef<std::path::Path> for Interned<str> {
    fn as_ref(&self) -> &std::path::Path {
        self.as_static().as_ref()
    }
}

impl From<Interned<str>> for &'static str {
    fn from(handle: Interned<str>) -> Self {
        handle.as_static()
    }
}

impl From<Interned<[u8]>> for &'static [u8] {
    fn from(handle: Interned<[u8]>) -> Self {
        handle.as_static()
    }
}
