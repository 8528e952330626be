//! An insert-only concurrent hash set of entries leaked into a budget: the index behind interners and caches.
//!
//! The table stores pointers to *entries*: immutable records leaked into a [`LeakBudget`] by the caller (an interned
//! string with its length, a cached key and value). It never frees anything, and it is built so that look-ups need no
//! lock, no reference count and no epoch: they only read.
//!
//! # Layout: sharded extendible hashing
//! A 64-bit hash picks a shard (its top [`SHARD_BITS`] bits), a directory slot in that shard (the next `depth` bits)
//! and a one-byte tag (its low 7 bits, with the top bit set so that 0 means empty). A directory maps its slots to
//! buckets of [`BUCKET_SLOTS`] entry pointers and their tags; several slots may share a bucket. When a bucket is full,
//! it is *split*: the entries whose next hash bit is 1 move to a new bucket, and the directory slots that select them
//! are repointed; when the bucket already uses every directory bit, the directory doubles first. Growth is one bucket
//! at a time, so no insert pauses to rehash the whole table, and old buckets are reused rather than freed; only
//! directories are replaced, and they are small (8 bytes per bucket). Buckets whose entries cannot be separated by
//! more hash bits (equal hashes) grow an overflow chain instead.
//!
//! # Why look-ups may run without a lock
//! Every table word a reader loads is either null or a pointer to a fully written entry or bucket or directory, and
//! none of them is ever freed. A reader therefore never dereferences garbage, whatever it races with. It may read a
//! stale directory or catch an entry halfway through a move and *miss*; it can never return a wrong entry, because a
//! hit is confirmed by comparing the value itself. Callers treat a miss as "look again under the shard lock" before
//! inserting, and under the lock the table is exact.
//!
//! # Memory orderings
//! Writers (holding the shard lock) write an entry's slot, then set its tag with `Release`; publish a bucket or a
//! directory with a `Release` store of its pointer. Readers load tags, slots and pointers with `Acquire`, so whatever
//! they reach is fully initialised. Counters are `Relaxed`; a shard's length is written before the entry it counts is
//! published, so the tag's `Release` orders it first and a reader that finds an entry also sees it counted.

use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};

use crate::budget::LeakBudget;
use crate::error::{LeakError, Rejected};
use crate::sync::{
    AtomicPtr, AtomicUsize, CachePadded, Mutex,
    Ordering::{Acquire, Relaxed, Release},
    UserCode,
};

/// Shards: `1 << SHARD_BITS`. Each has its own lock and directory, so inserts into different shards never contend.
/// (Loom models use one shard and smaller buckets, so that a handful of inserts reaches a split.)
#[cfg(not(loom))]
const SHARD_BITS: u32 = 4;
#[cfg(loom)]
const SHARD_BITS: u32 = 0;
const SHARDS: usize = 1 << SHARD_BITS;
/// Entry slots per bucket.
#[cfg(not(loom))]
const BUCKET_SLOTS: usize = 16;
#[cfg(loom)]
const BUCKET_SLOTS: usize = 8;
const TAGS_PER_WORD: usize = size_of::<usize>();
const TAG_WORDS: usize = BUCKET_SLOTS / TAGS_PER_WORD;
/// Directory bits a shard may use. Beyond this, buckets chain instead of splitting.
const MAX_DEPTH: u32 = 40;
/// `0x0101..01`: one in every byte of a tag word.
const LOW_BITS: usize = usize::MAX / 0xff;
/// `0x8080..80`: the top bit of every byte of a tag word.
const HIGH_BITS: usize = LOW_BITS << 7;

/// The tag stored for `hash`: its low 7 bits, with the top bit set so that no tag is 0 (empty).
fn tag_of(hash: u64) -> usize {
    (hash as usize & 0x7f) | 0x80
}

/// The hash bits that select directory slots, most significant first (the shard bits shifted out).
fn directory_bits(hash: u64) -> u64 {
    hash << SHARD_BITS
}

/// One bit per byte of `word` (the byte's top bit) where that byte equals `tag`. Exact: no false positives.
fn matching_bytes(word: usize, tag: usize) -> usize {
    let diff = word ^ (tag * LOW_BITS);
    // A byte of `diff` is zero iff adding 0x7f to its low 7 bits leaves its top bit clear and its own top bit is clear.
    !(((diff & !HIGH_BITS) + !HIGH_BITS) | diff | !HIGH_BITS)
}

/// A bucket: up to [`BUCKET_SLOTS`] entries, their tags, and an overflow chain for entries with equal hashes.
#[repr(C)]
#[derive(Debug)]
struct Bucket {
    /// One tag byte per slot, [`TAGS_PER_WORD`] per word (byte `i` of a word is bits `8i..8i+8`); 0 = empty.
    ///
    /// Invariant: a non-zero tag means the slot holds a published entry (the slot is written before the tag).
    tags: [AtomicUsize; TAG_WORDS],
    /// Entry pointers; null = empty. Only written under the shard lock.
    slots: [AtomicPtr<u8>; BUCKET_SLOTS],
    /// Next bucket of the chain (only at `MAX_DEPTH`, or for entries with equal directory bits). Null = none.
    overflow: AtomicPtr<Bucket>,
    /// Directory bits this bucket's entries share. Only read and written under the shard lock.
    local_depth: AtomicUsize,
}

impl Bucket {
    fn new(local_depth: u32) -> Self {
        Self {
            tags: core::array::from_fn(|_| AtomicUsize::new(0)),
            slots: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            overflow: AtomicPtr::new(ptr::null_mut()),
            local_depth: AtomicUsize::new(local_depth as usize),
        }
    }

    /// The entry in `slot`, if its tag says it is occupied.
    fn entry(&self, slot: usize) -> Option<NonNull<u8>> {
        let tag = (self.tags[slot / TAGS_PER_WORD].load(Acquire) >> (8 * (slot % TAGS_PER_WORD))) & 0xff;
        if tag == 0 { None } else { NonNull::new(self.slots[slot].load(Acquire)) }
    }

    /// The first entry of this bucket (not its chain) tagged `tag` for which `eq` holds.
    #[inline(always)]
    fn find(&self, tag: usize, eq: &mut impl FnMut(NonNull<u8>) -> bool) -> Option<NonNull<u8>> {
        for (word_index, word) in self.tags.iter().enumerate() {
            let mut matches = matching_bytes(word.load(Acquire), tag);
            while matches != 0 {
                let slot = word_index * TAGS_PER_WORD + (matches.trailing_zeros() / 8) as usize;
                if let Some(entry) = NonNull::new(self.slots[slot].load(Acquire)) {
                    if eq(entry) {
                        return Some(entry);
                    }
                }
                matches &= matches - 1;
            }
        }
        None
    }

    /// A free slot, if any. Only meaningful under the shard lock.
    fn free_slot(&self) -> Option<usize> {
        (0..BUCKET_SLOTS).find(|&slot| self.entry(slot).is_none())
    }

    /// Stores `entry` in free `slot` with its `tag`: the slot first, then the tag (`Release`), so a reader that
    /// sees the tag sees the entry. Only under the shard lock.
    fn put(&self, slot: usize, tag: usize, entry: NonNull<u8>) {
        self.slots[slot].store(entry.as_ptr(), Release);
        self.tags[slot / TAGS_PER_WORD].fetch_or(tag << (8 * (slot % TAGS_PER_WORD)), Release);
    }

    /// Empties `slot`: the tag first, then the slot. Only under the shard lock.
    fn clear(&self, slot: usize) {
        self.tags[slot / TAGS_PER_WORD].fetch_and(!(0xff << (8 * (slot % TAGS_PER_WORD))), Release);
        self.slots[slot].store(ptr::null_mut(), Release);
    }

    fn local_depth(&self) -> u32 {
        // At most `MAX_DEPTH`, so it fits.
        self.local_depth.load(Relaxed) as u32
    }
}

/// A directory header; `1 << depth` bucket pointers follow it in the same allocation. Only ever handled through a
/// [`DirRef`], never a `&Directory`: a reference would cover the header alone, not the slots after it.
#[repr(C)]
#[derive(Debug)]
struct Directory {
    /// Bits of the hash (after the shard bits) that index this directory. Immutable.
    depth: u32,
}

/// A published directory: a pointer whose provenance covers the whole allocation (header and slots).
#[derive(Debug, Clone, Copy)]
struct DirRef(NonNull<Directory>);

impl DirRef {
    /// The directory `raw` points to, if any.
    ///
    /// # Safety
    /// `raw` must be null or a directory from `Table::new_directory` (fully written, never freed).
    unsafe fn new(raw: *mut Directory) -> Option<DirRef> {
        NonNull::new(raw).map(DirRef)
    }

    fn depth(self) -> u32 {
        // SAFETY: a `DirRef` points to a written directory header, never freed; read through the raw pointer.
        unsafe { (*self.0.as_ptr()).depth }
    }

    /// The directory's bucket pointers.
    #[inline(always)]
    fn slots(self) -> &'static [AtomicPtr<Bucket>] {
        // SAFETY: a directory is always allocated with `Directory::layout(depth)`, whose slots start at
        // `SLOTS_OFFSET`; its `1 << depth` slots are initialised before it is published (`new_directory`), and it is
        // never freed. The pointer's provenance covers the whole allocation.
        unsafe {
            let first = self.0.cast::<u8>().add(Directory::SLOTS_OFFSET).cast::<AtomicPtr<Bucket>>();
            core::slice::from_raw_parts(first.as_ptr(), 1 << self.depth())
        }
    }

    /// The slot that `hash` selects.
    #[inline(always)]
    fn slot_of(self, hash: u64) -> usize {
        let depth = self.depth();
        if depth == 0 { 0 } else { (directory_bits(hash) >> (64 - depth)) as usize }
    }

    fn as_ptr(self) -> *mut Directory {
        self.0.as_ptr()
    }
}

impl Directory {
    /// Where the bucket pointers start, after the header (the same for every depth).
    const SLOTS_OFFSET: usize = size_of::<Directory>().next_multiple_of(align_of::<AtomicPtr<Bucket>>());

    fn layout(depth: u32) -> (Layout, usize) {
        let slots = Layout::array::<AtomicPtr<Bucket>>(1 << depth).expect("depth is at most MAX_DEPTH");
        let (layout, offset) = Layout::new::<Directory>().extend(slots).expect("depth is at most MAX_DEPTH");
        debug_assert_eq!(offset, Self::SLOTS_OFFSET);
        (layout.pad_to_align(), offset)
    }
}

/// One shard: a directory, the lock writers take, and a count.
#[derive(Debug)]
struct Shard {
    /// The current directory; null until the shard's first insert. Replaced (never freed) when it doubles.
    directory: CachePadded<AtomicPtr<Directory>>,
    /// Serialises inserts, splits and directory growth in this shard.
    lock: Mutex<()>,
    /// Entries in this shard. Written under the lock, before the entry it counts is published, so it counts every
    /// entry a reader can see (it may count one being published).
    len: AtomicUsize,
}

/// The table: [`SHARDS`] shards. Lives in a budget (inside its owner's state) and is never freed.
#[derive(Debug)]
pub(crate) struct Table {
    shards: [Shard; SHARDS],
}

/// What [`Table::find_or_insert`] did.
#[derive(Debug)]
pub(crate) enum Found<P> {
    /// An equal entry was already there; the payload is handed back unused.
    Existing(NonNull<u8>, P),
    /// The payload was turned into a new entry and inserted.
    Inserted(NonNull<u8>),
}

impl Table {
    /// An empty table. Directories and buckets are created, in the budget, by the first inserts.
    pub(crate) fn new() -> Self {
        Table {
            shards: core::array::from_fn(|_| Shard {
                directory: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
                lock: Mutex::new(()),
                len: AtomicUsize::new(0),
            }),
        }
    }

    #[inline(always)]
    fn shard(&self, hash: u64) -> &Shard {
        // `checked_shr` for `SHARD_BITS == 0`, where the shift would be by 64.
        &self.shards[hash.checked_shr(64 - SHARD_BITS).unwrap_or(0) as usize]
    }

    /// Finds an entry with this `hash` for which `eq` holds, without locking or allocating. May miss an entry that is
    /// being moved by a concurrent split: a caller about to insert must use [`find_or_insert`](Self::find_or_insert),
    /// and a caller that must not miss falls back to [`find_locked`](Self::find_locked).
    #[inline(always)]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(NonNull<u8>) -> bool) -> Option<NonNull<u8>> {
        // SAFETY: directories are published fully initialised with `Release` (loaded with `Acquire`) and never freed.
        let directory = unsafe { DirRef::new(self.shard(hash).directory.load(Acquire)) }?;
        let mut bucket = directory.slots()[directory.slot_of(hash)].load(Acquire);
        let tag = tag_of(hash);
        // SAFETY: bucket pointers are published fully initialised with `Release` and never freed.
        while let Some(current) = unsafe { bucket.as_ref() } {
            if let Some(entry) = current.find(tag, &mut eq) {
                return Some(entry);
            }
            bucket = current.overflow.load(Acquire);
        }
        None
    }

    /// As [`find`](Self::find), but under the shard lock, so it cannot miss an entry inserted before the call. `eq`
    /// is user code run under the lock, described by `user` (see [`UserCode`]).
    pub(crate) fn find_locked(
        &self,
        user: UserCode,
        hash: u64,
        mut eq: impl FnMut(NonNull<u8>) -> bool,
    ) -> Option<NonNull<u8>> {
        let _locked = self.shard(hash).lock.lock();
        self.find(hash, |entry| user.run(|| eq(entry)))
    }

    /// Finds an entry equal to the payload (per `eq`), or inserts a new one made from `payload` by `make`.
    ///
    /// Under the shard lock: looks again; if absent, makes room (splitting a bucket or doubling the directory, both
    /// allocated in `budget`), then calls `make`, which leaks the entry into the budget. So an entry is made and
    /// charged at most once per distinct value, however many threads race to insert it. `rehash` gives the hash of an
    /// existing entry (to split buckets); it must not panic. `entry_layout` is the layout `make` will allocate, used to
    /// refuse up front an insert that cannot fit, so that a refusal changes nothing.
    ///
    /// `eq` and `make` are user code (a value's `Eq`, `Clone` and `Drop`) run under the lock, described by `user`:
    /// if they call back into the crate for a lock, that call panics rather than deadlocks (see [`UserCode`]). A panic
    /// in `eq` leaves the table unchanged and releases the lock. A panic in `make` (a sized value's `Clone`) releases
    /// the lock and inserts nothing, but any growth already made for the entry (a split bucket, a doubled directory,
    /// a shard's first bucket) stays, charged, and serves later inserts: room is made before the entry is, so that an
    /// entry is never charged without a place to go.
    #[allow(clippy::too_many_arguments)] // one internal call site per kind of entry; a struct would only rename them
    pub(crate) fn find_or_insert<P>(
        &self,
        user: UserCode,
        budget: &LeakBudget,
        hash: u64,
        mut eq: impl FnMut(&P, NonNull<u8>) -> bool,
        rehash: impl Fn(NonNull<u8>) -> u64,
        entry_layout: Layout,
        payload: P,
        make: impl FnOnce(P) -> Result<NonNull<u8>, Rejected<P>>,
    ) -> Result<Found<P>, Rejected<P>> {
        let shard = self.shard(hash);
        let _locked = shard.lock.lock();
        if let Some(existing) = self.find(hash, |entry| user.run(|| eq(&payload, entry))) {
            return Ok(Found::Existing(existing, payload));
        }
        let tag = tag_of(hash);
        // Refuse up front what cannot fit (entry, plus a bucket and a doubled directory if the target is full), so
        // that a refusal leaves table and budget as they were.
        let growth = if Self::has_room(shard, hash) { 0 } else { Self::growth_bound(shard) };
        let needed = LeakBudget::max_charge_for(entry_layout).saturating_add(growth);
        if let Err(error) = budget.check_room(needed) {
            return Err(Rejected::new(payload, budget.refuse(error)));
        }
        let (bucket, slot) = match Self::make_room(shard, budget, hash, &rehash) {
            Ok(place) => place,
            Err(error) => return Err(Rejected::new(payload, error)),
        };
        let entry = user.run(|| make(payload))?;
        // Counted before it is published: the `Release` in `put` orders the count before the entry, so a thread that
        // can see the entry (an `Acquire` load of its tag) also sees it counted by `len`.
        shard.len.store(shard.len.load(Relaxed) + 1, Relaxed);
        bucket.put(slot, tag, entry);
        Ok(Found::Inserted(entry))
    }

    /// Whether `hash`'s bucket (or its chain) has a free slot. Under the shard lock.
    fn has_room(shard: &Shard, hash: u64) -> bool {
        // SAFETY: under the shard lock the directory pointer is stable; directories are never freed.
        let Some(directory) = (unsafe { DirRef::new(shard.directory.load(Acquire)) }) else { return false };
        let mut bucket = directory.slots()[directory.slot_of(hash)].load(Acquire);
        // SAFETY: buckets are never freed.
        while let Some(current) = unsafe { bucket.as_ref() } {
            if current.free_slot().is_some() {
                return true;
            }
            bucket = current.overflow.load(Acquire);
        }
        false
    }

    /// The most one insert can charge for growing the table: one new bucket and a directory of twice the size.
    fn growth_bound(shard: &Shard) -> usize {
        // SAFETY: under the shard lock; directories are never freed.
        let depth = unsafe { DirRef::new(shard.directory.load(Acquire)) }.map_or(0, DirRef::depth);
        let directory = Directory::layout((depth + 1).min(MAX_DEPTH)).0;
        LeakBudget::max_charge_for(Layout::new::<Bucket>()).saturating_add(LeakBudget::max_charge_for(directory))
    }

    /// Finds a free slot for `hash`, splitting buckets or growing the directory as needed. Under the shard lock.
    fn make_room(
        shard: &Shard,
        budget: &LeakBudget,
        hash: u64,
        rehash: &impl Fn(NonNull<u8>) -> u64,
    ) -> Result<(&'static Bucket, usize), LeakError> {
        loop {
            // SAFETY: directories are published fully initialised and never freed.
            let directory = match unsafe { DirRef::new(shard.directory.load(Acquire)) } {
                Some(directory) => directory,
                None => Self::first_directory(shard, budget)?,
            };
            // SAFETY: directory slots always point to published buckets, which are never freed.
            let head: &'static Bucket = unsafe { &*directory.slots()[directory.slot_of(hash)].load(Acquire) };
            if let Some(slot) = head.free_slot() {
                return Ok((head, slot));
            }
            // The bucket is full. Split it if some hash bit within reach separates its entries (and the new one);
            // otherwise they are equal as far as the directory can tell, and the bucket chains.
            let separating_bit = (0..BUCKET_SLOTS)
                .filter_map(|slot| head.entry(slot))
                .map(|entry| directory_bits(rehash(entry)) ^ directory_bits(hash))
                .fold(0, |acc, diff| acc | diff)
                .leading_zeros();
            if separating_bit < MAX_DEPTH && head.overflow.load(Acquire).is_null() {
                Self::split(shard, budget, directory, head, hash, rehash)?;
                continue;
            }
            return Self::chain_slot(head, budget);
        }
    }

    /// A free slot in `head`'s overflow chain, appending a bucket if all are full.
    fn chain_slot(head: &'static Bucket, budget: &LeakBudget) -> Result<(&'static Bucket, usize), LeakError> {
        let mut bucket = head;
        loop {
            if let Some(slot) = bucket.free_slot() {
                return Ok((bucket, slot));
            }
            // SAFETY: buckets are never freed.
            if let Some(next) = unsafe { bucket.overflow.load(Acquire).as_ref() } {
                bucket = next;
            } else {
                let next: &'static Bucket = budget.leak_with(|| Bucket::new(bucket.local_depth()))?;
                bucket.overflow.store(ptr::from_ref(next).cast_mut(), Release);
                return Ok((next, 0));
            }
        }
    }

    /// The shard's first directory: depth 0, one empty bucket.
    fn first_directory(shard: &Shard, budget: &LeakBudget) -> Result<DirRef, LeakError> {
        let bucket: &'static Bucket = budget.leak_with(|| Bucket::new(0))?;
        let directory = Self::new_directory(budget, 0, |_| ptr::from_ref(bucket).cast_mut())?;
        shard.directory.store(directory.as_ptr(), Release);
        Ok(directory)
    }

    /// Leaks a directory of `depth` whose slot `i` points to `bucket_at(i)`.
    fn new_directory(
        budget: &LeakBudget,
        depth: u32,
        bucket_at: impl Fn(usize) -> *mut Bucket,
    ) -> Result<DirRef, LeakError> {
        let (layout, offset) = Directory::layout(depth);
        let memory = budget.leak_layout(layout)?.as_mut_ptr().cast::<u8>();
        debug_assert_eq!(memory.addr() % align_of::<Directory>(), 0);
        // SAFETY: `memory` is `layout` bytes, aligned for `Directory` (and so for its slots, at `offset`), fresh, never
        // freed; the header and every slot are written before the directory is returned (and published).
        unsafe {
            memory.cast::<Directory>().write(Directory { depth });
            let slots = memory.add(offset).cast::<AtomicPtr<Bucket>>();
            for index in 0..1usize << depth {
                slots.add(index).write(AtomicPtr::new(bucket_at(index)));
            }
            Ok(DirRef(NonNull::new_unchecked(memory.cast::<Directory>())))
        }
    }

    /// Splits full bucket `bucket` (the one `hash` selects): entries whose next hash bit is 1 move to a new bucket.
    /// Doubles the directory first if the bucket already uses all of its bits. Allocates first and changes the table
    /// only once everything it needs is allocated, so a refusal leaves it as it was.
    fn split(
        shard: &Shard,
        budget: &LeakBudget,
        directory: DirRef,
        bucket: &'static Bucket,
        hash: u64,
        rehash: &impl Fn(NonNull<u8>) -> u64,
    ) -> Result<(), LeakError> {
        let local = bucket.local_depth();
        let sibling: &'static Bucket = budget.leak_with(|| Bucket::new(local + 1))?;
        let directory = if local == directory.depth() {
            let old = directory.slots();
            let doubled = Self::new_directory(budget, directory.depth() + 1, |index| old[index >> 1].load(Acquire))?;
            shard.directory.store(doubled.as_ptr(), Release);
            doubled
        } else {
            directory
        };
        // Copy the movers into the sibling, publish the sibling in the directory, then clear them from the bucket:
        // a reader always finds each entry in at least one of the two, except in the instant between its directory
        // read and its bucket read, where it may miss (and look again under the lock).
        //
        // The slots moved are noted on the stack, not in a `Vec`: a split must take nothing from the global
        // allocator that the budget has not been charged for (a `Vec` here took 128 uncharged bytes per split, which
        // could hold the process above the limit for an instant when the budget had less than that left).
        let mut moved = [0usize; BUCKET_SLOTS];
        let mut count = 0;
        for slot in 0..BUCKET_SLOTS {
            if let Some(entry) = bucket.entry(slot) {
                let hash = rehash(entry);
                if (directory_bits(hash) >> (63 - local)) & 1 == 1 {
                    sibling.put(count, tag_of(hash), entry);
                    moved[count] = slot;
                    count += 1;
                }
            }
        }
        // The bucket fills the `span` consecutive directory slots that share its `local` leading bits with `hash`;
        // the upper half of them now selects the sibling.
        let span = 1usize << (directory.depth() - local);
        let first = directory.slot_of(hash) & !(span - 1);
        for slot in &directory.slots()[first + span / 2..first + span] {
            slot.store(ptr::from_ref(sibling).cast_mut(), Release);
        }
        for &slot in &moved[..count] {
            bucket.clear(slot);
        }
        bucket.local_depth.store(local as usize + 1, Relaxed);
        Ok(())
    }

    /// Entries in the table: at least every entry the calling thread can find (each is counted before it is
    /// published), and at most that plus the inserts under way.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len.load(Relaxed)).sum()
    }

    /// Every entry, one shard at a time under its lock (so entries being moved are neither missed nor repeated).
    pub(crate) fn entries(&self) -> Vec<NonNull<u8>> {
        let mut entries = Vec::with_capacity(self.len());
        for shard in &self.shards {
            let _locked = shard.lock.lock();
            // SAFETY: under the shard lock; directories and buckets are never freed.
            let Some(directory) = (unsafe { DirRef::new(shard.directory.load(Acquire)) }) else { continue };
            for (index, slot) in directory.slots().iter().enumerate() {
                // SAFETY: directory slots point to published buckets, never freed.
                let head = unsafe { &*slot.load(Acquire) };
                // A bucket of local depth `d` fills `2^(depth - d)` consecutive slots: visit it from the first.
                if index % (1 << (directory.depth() - head.local_depth())) != 0 {
                    continue;
                }
                let mut bucket = Some(head);
                while let Some(current) = bucket {
                    entries.extend((0..BUCKET_SLOTS).filter_map(|slot| current.entry(slot)));
                    // SAFETY: buckets are never freed.
                    bucket = unsafe { current.overflow.load(Acquire).as_ref() };
                }
            }
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte positions (0-based, least significant first) where `word` holds `tag`, the slow way.
    fn positions(word: usize, tag: usize) -> Vec<usize> {
        (0..TAGS_PER_WORD).filter(|i| (word >> (8 * i)) & 0xff == tag).collect()
    }

    /// A tag word whose byte `i` is `pattern[i % pattern.len()]`.
    fn word_of(pattern: &[u8]) -> usize {
        (0..TAGS_PER_WORD).fold(0, |word, i| word | usize::from(pattern[i % pattern.len()]) << (8 * i))
    }

    #[test]
    fn tag_matching_finds_exactly_the_equal_bytes() {
        let patterns: [&[u8]; 7] = [
            &[0],
            &[0xff],
            &[0x80],
            &[0x81],
            &[0x81, 0x80, 0x80, 0x81, 0x00, 0xff, 0x80, 0x81],
            &[0x01, 0x80],
            &[0, 1],
        ];
        for word in patterns.map(word_of) {
            for tag in [0x80, 0x81, 0xff, 0x00, 0x01] {
                let found = matching_bytes(word, tag);
                let got: Vec<usize> = (0..TAGS_PER_WORD).filter(|i| found & (0x80 << (8 * i)) != 0).collect();
                assert_eq!(got, positions(word, tag), "word {word:#x} tag {tag:#x}");
                assert_eq!(found & !HIGH_BITS, 0);
            }
        }
    }

    #[test]
    fn tags_are_never_zero_and_use_the_low_bits() {
        for hash in [0, 1, 0x7f, 0x80, u64::MAX, 0xdead_beef] {
            let tag = tag_of(hash);
            assert!(tag & 0x80 != 0 && tag <= 0xff);
            assert_eq!(tag & 0x7f, (hash & 0x7f) as usize);
        }
    }
}
