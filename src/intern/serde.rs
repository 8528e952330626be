//! The `serde` feature: interned handles serialize as the values they stand for, and deserialize by interning.
//!
//! - `Serialize` for every `Interned<T>` whose `T` is `Serialize` (a string for `Interned<str>`).
//! - `Deserialize` for `Interned<str>` and `Interned<[u8]>`, into process-wide interners on the
//!   [global budget](crate::LeakBudget::global) (the one [`intern`](crate::intern) uses, for strings).
//! - `DeserializeSeed` for `&Interner<str>` and `&Interner<[u8]>`, to intern into a chosen interner (and budget).
//!
//! A value the budget refuses is a deserialization error that says so (with the budget's own message: which budget,
//! how many bytes, what to do), never a panic.

use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

use super::{Internable, Interned, Interner};
use crate::error::LeakError;

impl<T: ?Sized + Internable + Serialize> Serialize for Interned<T> {
    /// Serializes the value the handle stands for.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_static().serialize(serializer)
    }
}

/// The error for a value an interner refused.
fn refused<E: de::Error>(error: &LeakError) -> E {
    E::custom(format_args!("the interner's budget refused the value: {error}"))
}

/// Interns the strings a deserializer gives.
struct StrVisitor<'a>(&'a Interner<str>);

impl Visitor<'_> for StrVisitor<'_> {
    type Value = Interned<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Interned<str>, E> {
        self.0.intern(value).map_err(|error| refused(&error))
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Interned<str>, E> {
        let value = core::str::from_utf8(value).map_err(|_| E::invalid_value(de::Unexpected::Bytes(value), &self))?;
        self.visit_str(value)
    }
}

/// Interns the byte strings a deserializer gives (as bytes, or as a sequence of numbers, as JSON has them).
struct BytesVisitor<'a>(&'a Interner<[u8]>);

impl<'de> Visitor<'de> for BytesVisitor<'_> {
    type Value = Interned<[u8]>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Interned<[u8]>, E> {
        self.0.intern(value).map_err(|error| refused(&error))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Interned<[u8]>, E> {
        self.visit_bytes(value.as_bytes())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Interned<[u8]>, A::Error> {
        // The size hint is only a hint (a format may lie): it bounds the first reservation, no more.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        self.visit_bytes(&bytes)
    }
}

/// Interns into this interner while deserializing.
///
/// # Examples
///
/// ```
/// use serde::de::DeserializeSeed;
/// use leak_budget::{Interner, LeakBudget};
///
/// static BUDGET: LeakBudget = LeakBudget::named("names", 64 << 10);
/// static NAMES: Interner<str> = Interner::in_budget(&BUDGET);
///
/// let mut json = serde_json::Deserializer::from_str(r#""alpha""#);
/// let name = (&NAMES).deserialize(&mut json)?;
/// assert_eq!(name, "alpha");
/// assert_eq!(NAMES.get("alpha"), Some(name));
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> DeserializeSeed<'de> for &Interner<str> {
    type Value = Interned<str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Interned<str>, D::Error> {
        deserializer.deserialize_str(StrVisitor(self))
    }
}

/// Interns into this interner while deserializing (bytes, or a sequence of numbers).
impl<'de> DeserializeSeed<'de> for &Interner<[u8]> {
    type Value = Interned<[u8]>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Interned<[u8]>, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor(self))
    }
}

/// The process-wide byte-string interner `Interned<[u8]>` deserializes into, on the global budget.
#[cfg(not(loom))]
static BYTES: Interner<[u8]> = Interner::new();

/// Interns the string into the process-wide interner of [`intern`](crate::intern), on the global budget.
///
/// # Examples
///
/// ```
/// use leak_budget::Interned;
///
/// let words: Vec<Interned<str>> = serde_json::from_str(r#"["a", "b", "a"]"#)?;
/// assert_eq!(words[0], words[2]); // the same handle
/// assert_eq!(serde_json::to_string(&words)?, r#"["a","b","a"]"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[cfg(not(loom))]
impl<'de> serde::Deserialize<'de> for Interned<str> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor(super::global_strings()))
    }
}

/// Interns the byte string into a process-wide interner on the global budget.
#[cfg(not(loom))]
impl<'de> serde::Deserialize<'de> for Interned<[u8]> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor(&BYTES))
    }
}
