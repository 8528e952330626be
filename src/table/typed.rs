//! [`TypedTable<E>`]: the table of one kind of entry, and the one place where the table's untyped pointers become
//! typed ones ([`EntryRef<E>`]).
//!
//! The argument, made once here instead of at every look-up: only [`TypedTable::find_or_insert`] puts entries into a
//! `TypedTable<E>`, and it puts only what [`Insert::make`] returned, which the `unsafe` trait [`Insert<E>`] promises is
//! a fully written entry of kind `E`. So every pointer the table hands out is such an entry.
//!
//! `E` is a kind of entry ([`EntryKind`]): the entries start with an `E::Head` and may lay out more after it.

use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use super::{RawInsert, Table};
use crate::budget::LeakBudget;
use crate::error::Rejected;
use crate::sync::UserCode;

/// A kind of entry: what the entries of a [`TypedTable<Self>`](TypedTable) are.
pub trait EntryKind: 'static {
    /// The type every entry of this kind starts with (for most kinds, the whole entry); a kind may lay out more after
    /// it, as its documentation says.
    type Head: 'static;
}

/// A value to insert into a [`TypedTable<E>`]: how to compare it with the entries there, how to rehash those entries
/// when a bucket splits, and how to make its own entry.
///
/// # Safety
///
/// [`make`](Self::make) must return a pointer to an entry of kind `E` (an `E::Head`, followed by whatever `E`'s
/// documentation says follows it) that is fully written, is never written, moved or freed afterwards, and whose provenance covers
/// the whole entry. Every [`EntryRef<E>`] rests on this promise.
pub(crate) unsafe trait Insert<E: EntryKind>: Sized {
    /// Whether `entry` holds a value equal to the one being inserted. User code (`Eq`), run under the shard lock; may
    /// panic.
    fn matches(&self, entry: EntryRef<E>) -> bool;
    /// The hash `entry` was inserted with, to split buckets. Must not panic.
    fn rehash(&self, entry: EntryRef<E>) -> u64;
    /// The layout [`make`](Self::make) allocates, so that an insert that cannot fit is refused before it changes
    /// anything.
    fn layout(&self) -> Layout;
    /// Leaks the new entry into `budget`, laid out as [`layout`](Self::layout) says. May run user code (`Clone`), under
    /// the shard lock, but only before it allocates; a refusal gives the value back.
    fn make(self, budget: &LeakBudget) -> Result<NonNull<E::Head>, Rejected<Self>>;
}

/// An entry of a [`TypedTable<E>`]: one pointer, `Copy`, compared by address. (`pub` only because the sealed trait
/// behind `Internable` names it; it is not reachable from outside the crate.)
pub struct EntryRef<E: EntryKind> {
    /// Points to an entry of kind `E` returned by [`Insert::make`]: fully written, never written, moved or freed again,
    /// with provenance over the whole entry. Only [`TypedTable`] makes an `EntryRef` from a pointer it holds (or
    /// [`from_erased`](Self::from_erased) gives one back).
    entry: NonNull<E::Head>,
}

impl<E: EntryKind> EntryRef<E> {
    /// The entry behind a pointer of a `TypedTable<E>`, which holds only entries of kind `E` (the module note).
    #[inline(always)]
    fn from_table(entry: NonNull<u8>) -> Self {
        Self { entry: entry.cast() }
    }

    /// The entry's head (for most kinds, the whole entry).
    #[inline(always)]
    pub(crate) fn get(self) -> &'static E::Head {
        // SAFETY: the `entry` invariant: it starts with a fully written `E::Head`, never written, moved or freed again.
        unsafe { self.entry.as_ref() }
    }

    /// A pointer to the entry whose provenance covers all of it, for kinds that lay out more after the head (a
    /// reference to the head covers the head alone).
    #[inline(always)]
    pub(crate) fn as_ptr(self) -> NonNull<E::Head> {
        self.entry
    }

    /// The entry's address, untyped: for a handle that must not name `E` (whose variance `E` would decide).
    #[inline(always)]
    pub(crate) fn erase(self) -> NonNull<u8> {
        self.entry.cast()
    }

    /// The entry that [`erase`](Self::erase) gave `entry` for.
    ///
    /// # Safety
    ///
    /// `entry` must come from `erase` on an `EntryRef<E>` of this same `E`.
    #[inline(always)]
    pub(crate) unsafe fn from_erased(entry: NonNull<u8>) -> Self {
        Self { entry: entry.cast() }
    }
}

impl<E: EntryKind> Clone for EntryRef<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: EntryKind> Copy for EntryRef<E> {}

impl<E: EntryKind> PartialEq for EntryRef<E> {
    fn eq(&self, other: &Self) -> bool {
        self.entry == other.entry
    }
}

impl<E: EntryKind> Eq for EntryRef<E> {}

impl<E: EntryKind> fmt::Debug for EntryRef<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EntryRef").field(&self.entry).finish()
    }
}

/// The table of one kind of entry `E`. Lives in a budget (inside its owner's state) and is never freed.
pub(crate) struct TypedTable<E> {
    /// Invariant: holds only pointers returned by an [`Insert<E>::make`]: only
    /// [`find_or_insert`](Self::find_or_insert) inserts.
    raw: Table,
    /// Invariant in `E`: entries of `E` are stored and handed out again.
    entries: PhantomData<fn(E) -> E>,
}

impl<E> TypedTable<E> {
    /// An empty table, its shards leaked into `budget` (as many as its limit affords). Directories and buckets are
    /// created, in the budget, by the first inserts.
    pub(crate) fn new(budget: &LeakBudget) -> Result<Self, crate::error::LeakError> {
        Ok(Self { raw: Table::new(budget)?, entries: PhantomData })
    }

    /// Entries in the table: at least every entry the calling thread can find (each is counted before it is
    /// published), and at most that plus the inserts under way.
    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }
}

impl<E: EntryKind> TypedTable<E> {
    /// Finds an entry with this `hash` for which `eq` holds, without locking or allocating. May miss an entry that is
    /// being moved by a concurrent split: a caller about to insert must use [`find_or_insert`](Self::find_or_insert),
    /// and a caller that must not miss falls back to [`find_locked`](Self::find_locked).
    #[inline(always)]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(EntryRef<E>) -> bool) -> Option<EntryRef<E>> {
        self.raw.find(hash, |entry| eq(EntryRef::from_table(entry))).map(EntryRef::from_table)
    }

    /// As [`find`](Self::find), but under the shard lock, so it cannot miss an entry inserted before the call. `eq`
    /// is user code run under the lock, described by `user` (see [`UserCode`]).
    #[track_caller]
    pub(crate) fn find_locked(
        &self,
        user: UserCode,
        hash: u64,
        mut eq: impl FnMut(EntryRef<E>) -> bool,
    ) -> Option<EntryRef<E>> {
        self.raw.find_locked(user, hash, |entry| eq(EntryRef::from_table(entry))).map(EntryRef::from_table)
    }

    /// Finds an entry equal to `insert`'s value, or inserts the one `insert` makes; `insert` is dropped (after the
    /// shard lock is released) when an equal entry is there. User code in `insert` runs under the shard lock, described
    /// by `user`.
    ///
    /// Entries are made and charged at most once per distinct value; a refusal changes nothing but growth made for
    /// an entry whose `make` then panicked (see the untyped table's `find_or_insert`).
    #[track_caller]
    pub(crate) fn find_or_insert<I: Insert<E>>(
        &self,
        user: UserCode,
        budget: &LeakBudget,
        hash: u64,
        insert: I,
    ) -> Result<EntryRef<E>, Rejected<I>> {
        match self.raw.find_or_insert(user, budget, hash, Typed { insert, entries: PhantomData }) {
            Ok(entry) => Ok(EntryRef::from_table(entry)),
            Err(rejected) => Err(rejected.map(|typed| typed.insert)),
        }
    }

    /// The most [`new`](Self::new) can charge to `budget`.
    pub(crate) fn charge_bound(budget: &LeakBudget) -> usize {
        Table::charge_bound(budget)
    }

    /// Shards of the table, numbered `0..shard_count()` for [`shard_entries`](Self::shard_entries).
    pub(crate) fn shard_count(&self) -> usize {
        self.raw.shard_count()
    }

    /// Appends every entry of shard `index` to `entries`, copied under the shard's lock (so entries being moved are
    /// neither missed nor repeated); no user code runs under it.
    pub(crate) fn shard_entries(&self, index: usize, entries: &mut Vec<EntryRef<E>>) {
        let mut raw = Vec::new();
        self.raw.shard_entries(index, &mut raw);
        entries.extend(raw.into_iter().map(EntryRef::from_table));
    }
}

impl<E> fmt::Debug for TypedTable<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTable").field("len", &self.raw.len()).finish_non_exhaustive()
    }
}

/// An [`Insert<E>`] seen by the untyped table.
struct Typed<E, I> {
    insert: I,
    /// Contravariant in `E`, which only selects the entry kind the insert is checked against; nothing of `E` is
    /// stored, and a function pointer adds no auto-trait bound.
    entries: PhantomData<fn(E)>,
}

impl<E: EntryKind, I: Insert<E>> RawInsert for Typed<E, I> {
    fn matches(&self, entry: NonNull<u8>) -> bool {
        self.insert.matches(EntryRef::from_table(entry))
    }

    fn rehash(&self, entry: NonNull<u8>) -> u64 {
        self.insert.rehash(EntryRef::from_table(entry))
    }

    fn layout(&self) -> Layout {
        self.insert.layout()
    }

    fn make(self, budget: &LeakBudget) -> Result<NonNull<u8>, Rejected<Self>> {
        match self.insert.make(budget) {
            Ok(entry) => Ok(entry.cast()),
            Err(rejected) => Err(rejected.map(|insert| Self { insert, entries: PhantomData })),
        }
    }
}
