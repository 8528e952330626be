//! How each [`Internable`](super::Internable) type is laid out as an entry in the budget, compared with a value, and
//! read back: the sealed [`Entry`] trait, the entry kinds, and the LEB128 length of `str` entries.
//!
//! Entry layouts (what a handle points to):
//! - `str`: the length as LEB128, then the bytes. Its hash is recomputed from the bytes when the table splits a
//!   bucket (the crate's own hasher over bytes, which cannot panic), so no hash is stored: about one byte of overhead.
//! - `[T]`: the hash, the length, then the elements.
//! - sized `T`: the hash, then the value.

use core::alloc::Layout;
use core::hash::{BuildHasher, Hash};
use core::mem::size_of;
use core::ptr::{self, NonNull};

use crate::budget::LeakBudget;
use crate::error::LeakError;
use crate::hash::{HashState as RandomState, hash_bytes};
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
    /// The layout of an entry holding `self`.
    ///
    /// # Errors
    /// [`LeakError::SizeOverflow`], with the value's element size and length, if it is too large to describe.
    fn entry_layout(&self) -> Result<Layout, LeakError>;
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

    fn entry_layout(&self) -> Result<Layout, LeakError> {
        varint_len(self.len())
            .checked_add(self.len())
            .and_then(|size| Layout::from_size_align(size, 1).ok())
            .ok_or(LeakError::size_overflow(1, self.len()))
    }

    fn leak_entry(&self, _hash: u64, budget: &LeakBudget) -> Result<NonNull<StrEntry>, LeakError> {
        let layout = self.entry_layout()?;
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
    /// Covariant in `T`, as `[T]` is: the elements follow the header and are only read through it; no auto trait
    /// changes (`[T; 0]` holds no `T`).
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

    fn entry_layout(&self) -> Result<Layout, LeakError> {
        slice_layout::<T>(self.len())
            .map(|(layout, _)| layout)
            .ok_or(LeakError::size_overflow(size_of::<T>(), self.len()))
    }

    fn leak_entry(&self, hash: u64, budget: &LeakBudget) -> Result<NonNull<SliceEntry<T>>, LeakError> {
        let (layout, offset) =
            slice_layout::<T>(self.len()).ok_or(LeakError::size_overflow(size_of::<T>(), self.len()))?;
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

    fn entry_layout(&self) -> Result<Layout, LeakError> {
        Ok(Layout::new::<SizedEntry<T>>())
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
