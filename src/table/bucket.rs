//! [`Bucket`]: up to [`BUCKET_SLOTS`] entry pointers with their tags, and an overflow chain.

use core::ptr::{self, NonNull};

use super::BUCKET_SLOTS;
use super::tag::{TAGS_PER_WORD, free_bytes, matching_bytes};
use crate::sync::{
    AtomicPtr, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// Words of tags per bucket.
const TAG_WORDS: usize = BUCKET_SLOTS / TAGS_PER_WORD;
const _: () = assert!(TAG_WORDS <= 8, "`find` merges the tag words' matches into the 8 bits of each byte of a mask");

/// A bucket: up to [`BUCKET_SLOTS`] entries, their tags, and an overflow chain for entries with equal hashes.
#[repr(C)]
#[derive(Debug)]
pub(super) struct Bucket {
    /// One tag byte per slot, [`TAGS_PER_WORD`] per word (byte `i` of a word is bits `8i..8i+8`); 0 = empty.
    ///
    /// Invariant: a non-zero tag means the slot holds a published entry (the slot is written before the tag).
    pub(super) tags: [AtomicUsize; TAG_WORDS],
    /// Entry pointers; null = empty. Only written under the shard lock.
    pub(super) slots: [AtomicPtr<u8>; BUCKET_SLOTS],
    /// Next bucket of the chain (only at `MAX_DEPTH`, or for entries with equal directory bits). Null = none.
    pub(super) overflow: AtomicPtr<Bucket>,
    /// Directory bits this bucket's entries share. Only read and written under the shard lock.
    pub(super) local_depth: AtomicUsize,
}

impl Bucket {
    pub(super) fn new(local_depth: u32) -> Self {
        Self {
            tags: core::array::from_fn(|_| AtomicUsize::new(0)),
            slots: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            overflow: AtomicPtr::new(ptr::null_mut()),
            local_depth: AtomicUsize::new(local_depth as usize),
        }
    }

    /// The entry in `slot`, if its tag says it is occupied.
    pub(super) fn entry(&self, slot: usize) -> Option<NonNull<u8>> {
        let tag = (self.tags[slot / TAGS_PER_WORD].load(Acquire) >> (8 * (slot % TAGS_PER_WORD))) & 0xff;
        if tag == 0 { None } else { NonNull::new(self.slots[slot].load(Acquire)) }
    }

    /// An entry of this bucket (not its chain) tagged `tag` for which `eq` holds.
    ///
    /// The tag words are matched first and their results merged into one mask, so that a look-up branches once on
    /// "any candidate?" rather than once per word: which word holds a hit's tag is a coin toss the branch predictor
    /// would lose half the time. Word `i`'s match for its byte `k` lands on bit `8k + i` of the mask.
    #[inline(always)]
    pub(super) fn find(&self, tag: usize, eq: &mut impl FnMut(NonNull<u8>) -> bool) -> Option<NonNull<u8>> {
        let mut matches = 0;
        for (word_index, word) in self.tags.iter().enumerate() {
            matches |= matching_bytes(word.load(Acquire), tag) >> (7 - word_index);
        }
        while matches != 0 {
            let bit = matches.trailing_zeros() as usize;
            let slot = (bit % 8) * TAGS_PER_WORD + bit / 8;
            if let Some(entry) = NonNull::new(self.slots[slot].load(Acquire)) {
                if eq(entry) {
                    return Some(entry);
                }
            }
            matches &= matches - 1;
        }
        None
    }

    /// A free slot, if any. Only meaningful under the shard lock. Reads the tags a word at a time (an occupied
    /// slot's tag has its top bit set, a free one is 0), not each slot: inserts ask this once or twice each.
    pub(super) fn free_slot(&self) -> Option<usize> {
        self.tags.iter().enumerate().find_map(|(word_index, word)| {
            let free = free_bytes(word.load(Relaxed));
            (free != 0).then(|| word_index * TAGS_PER_WORD + (free.trailing_zeros() / 8) as usize)
        })
    }

    /// Stores `entry` in free `slot` with its `tag`: the slot first, then the tag (`Release`), so a reader that
    /// sees the tag sees the entry. Only under the shard lock.
    ///
    /// The tag word is loaded and stored rather than updated with `fetch_or`: the shard lock makes this thread its
    /// only writer, and a read-modify-write would wait for every store before it (the new entry's bytes, often on
    /// lines not yet in cache) to complete.
    pub(super) fn put(&self, slot: usize, tag: usize, entry: NonNull<u8>) {
        self.slots[slot].store(entry.as_ptr(), Release);
        let word = &self.tags[slot / TAGS_PER_WORD];
        word.store(word.load(Relaxed) | tag << (8 * (slot % TAGS_PER_WORD)), Release);
    }

    /// Empties `slot`: the tag first, then the slot. Only under the shard lock (the only writer, as in `put`).
    pub(super) fn clear(&self, slot: usize) {
        let word = &self.tags[slot / TAGS_PER_WORD];
        word.store(word.load(Relaxed) & !(0xff << (8 * (slot % TAGS_PER_WORD))), Release);
        self.slots[slot].store(ptr::null_mut(), Release);
    }

    pub(super) fn local_depth(&self) -> u32 {
        // At most `MAX_DEPTH`, so it fits.
        self.local_depth.load(Relaxed) as u32
    }
}
