//! Loom models of the table's growth, through `Interner<u64>` (and an interner of a type whose values all hash alike):
//! a reader holding a directory across four doublings, a bucket split that does not double the directory, a snapshot
//! taken during that split, an overflow chain of equal hashes, and `len` against what a reader can find.
//!
//! Under loom the table has one shard and 8-slot buckets, and the interner hashes with `foldhash`'s fixed state, so
//! each model picks its values by their hashes' leading bits (the bits that select directory slots) to build the
//! shape it needs. Each model also checks, by counting the allocations the racing insert made (buckets, directories
//! and the entry are one allocation each), that the shape was built: if the hashing changes, the model fails rather
//! than silently testing something easier.
//!
//! The main thread inserts and a spawned thread reads (see `main.rs` on why the writer runs first). Checked against
//! the library with a fault put in: with `Interner::get`'s look-up under the lock removed (a lock-free miss taken as
//! final), both split models fail ("a present value is never missed"); with a shard's count stored after the entry's
//! tag, the `len` model fails ("found 2 values, len() says 1").

use core::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool as SeenFlag, Ordering::Relaxed as Seen};

use foldhash::fast::SeedableRandomState;
use leak_budget::{Interned, Interner};
use loom::thread;

use crate::{Bounds, budget};

fn interner<T: ?Sized + 'static>(limit: usize) -> &'static Interner<T> {
    Box::leak(Box::new(Interner::in_budget(budget("table", limit))))
}

/// The hash an `Interner<u64>` gives `value` under loom.
fn hash(value: u64) -> u64 {
    SeedableRandomState::fixed().hash_one(value)
}

/// Whether `value`'s hash starts with `prefix` (`'0'`s and `'1'`s, most significant bit first): the bits that pick
/// its directory slot, the first one at depth 1.
fn has_prefix(value: u64, prefix: &str) -> bool {
    let hash = hash(value);
    prefix.bytes().enumerate().all(|(bit, digit)| (hash >> (63 - bit)) & 1 == u64::from(digit - b'0'))
}

/// Picks values by their hashes' leading bits, each value at most once.
#[derive(Default)]
struct Picker {
    taken: Vec<u64>,
}

impl Picker {
    /// The next `count` values not taken yet whose hashes start with `prefix`.
    fn take(&mut self, prefix: &str, count: usize) -> Vec<u64> {
        let picked: Vec<u64> =
            (0..).filter(|value| !self.taken.contains(value) && has_prefix(*value, prefix)).take(count).collect();
        self.taken.extend(&picked);
        picked
    }

    fn one(&mut self, prefix: &str) -> u64 {
        self.take(prefix, 1)[0]
    }
}

/// Values placed in `values`' budget so far: every entry, bucket and directory is one.
fn allocations<T: ?Sized>(values: &Interner<T>) -> usize {
    values.budget().unwrap().stats().allocations
}

/// Interns each of `values` in turn.
fn intern_all(interner: &Interner<u64>, values: &[u64]) -> Vec<Interned<u64>> {
    values.iter().map(|value| interner.intern(value).unwrap()).collect()
}

#[test]
fn a_reader_holding_a_directory_across_four_doublings_never_misses_a_present_value() {
    // One full bucket whose eight values share their first three bits, and a ninth value that shares them too: its
    // insert splits the bucket four times, doubling the directory each time (depth 0 to 4), and only the last split
    // moves anything: `mover`, the one value whose fourth bit is 1, goes to a new bucket that only the depth-4
    // directory points to. A reader that loaded the directory before any of this (or any directory in between) and
    // reads it afterwards finds `mover` gone from the bucket it points to.
    let mut pick = Picker::default();
    let staying = pick.take("0000", 7);
    let mover = pick.one("0001");
    let ninth = pick.one("0000");
    crate::model(Bounds::CI, move || {
        let values = interner::<u64>(64 << 10);
        let moved = values.intern(&mover).unwrap();
        let stayed = intern_all(values, &staying);
        let before = allocations(values);
        let reader = thread::spawn(move || {
            // A look-up can load the directory before the splits and its bucket after them: it must still find the
            // value, and re-interning it must neither insert it again nor hand out another handle.
            assert_eq!(values.get(&mover), Some(moved), "a present value is never missed");
            assert_eq!(values.intern(&mover).unwrap(), moved);
        });
        let inserted = values.intern(&ninth).unwrap();
        reader.join().unwrap();
        assert_eq!(
            allocations(values) - before,
            4 + 4 + 1,
            "the ninth value's insert took four buckets, four directories and its entry (if not, the hashes no longer \
             have the leading bits this model was built for)"
        );
        assert_eq!(values.len(), 9);
        assert_eq!(values.get(&ninth), Some(inserted));
        assert_eq!(values.get(&mover), Some(moved));
        for (value, handle) in staying.iter().zip(&stayed) {
            assert_eq!(values.get(value), Some(*handle));
        }
    });
}

#[test]
fn a_bucket_split_that_does_not_double_the_directory_loses_no_value() {
    // Build a directory of depth 2 whose "1" half is one bucket of local depth 1, fill that bucket, then race an
    // insert that splits it without doubling the directory (it repoints one directory slot to a new bucket) against
    // a reader of the value that moves.
    let mut pick = Picker::default();
    // Eight values starting with 0, one of them with 01: the ninth (00) splits at the first bit (doubling to depth 1,
    // moving nothing), then at the second (doubling to depth 2, moving the 01 value). The "1" bucket stays at local
    // depth 1, empty.
    let mut first = pick.take("00", 7);
    first.extend(pick.take("01", 1));
    let deepening = pick.one("00");
    // Fill the "1" bucket: seven 10 values and `mover`, an 11 value; `splitter` (10) splits it at the second bit.
    let mut ones = pick.take("10", 7);
    let mover = pick.one("11");
    ones.push(mover);
    let splitter = pick.one("10");
    // Cheap enough to explore at a bound of 8 (about 1,200 executions, as many as with no bound).
    crate::model(Bounds::preemptions(8), move || {
        let values = interner::<u64>(64 << 10);
        intern_all(values, &first);
        let before = allocations(values);
        values.intern(&deepening).unwrap();
        assert_eq!(
            allocations(values) - before,
            2 + 2 + 1,
            "two splits, each doubling the directory (if not, the hashes no longer have the leading bits this model \
             was built for)"
        );
        let filled = intern_all(values, &ones);
        let moved = filled[7];
        let before = allocations(values);
        let reader = thread::spawn(move || {
            assert_eq!(values.get(&mover), Some(moved), "a present value is never missed");
            assert_eq!(values.intern(&mover).unwrap(), moved);
        });
        let inserted = values.intern(&splitter).unwrap();
        reader.join().unwrap();
        assert_eq!(allocations(values) - before, 1 + 1, "one new bucket and the entry: no directory");
        assert_eq!(values.len(), 18);
        assert_eq!(values.get(&splitter), Some(inserted));
        for (value, handle) in ones.iter().zip(&filled) {
            assert_eq!(values.get(value), Some(*handle));
        }
    });
}

#[test]
fn a_snapshot_taken_while_a_bucket_splits_lists_each_value_once() {
    // The shape of the model above: a depth-2 directory whose "1" half is one full bucket of local depth 1, split by
    // a racing insert into two buckets of local depth 2. `snapshot` walks the directory under the shard lock, visiting
    // each bucket from the first of the slots that share it: before the split, from slot 2 only; after, from slots 2
    // and 3. Either way each value is listed once, and the new one only if its insert came first.
    let mut pick = Picker::default();
    let mut values = pick.take("00", 7);
    values.extend(pick.take("01", 1));
    values.extend(pick.take("00", 1));
    values.extend(pick.take("10", 7));
    values.extend(pick.take("11", 1));
    let splitter = pick.one("10");
    crate::model(Bounds::preemptions(8), move || {
        let interner = interner::<u64>(64 << 10);
        intern_all(interner, &values);
        let before = allocations(interner);
        let reader = thread::spawn(move || {
            let mut listed: Vec<u64> = interner.iter().map(|value| *value).collect();
            listed.sort_unstable();
            listed
        });
        interner.intern(&splitter).unwrap();
        let listed = reader.join().unwrap();
        assert_eq!(allocations(interner) - before, 1 + 1, "a split without doubling (see the model above)");
        let mut expected = values.clone();
        if listed.contains(&splitter) {
            expected.push(splitter);
            SEEN_SNAPSHOT_AFTER.store(true, Seen);
        } else {
            SEEN_SNAPSHOT_BEFORE.store(true, Seen);
        }
        expected.sort_unstable();
        assert_eq!(listed, expected, "each value once, none missing");
    });
    assert!(SEEN_SNAPSHOT_BEFORE.load(Seen) && SEEN_SNAPSHOT_AFTER.load(Seen), "snapshots before and after the split");
}

static SEEN_SNAPSHOT_BEFORE: SeenFlag = SeenFlag::new(false);
static SEEN_SNAPSHOT_AFTER: SeenFlag = SeenFlag::new(false);

/// A value whose `Hash` writes nothing: every value hashes alike, so the table cannot split them apart and chains
/// overflow buckets instead.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Collides(u32);

impl Hash for Collides {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

#[test]
fn values_with_equal_hashes_chain_and_are_found_while_the_chain_grows() {
    // At a bound of 8 loom explores all 109 executions it distinguishes (as many as with no bound).
    crate::model(Bounds::preemptions(8), || {
        let values = interner::<Collides>(64 << 10);
        // One full bucket: the next value needs an overflow bucket.
        let present: Vec<Interned<Collides>> = (0..8).map(|i| values.intern(&Collides(i)).unwrap()).collect();
        let before = allocations(values);
        // The reader looks for a value in the chain's new bucket (there or not yet), for one in the first bucket
        // (always there), and races the writer to insert the second new value.
        let last = present[7];
        let reader = thread::spawn(move || {
            let early = values.get(&Collides(8));
            assert_eq!(values.get(&Collides(7)), Some(last));
            let raced = values.intern(&Collides(9)).unwrap();
            assert_eq!(*raced, Collides(9));
            (early, raced)
        });
        // The writer appends the chain's second bucket with its first new value, then puts a second one in it.
        let eighth = values.intern(&Collides(8)).unwrap();
        let ninth = values.intern(&Collides(9)).unwrap();

        let (early, raced) = reader.join().unwrap();
        assert_eq!(ninth, raced, "one entry for the value both threads inserted");
        assert!(early.is_none() || early == Some(eighth), "{early:?}");
        assert_eq!(allocations(values) - before, 1 + 2, "one overflow bucket and two entries");
        assert_eq!(values.len(), 10);
        for (i, handle) in (0..8).zip(&present) {
            assert_eq!(values.get(&Collides(i)), Some(*handle));
        }
        assert_eq!(values.get(&Collides(8)), Some(eighth));
        assert_ne!(eighth, ninth);
    });
}

#[test]
fn len_counts_every_value_a_reader_can_find() {
    // Entries are counted (a `Relaxed` store) before they are published (the tag's `Release`), so a reader that finds
    // an entry through the tag's `Acquire` load cannot read a count that misses it. Loom explores, for each `Relaxed`
    // load, every older store the happens-before order still allows, so a count stored after the tag (or a tag
    // published with `Relaxed`) would show here as a reader finding more values than `len()` counts. At a bound of 8
    // loom explores all 36 executions it distinguishes (as many as with no bound).
    crate::model(Bounds::preemptions(8), || {
        let values = interner::<u64>(64 << 10);
        values.intern(&0).unwrap();
        let reader = thread::spawn(move || {
            let mut found = 1;
            for value in [2, 1] {
                if values.get(&value).is_some() {
                    found += 1;
                    let len = values.len();
                    assert!(len >= found, "found {found} values, len() says {len}");
                }
            }
            assert!(values.len() <= 3);
        });
        values.intern(&1).unwrap();
        values.intern(&2).unwrap();
        reader.join().unwrap();
        assert_eq!(values.len(), 3);
    });
}
