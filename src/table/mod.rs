//! An insert-only concurrent hash set of entries leaked into a budget: the index behind interners and caches.
//!
//! The table stores pointers to *entries*, immutable records leaked into a [`LeakBudget`]; components use it through
//! [`TypedTable<E>`], which holds entries of one kind `E` and hands them out as [`EntryRef<E>`]. It never frees
//! anything, and look-ups need no lock, no reference count and no epoch: they only read.
//!
//! # Layout
//! Sharded extendible hashing (`docs/design.md` has the whole picture): a hash picks a shard (its top [`SHARD_BITS`]
//! bits), a directory slot in it (the next `depth` bits, `directory.rs`) and a tag byte (`tag.rs`); the slot leads to a
//! bucket of [`BUCKET_SLOTS`] entry slots (`bucket.rs`). A full bucket splits, the directory doubling first when the
//! bucket uses all its bits, or chains when no hash bit separates its entries. Nothing but directories is replaced,
//! and nothing is freed. "Slot" names a bucket's entry positions and a directory's bucket pointers, nothing else.
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
use core::ptr::{self, NonNull};

use crate::budget::LeakBudget;
use crate::error::{LeakError, Rejected};
use crate::sync::{
    AtomicPtr, AtomicUsize, CachePadded, Mutex,
    Ordering::{Acquire, Relaxed, Release},
    UserCode,
};

mod bucket;
mod directory;
mod tag;
mod typed;

use bucket::Bucket;
use directory::{DirRef, Directory, directory_bits};
use tag::tag_of;
pub(crate) use typed::{EntryKind, EntryRef, Insert, TypedTable};

/// Shards of a table in a large budget: `1 << SHARD_BITS`. Each has its own lock and directory, so inserts into
/// different shards never contend. The directories use the hash bits after these, whatever number of shards a table
/// has. (Loom models use one shard and smaller buckets, so that a handful of inserts reaches a split.)
#[cfg(not(loom))]
const SHARD_BITS: u32 = 4;
#[cfg(loom)]
const SHARD_BITS: u32 = 0;
/// The budget limit from which a table has all `1 << SHARD_BITS` shards; below it, half as many for each halving of
/// the limit, down to one. A shard costs 256 bytes, and its first bucket and directory 176 more: 7 KiB for sixteen,
/// which a small budget cannot spare, and a small table sees little contention.
const ALL_SHARDS_FROM: usize = 1 << 20;
/// Entry slots per bucket.
#[cfg(not(loom))]
const BUCKET_SLOTS: usize = 16;
#[cfg(loom)]
const BUCKET_SLOTS: usize = 8;
/// Directory bits a shard may use. Beyond this, buckets chain instead of splitting.
const MAX_DEPTH: u32 = 40;

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

/// The untyped table: shards of entry pointers. Only [`TypedTable`] uses it. Lives in a budget (inside its owner's
/// state) and is never freed.
#[derive(Debug)]
struct Table {
    /// The shards, leaked into the budget with the table.
    ///
    /// Invariant: `shards.len() == 1 << (64 - shift)` (one shard for `shift == 64`), so `hash >> shift` indexes it.
    shards: &'static [Shard],
    /// `64 - log2(shards.len())`: a hash's top bits beyond it pick its shard. Immutable.
    shift: u32,
}

/// What [`Table::find_or_insert`] needs from the value being inserted, in untyped pointers ([`TypedTable`] adapts
/// its typed [`Insert`]s to it).
trait RawInsert: Sized {
    /// Whether `entry` holds a value equal to the one being inserted. User code (`Eq`), run under the shard lock.
    fn matches(&self, entry: NonNull<u8>) -> bool;
    /// The hash `entry` was inserted with, to split buckets. Must not panic.
    fn rehash(&self, entry: NonNull<u8>) -> u64;
    /// The layout [`make`](Self::make) allocates, so that an insert that cannot fit is refused before it changes
    /// anything.
    fn layout(&self) -> Layout;
    /// Leaks the new entry into `budget`. May run user code (`Clone`), under the shard lock, before it allocates.
    fn make(self, budget: &LeakBudget) -> Result<NonNull<u8>, Rejected<Self>>;
}

impl Table {
    /// An empty table whose shards are leaked into `budget`: as many as its limit affords (see [`ALL_SHARDS_FROM`]),
    /// fixed from then on. Directories and buckets are created, in the budget, by the first inserts.
    fn new(budget: &LeakBudget) -> Result<Self, LeakError> {
        let bits = Self::shard_bits_for(budget.limit());
        let shards = budget.leak_slice_fill_with(1 << bits, |_| Shard {
            directory: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            lock: Mutex::new(()),
            len: AtomicUsize::new(0),
        })?;
        Ok(Table { shards, shift: 64 - bits })
    }

    /// The most [`new`](Self::new) can charge to `budget`.
    fn charge_bound(budget: &LeakBudget) -> usize {
        let shards = Layout::array::<Shard>(1 << Self::shard_bits_for(budget.limit())).expect("at most 16 shards");
        LeakBudget::max_charge_for(shards)
    }

    /// Shard bits for a table in a budget of `limit` bytes.
    fn shard_bits_for(limit: usize) -> u32 {
        let (mut bits, mut from) = (SHARD_BITS, ALL_SHARDS_FROM);
        while bits > 0 && limit < from {
            bits -= 1;
            from /= 2;
        }
        bits
    }

    #[inline(always)]
    fn shard(&self, hash: u64) -> &Shard {
        // `checked_shr` for a table of one shard, whose shift is 64.
        let index = hash.checked_shr(self.shift).unwrap_or(0) as usize;
        // SAFETY: `index < 1 << (64 - shift) == shards.len()` (the `shards` invariant).
        unsafe { self.shards.get_unchecked(index) }
    }

    /// Finds an entry with this `hash` for which `eq` holds, without locking or allocating. May miss an entry that is
    /// being moved by a concurrent split: a caller about to insert must use [`find_or_insert`](Self::find_or_insert),
    /// and a caller that must not miss falls back to [`find_locked`](Self::find_locked).
    #[inline(always)]
    fn find(&self, hash: u64, mut eq: impl FnMut(NonNull<u8>) -> bool) -> Option<NonNull<u8>> {
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
    #[track_caller]
    fn find_locked(&self, user: UserCode, hash: u64, mut eq: impl FnMut(NonNull<u8>) -> bool) -> Option<NonNull<u8>> {
        let _locked = self.shard(hash).lock.lock();
        self.find(hash, |entry| user.run(|| eq(entry)))
    }

    /// Finds an entry equal to `insert`'s value, or inserts a new one made by `insert`.
    ///
    /// Under the shard lock: looks again; if absent, makes room (splitting a bucket or doubling the directory, both
    /// allocated in `budget`), then calls [`make`](RawInsert::make), which leaks the entry into the budget. So an entry
    /// is made and charged at most once per distinct value, however many threads race to insert it. Refuses up front,
    /// from [`layout`](RawInsert::layout), an insert that cannot fit, so that a refusal changes nothing. When an equal
    /// entry is found, `insert` is dropped (it may hold a user's value) after the lock is released.
    ///
    /// `matches` and `make` are user code (a value's `Eq`, `Clone` and `Drop`) run under the lock, described by
    /// `user`: if they call back into the crate for a lock, that call panics rather than deadlocks (see [`UserCode`]).
    /// A panic in `matches` leaves the table unchanged and releases the lock. A panic in `make` (a sized value's
    /// `Clone`) releases the lock and inserts nothing, but any growth already made for the entry (a split bucket, a
    /// doubled directory, a shard's first bucket) stays, charged, and serves later inserts: room is made before the
    /// entry is, so that an entry is never charged without a place to go.
    #[track_caller]
    fn find_or_insert<I: RawInsert>(
        &self,
        user: UserCode,
        budget: &LeakBudget,
        hash: u64,
        insert: I,
    ) -> Result<NonNull<u8>, Rejected<I>> {
        let shard = self.shard(hash);
        let locked = shard.lock.lock();
        if let Some(existing) = self.find(hash, |entry| user.run(|| insert.matches(entry))) {
            drop(locked);
            drop(insert);
            return Ok(existing);
        }
        let tag = tag_of(hash);
        // Refuse up front what cannot fit (entry, plus a bucket and a doubled directory if the target is full), so
        // that a refusal leaves table and budget as they were.
        let growth = if Self::has_room(shard, hash) { 0 } else { Self::growth_bound(shard) };
        let needed = LeakBudget::max_charge_for(insert.layout()).saturating_add(growth);
        if let Err(error) = budget.check_room(needed) {
            return Err(Rejected::new(insert, budget.refuse(error)));
        }
        let (bucket, slot) = match Self::make_room(shard, budget, hash, &|entry| insert.rehash(entry)) {
            Ok(place) => place,
            Err(error) => return Err(Rejected::new(insert, error)),
        };
        let entry = user.run(|| insert.make(budget))?;
        // Counted before it is published: the `Release` in `put` orders the count before the entry, so a thread that
        // can see the entry (an `Acquire` load of its tag) also sees it counted by `len`.
        shard.len.store(shard.len.load(Relaxed) + 1, Relaxed);
        bucket.put(slot, tag, entry);
        drop(locked);
        Ok(entry)
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
            // otherwise they are equal as far as the directory can tell, and the bucket chains. Each entry's hash is
            // computed once, here, and the split reuses it: a rehash reads the entry's value, a likely cache miss.
            // (The bucket is full, so every slot has an entry; an empty one would count as `hash`, which separates
            // nothing.)
            let hashes: [u64; BUCKET_SLOTS] = core::array::from_fn(|slot| head.entry(slot).map_or(hash, rehash));
            let separating_bit = hashes
                .iter()
                .fold(0, |acc, &other| acc | (directory_bits(other) ^ directory_bits(hash)))
                .leading_zeros();
            if separating_bit < MAX_DEPTH && head.overflow.load(Acquire).is_null() {
                Self::split(shard, budget, directory, head, hash, &hashes)?;
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
        let directory = DirRef::leak(budget, 0, |_| ptr::from_ref(bucket).cast_mut())?;
        shard.directory.store(directory.as_ptr(), Release);
        Ok(directory)
    }

    /// Splits full bucket `bucket` (the one `hash` selects): entries whose next hash bit is 1 move to a new bucket.
    /// `hashes[slot]` is the hash of the entry in `slot` (every slot is full).
    /// Doubles the directory first if the bucket already uses all of its bits. Allocates first and changes the table
    /// only once everything it needs is allocated, so a refusal leaves it as it was.
    fn split(
        shard: &Shard,
        budget: &LeakBudget,
        directory: DirRef,
        bucket: &'static Bucket,
        hash: u64,
        hashes: &[u64; BUCKET_SLOTS],
    ) -> Result<(), LeakError> {
        let local = bucket.local_depth();
        let sibling: &'static Bucket = budget.leak_with(|| Bucket::new(local + 1))?;
        let directory = if local == directory.depth() {
            let old = directory.slots();
            let doubled = DirRef::leak(budget, directory.depth() + 1, |index| old[index >> 1].load(Acquire))?;
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
        for (slot, &hash) in hashes.iter().enumerate() {
            if let Some(entry) = bucket.entry(slot) {
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
    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len.load(Relaxed)).sum()
    }

    /// Shards the table has: [`shard_entries`](Self::shard_entries) takes `0..shard_count()`.
    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Appends the entries of shard `index` to `entries`, under the shard's lock (so entries being moved are neither
    /// missed nor repeated). Only copies pointers: no user code runs under the lock.
    fn shard_entries(&self, index: usize, entries: &mut Vec<NonNull<u8>>) {
        let shard = &self.shards[index];
        entries.reserve(shard.len.load(Relaxed));
        {
            let _locked = shard.lock.lock();
            // SAFETY: under the shard lock; directories and buckets are never freed.
            let Some(directory) = (unsafe { DirRef::new(shard.directory.load(Acquire)) }) else { return };
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
    }
}
