//! Interning into a budget: [`Interner<T>`], [`Interned<T>`] and [`intern`].
//!
//! An interner keeps one copy of each distinct value in a [`LeakBudget`] and hands out [`Interned`] handles: one
//! pointer, compared and hashed by address. Its index (the [table](crate::table)) lives in the same budget, so the cap
//! covers everything the interner takes. Look-ups of values already present take no lock and write nothing shared.
//!
//! Entry layouts (what a handle points to):
//! - `str`: the length as LEB128, then the bytes. Its hash is recomputed from the bytes when the table splits a
//!   bucket (the crate's own hasher over bytes, which cannot panic), so no hash is stored: about one byte of overhead.
//! - `[T]`: the hash, the length, then the elements.
//! - sized `T`: the hash, then the value.
//!
//! A user's `Hash`, `Eq` or `Clone` may panic: `Hash` runs before any lock, `Eq` and `Clone` run under a shard lock
//! before the value's entry is allocated or inserted, and the lock is released on unwinding, so the interner stays
//! consistent. `Clone` runs after the table has made room for the entry: table growth made for a value whose `Clone`
//! panics stays charged and serves later inserts (found by the `intern_generic` fuzz target).
//! If they call back into the crate for a lock (an insert into this or another interner or cache), that call panics
//! instead of deadlocking ([`UserCode`](crate::sync::UserCode)).

use core::alloc::Layout;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::mem::size_of;
use core::ops::Deref;
use core::panic::{RefUnwindSafe, UnwindSafe};
use core::ptr::{self, NonNull};

use crate::budget::LeakBudget;
use crate::error::{LeakError, Rejected};
use crate::hash::{HashState as RandomState, hash_bytes, hash_state};
use crate::marker::StoresShared;
use crate::sync::{
    AtomicPtr, Mutex,
    Ordering::{Acquire, Release},
    UserCode, loom_const_fn,
};
use crate::table::{EntryRef, Insert, TypedTable};

/// Types an [`Interner`] can hold: `str`, slices `[T]` of `T: Copy + Hash + Eq` (so `[u8]` too), and sized
/// `T: Hash + Eq + Clone`. Sealed: the crate controls how each is laid out in the budget.
pub trait Internable: sealed::Entry + 'static {}

impl Internable for str {}
impl<T: Copy + Hash + Eq + 'static> Internable for [T] {}
impl<T: Hash + Eq + Clone + 'static> Internable for T {}

mod sealed {
    use core::alloc::Layout;
    use core::hash::{BuildHasher, Hash};
    use core::mem::size_of;
    use core::ptr::{self, NonNull};

    use super::{RandomState, bytes_equal, hash_bytes, leaked_memory, read_varint, varint_len, write_varint};
    use crate::budget::LeakBudget;
    use crate::error::LeakError;
    use crate::table::{EntryKind, EntryRef};

    /// The kind of entry an `Interner<T>`'s table holds: `T`'s [`Record`](Entry::Record).
    pub struct Values<T: ?Sized>(core::marker::PhantomData<fn(&T)>);

    impl<T: ?Sized> core::fmt::Debug for Values<T> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("Values")
        }
    }

    impl<T: ?Sized + Entry> EntryKind for Values<T> {
        type Head = T::Record;
    }

    /// How a value is stored as an entry of kind [`Record`](Entry::Record), compared with one, and found again.
    /// Private to the crate.
    ///
    /// # Safety
    ///
    /// [`leak_entry`](Entry::leak_entry) must return a fully written entry of kind `Record`, laid out as `Record`'s
    /// documentation says (which is what [`value`](Entry::value), [`matches`](Entry::matches) and
    /// [`entry_hash`](Entry::entry_hash) read), never written or freed afterwards, with provenance over all of it.
    pub unsafe trait Entry: 'static {
        /// The kind of entry the interner's table holds for this type.
        type Record: 'static;
        /// The hash of `value` under the interner's hasher. May panic (a user `Hash`).
        fn hash_with(&self, hasher: &RandomState) -> u64;
        /// The layout of an entry holding `self`, or `None` if it is too large.
        fn entry_layout(&self) -> Option<Layout>;
        /// Leaks an entry holding a copy of `self` (with `hash`) into `budget`, laid out as `entry_layout` says. May
        /// panic (a user `Clone`), but only before anything is allocated.
        fn leak_entry(&self, hash: u64, budget: &LeakBudget) -> Result<NonNull<Self::Record>, LeakError>;
        /// The value held by `entry`.
        fn value(entry: EntryRef<Values<Self>>) -> &'static Self;
        /// The hash that `entry` was inserted with. Must not panic.
        fn entry_hash(entry: EntryRef<Values<Self>>, hasher: &RandomState) -> u64;
        /// Whether `entry` holds a value equal to `self`. May panic (a user `Eq`).
        fn matches(&self, entry: EntryRef<Values<Self>>) -> bool;
    }

    /// The entry of a `str`: the length as LEB128 (this is its first byte), then the bytes. An
    /// [`EntryRef<Values<str>>`](EntryRef) points to the first byte of a whole entry.
    #[derive(Debug)]
    pub struct StrEntry {
        _length_starts: u8,
    }

    impl StrEntry {
        /// The string of `entry`.
        #[inline]
        fn bytes(entry: EntryRef<Values<str>>) -> &'static [u8] {
            // SAFETY: an `EntryRef<Values<str>>` points to a whole `str` entry (the `Insert` contract, which `leak_entry`
            // below fulfils): a complete varint length, then that many bytes, never freed.
            unsafe {
                let (len, bytes) = read_varint(entry.as_ptr().cast::<u8>());
                core::slice::from_raw_parts(bytes.as_ptr(), len)
            }
        }
    }

    // SAFETY: `leak_entry` writes the varint length and then the bytes into fresh memory of `entry_layout`, as
    // `StrEntry` lays them out; the memory is leaked (never freed) and not written again.
    unsafe impl Entry for str {
        type Record = StrEntry;

        #[inline]
        fn hash_with(&self, hasher: &RandomState) -> u64 {
            hash_bytes(hasher, self.as_bytes())
        }

        fn entry_layout(&self) -> Option<Layout> {
            Layout::from_size_align(varint_len(self.len()).checked_add(self.len())?, 1).ok()
        }

        fn leak_entry(&self, _hash: u64, budget: &LeakBudget) -> Result<NonNull<StrEntry>, LeakError> {
            let layout = self.entry_layout().ok_or(LeakError::SizeOverflow { elem_size: 1, len: self.len() })?;
            let memory = leaked_memory(budget, layout)?;
            // SAFETY: `memory` is fresh and has room for the length's varint and the bytes (`entry_layout`).
            unsafe {
                let bytes = write_varint(memory, self.len());
                ptr::copy_nonoverlapping(self.as_ptr(), bytes.as_ptr(), self.len());
            }
            Ok(memory.cast())
        }

        #[inline]
        fn value(entry: EntryRef<Values<str>>) -> &'static Self {
            // SAFETY: the bytes were copied from a `str` (`leak_entry`), so they are UTF-8.
            unsafe { core::str::from_utf8_unchecked(StrEntry::bytes(entry)) }
        }

        fn entry_hash(entry: EntryRef<Values<str>>, hasher: &RandomState) -> u64 {
            hash_bytes(hasher, StrEntry::bytes(entry))
        }

        #[inline]
        fn matches(&self, entry: EntryRef<Values<str>>) -> bool {
            let bytes = StrEntry::bytes(entry);
            bytes.len() == self.len() && bytes_equal(bytes, self.as_bytes())
        }
    }

    /// The entry of a slice of `T`: this header, then `len` elements at `slice_layout`'s offset.
    #[repr(C)]
    #[derive(Debug)]
    pub struct SliceEntry<T> {
        hash: u64,
        len: usize,
        elements: core::marker::PhantomData<[T; 0]>,
    }

    fn slice_layout<T>(len: usize) -> Option<(Layout, usize)> {
        let (layout, offset) = Layout::new::<SliceEntry<T>>().extend(Layout::array::<T>(len).ok()?).ok()?;
        Some((layout.pad_to_align(), offset))
    }

    // SAFETY: `leak_entry` writes the header and then the elements into fresh memory of `slice_layout`, as
    // `SliceEntry` lays them out; the memory is leaked (never freed) and not written again.
    unsafe impl<T: Copy + Hash + Eq + 'static> Entry for [T] {
        type Record = SliceEntry<T>;

        fn hash_with(&self, hasher: &RandomState) -> u64 {
            hasher.hash_one(self)
        }

        fn entry_layout(&self) -> Option<Layout> {
            slice_layout::<T>(self.len()).map(|(layout, _)| layout)
        }

        fn leak_entry(&self, hash: u64, budget: &LeakBudget) -> Result<NonNull<SliceEntry<T>>, LeakError> {
            let (layout, offset) = slice_layout::<T>(self.len())
                .ok_or(LeakError::SizeOverflow { elem_size: size_of::<T>(), len: self.len() })?;
            let memory = leaked_memory(budget, layout)?;
            // SAFETY: `memory` is fresh, aligned for the header and has room for the elements at `offset`; `T: Copy`.
            unsafe {
                memory.cast::<SliceEntry<T>>().write(SliceEntry {
                    hash,
                    len: self.len(),
                    elements: core::marker::PhantomData,
                });
                ptr::copy_nonoverlapping(self.as_ptr(), memory.add(offset).cast::<T>().as_ptr(), self.len());
            }
            Ok(memory.cast())
        }

        fn value(entry: EntryRef<Values<[T]>>) -> &'static Self {
            let len = entry.get().len;
            let (_, offset) = slice_layout::<T>(len).expect("the entry exists, so its layout does");
            // SAFETY: an `EntryRef<Values<[T]>>` points to a whole slice entry (the `Insert` contract, which
            // `leak_entry` above fulfils): `len` elements of `T` at `offset`, never freed or written again.
            unsafe { core::slice::from_raw_parts(entry.as_ptr().cast::<u8>().add(offset).cast::<T>().as_ptr(), len) }
        }

        fn entry_hash(entry: EntryRef<Values<[T]>>, _hasher: &RandomState) -> u64 {
            entry.get().hash
        }

        fn matches(&self, entry: EntryRef<Values<[T]>>) -> bool {
            Self::value(entry) == self
        }
    }

    /// The entry of a sized value.
    #[repr(C)]
    #[derive(Debug)]
    pub struct SizedEntry<T> {
        pub hash: u64,
        pub value: T,
    }

    // SAFETY: `leak_entry` leaks a `SizedEntry<T>` with `LeakBudget::leak`: fully written, never freed, not written
    // again.
    unsafe impl<T: Hash + Eq + Clone + 'static> Entry for T {
        type Record = SizedEntry<T>;

        fn hash_with(&self, hasher: &RandomState) -> u64 {
            hasher.hash_one(self)
        }

        fn entry_layout(&self) -> Option<Layout> {
            Some(Layout::new::<SizedEntry<T>>())
        }

        fn leak_entry(&self, hash: u64, budget: &LeakBudget) -> Result<NonNull<SizedEntry<T>>, LeakError> {
            // Clone first: a panicking `Clone` then leaves nothing allocated.
            let value = self.clone();
            let entry = budget.leak(SizedEntry { hash, value }).map_err(|rejected| rejected.into_parts().1)?;
            Ok(NonNull::from(entry))
        }

        fn value(entry: EntryRef<Values<T>>) -> &'static Self {
            &entry.get().value
        }

        fn entry_hash(entry: EntryRef<Values<T>>, _hasher: &RandomState) -> u64 {
            entry.get().hash
        }

        fn matches(&self, entry: EntryRef<Values<T>>) -> bool {
            Self::value(entry) == self
        }
    }
}

use sealed::{SizedEntry, Values};

/// `layout` bytes leaked into `budget`, as a pointer.
fn leaked_memory(budget: &LeakBudget, layout: Layout) -> Result<NonNull<u8>, LeakError> {
    Ok(NonNull::from(budget.leak_layout(layout)?).cast())
}

/// `a == b` for slices of equal length, inlined for the short strings interners mostly see (a call to `memcmp`
/// costs more than comparing an identifier).
#[inline]
fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let len = a.len();
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match len {
        // Two overlapping words cover 8..=16 bytes.
        8..=16 => word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4),
        0..=3 => a == b,
        _ => word(a, 0) == word(b, 0) && a == b,
    }
}

/// Bytes LEB128 needs for `value`.
fn varint_len(value: usize) -> usize {
    (usize::BITS - (value | 1).leading_zeros()).div_ceil(7) as usize
}

/// Writes `value` as LEB128 at `memory`; returns the position after it.
///
/// # Safety
/// `memory` must be valid for `varint_len(value)` bytes of writes.
unsafe fn write_varint(memory: NonNull<u8>, mut value: usize) -> NonNull<u8> {
    let mut at = memory;
    loop {
        // Masked to 7 bits, so it fits.
        let low = (value & 0x7f) as u8;
        value >>= 7;
        // SAFETY: the caller guarantees room for every byte of the varint.
        unsafe {
            at.write(if value == 0 { low } else { low | 0x80 });
            at = at.add(1);
        }
        if value == 0 {
            return at;
        }
    }
}

/// Reads a LEB128 value written by [`write_varint`]; returns it and the position after it.
///
/// # Safety
/// `memory` must point to a complete varint.
#[inline]
unsafe fn read_varint(memory: NonNull<u8>) -> (usize, NonNull<u8>) {
    // SAFETY: the caller guarantees a complete varint: every byte read is part of it.
    unsafe {
        let first = memory.read();
        if first < 0x80 {
            return (usize::from(first), memory.add(1));
        }
        let (mut value, mut shift, mut at) = (0usize, 0u32, memory);
        loop {
            let byte = at.read();
            at = at.add(1);
            value |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return (value, at);
            }
            shift += 7;
        }
    }
}

/// A handle to a value interned by an [`Interner`]: one pointer, `Copy`, compared and hashed by address in O(1).
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
pub struct Interned<T: ?Sized + Internable> {
    /// An [`EntryRef<Values<T>>`](EntryRef), erased so that `T`'s variance is decided below, not by `T::Record`.
    entry: NonNull<u8>,
    /// Covariant in `T`, as `&'static T` is: a handle only reads its value, and nothing can be stored through it, so
    /// viewing it at a supertype of `T` is as sound as widening a `&'static T`. The containers that store values are
    /// invariant instead (see `marker::StoresShared`).
    values: PhantomData<&'static T>,
}

impl<T: ?Sized + Internable> Interned<T> {
    fn new(entry: EntryRef<Values<T>>) -> Self {
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
    /// The budget everything is charged to; `None` for the global budget.
    budget: Option<&'static LeakBudget>,
    /// Null until the first `intern`, then this interner's state in the budget, never changed again.
    state: AtomicPtr<State<T>>,
    /// Serialises creating `state`, so it is created (and charged) once.
    init: Mutex<()>,
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
            Self { budget: None, state: AtomicPtr::new(ptr::null_mut()), init: Mutex::new(()), values: PhantomData }
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
            Self {
                budget: Some(budget),
                state: AtomicPtr::new(ptr::null_mut()),
                init: Mutex::new(()),
                values: PhantomData,
            }
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
        self.budget
    }

    fn resolve_budget(&self) -> Result<&'static LeakBudget, LeakError> {
        self.budget.map_or_else(LeakBudget::try_global, Ok)
    }

    fn existing_state(&self) -> Option<&'static State<T>> {
        // SAFETY: null or a `State` leaked into the budget, published with `Release` (read with `Acquire`), never
        // freed.
        unsafe { self.state.load(Acquire).as_ref() }
    }

    #[cold]
    fn create_state(&self) -> Result<&'static State<T>, LeakError> {
        let _creating = self.init.lock();
        if let Some(state) = self.existing_state() {
            return Ok(state);
        }
        let state: &'static State<T> =
            self.resolve_budget()?.leak_with(|| State { hasher: hash_state(), table: TypedTable::new() })?;
        self.state.store(ptr::from_ref(state).cast_mut(), Release);
        Ok(state)
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
        self.existing_state().map_or(0, |state| state.table.len())
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
    pub fn intern(&self, value: &T) -> Result<Interned<T>, LeakError> {
        self.find_or_insert(value).map_err(|rejected| rejected.into_parts().1)
    }

    /// The path `intern` and `intern_owned` share: a lock-free look-up, then, on a miss, an insert of `offer`.
    #[inline(always)]
    fn find_or_insert<O: Offer<T>>(&self, offer: O) -> Result<Interned<T>, Rejected<O>> {
        let state = match self.existing_state() {
            Some(state) => state,
            None => match self.create_state() {
                Ok(state) => state,
                Err(error) => return Err(Rejected::new(offer, error)),
            },
        };
        let hash = offer.value().hash_with(&state.hasher);
        if let Some(entry) = state.table.find(hash, |entry| offer.value().matches(entry)) {
            return Ok(Interned::new(entry));
        }
        self.insert(state, hash, offer)
    }

    #[cold]
    #[inline(never)]
    fn insert<O: Offer<T>>(&self, state: &'static State<T>, hash: u64, offer: O) -> Result<Interned<T>, Rejected<O>> {
        let budget = match self.resolve_budget() {
            Ok(budget) => budget,
            Err(error) => return Err(Rejected::new(offer, error)),
        };
        let Some(layout) = offer.value().entry_layout() else {
            return Err(Rejected::new(offer, LeakError::SizeOverflow { elem_size: size_of::<u8>(), len: usize::MAX }));
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
    pub fn get(&self, value: &T) -> Option<Interned<T>> {
        let state = self.existing_state()?;
        let hash = value.hash_with(&state.hasher);
        let matches = |entry| value.matches(entry);
        // A lock-free miss can be a concurrent split moving the entry: confirm misses under the lock.
        let entry =
            state.table.find(hash, matches).or_else(|| state.table.find_locked(Self::user_code(), hash, matches))?;
        Some(Interned::new(entry))
    }

    /// Every value interned so far (in no particular order). Values interned while this runs may or may not appear.
    ///
    /// # Examples
    ///
    /// ```
    /// static WORDS: leak_budget::Interner<str> = leak_budget::Interner::new();
    /// WORDS.intern("b")?;
    /// WORDS.intern("a")?;
    /// let mut all: Vec<&str> = WORDS.snapshot().into_iter().map(|w| w.as_static()).collect();
    /// all.sort_unstable();
    /// assert_eq!(all, ["a", "b"]);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Vec<Interned<T>> {
        let Some(state) = self.existing_state() else { return Vec::new() };
        state.table.entries().into_iter().map(Interned::new).collect()
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
    pub fn intern_owned(&self, value: T) -> Result<Interned<T>, Rejected<T>> {
        self.find_or_insert(Owned(value)).map_err(|rejected| rejected.map(|Owned(value)| value))
    }
}

/// A value offered to an interner: borrowed (`&T`, copied into the budget if new) or owned ([`Owned`], moved there).
///
/// # Safety
///
/// [`make`](Offer::make) must return a fully written entry of kind `Values<T>`, as `T`'s [`Entry`](sealed::Entry) impl lays it
/// out (and as [`leak_entry`](sealed::Entry::leak_entry) writes it), never written or freed afterwards, with provenance over all of it.
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
            .field("budget", &self.budget.map_or("global", LeakBudget::name))
            .field("len", &self.existing_state().map_or(0, |state| state.table.len()))
            .finish_non_exhaustive()
    }
}

/// Interns `s` in a process-wide string interner on the [global budget](LeakBudget::global).
///
/// # Errors
///
/// As [`Interner::intern`].
///
/// # Examples
///
/// ```
/// let a = leak_budget::intern("shared")?;
/// let b = leak_budget::intern(&format!("sha{}", "red"))?;
/// assert!(core::ptr::eq(a, b));
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
#[cfg(not(loom))]
pub fn intern(s: &str) -> Result<&'static str, LeakError> {
    static STRINGS: Interner<str> = Interner::new();
    STRINGS.intern(s).map(Interned::as_static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_byte_comparison_agrees_with_slice_equality() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for len in 0..=text.len() {
            let a = &text[..len];
            assert!(bytes_equal(a, a));
            for flip in 0..len {
                let mut b = a.to_vec();
                b[flip] ^= 1;
                assert!(!bytes_equal(a, &b), "len {len}, byte {flip} differs");
            }
        }
    }

    #[test]
    fn varints_round_trip_and_have_the_predicted_length() {
        let mut buffer = [0u8; 16];
        for value in [0, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as usize, usize::MAX] {
            let start = NonNull::from(&mut buffer).cast::<u8>();
            // SAFETY: 16 bytes hold any usize's varint (at most 10).
            let (end, (read, after)) = unsafe { (write_varint(start, value), read_varint(start)) };
            assert_eq!(read, value);
            assert_eq!(end, after);
            // SAFETY: both point into `buffer`.
            assert_eq!(unsafe { end.offset_from_unsigned(start) }, varint_len(value), "{value}");
        }
    }
}
