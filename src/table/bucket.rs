//! [`Bucket`]: up to [`BUCKET_SLOTS`] entry pointers with their tags, and an overflow chain.

use core::ptr::{self, NonNull};

use super::BUCKET_SLOTS;
use super::tag::{TAGS_PER_WORD, free_bytes, gather_byte_flags, matching_bytes};
use crate::sync::{
    AtomicPtr, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// Words of tags per bucket.
const TAG_WORDS: usize = BUCKET_SLOTS / TAGS_PER_WORD;
const _: () = assert!(BUCKET_SLOTS <= usize::BITS as usize, "a slot mask has one bit per slot");

/// The slots of a bucket whose tag words are `words` that `flags` marks (it sets a byte's top bit), as one mask
/// with bit `s` for slot `s`: each word's byte flags gathered into its slots' bits. The portable path of
/// [`Bucket::candidates`], and how writers find free slots everywhere.
#[inline(always)]
fn slot_mask(words: impl IntoIterator<Item = usize>, flags: impl Fn(usize) -> usize) -> usize {
    words
        .into_iter()
        .enumerate()
        .fold(0, |mask, (word_index, word)| mask | gather_byte_flags(flags(word)) << (word_index * TAGS_PER_WORD))
}

/// The slots of a 16-slot bucket whose tag bytes (two words, slot `s` in byte `s % 8` of word `s / 8`) equal `tag`,
/// one bit per slot: SSE2 compares all sixteen bytes at once and gathers the result with one `pmovmskb`, a shorter
/// chain of dependent instructions than SWAR on two words, on every look-up.
#[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
#[inline(always)]
fn sse2_matching_slots(words: [usize; 2], tag: usize) -> usize {
    use core::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
    // The same bits, as the types the intrinsics take: the two words, and the tag's low byte.
    let [low, high] = words.map(|word| i64::from_ne_bytes(word.to_ne_bytes()));
    let tag = i8::from_ne_bytes([tag.to_le_bytes()[0]]);
    // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions exist on every x86_64 processor; the
    // intrinsics read and write registers only.
    let mask = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_set_epi64x(high, low), _mm_set1_epi8(tag))) };
    // `pmovmskb` sets only the low 16 bits: the value is not negative.
    u32::from_ne_bytes(mask.to_ne_bytes()) as usize
}

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
    #[inline(always)]
    pub(super) fn find(&self, tag: usize, eq: &mut impl FnMut(NonNull<u8>) -> bool) -> Option<NonNull<u8>> {
        let mut candidates = self.candidates(tag);
        while candidates != 0 {
            let slot = candidates.trailing_zeros() as usize;
            // `% BUCKET_SLOTS` is a mask (a power of two) that lets the compiler drop the bounds check.
            if let Some(entry) = NonNull::new(self.slots[slot % BUCKET_SLOTS].load(Acquire)) {
                if eq(entry) {
                    return Some(entry);
                }
            }
            candidates &= candidates - 1;
        }
        None
    }

    /// The slots tagged `tag`, one bit per slot. All tag words are matched before the caller branches, so that a
    /// look-up branches once on "any candidate?" rather than once per word (which word holds a hit's tag is a coin
    /// toss the branch predictor would lose half the time).
    #[inline(always)]
    fn candidates(&self, tag: usize) -> usize {
        #[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
        if let [low, high] = self.tags.as_slice() {
            return sse2_matching_slots([low.load(Acquire), high.load(Acquire)], tag);
        }
        slot_mask(self.tags.iter().map(|word| word.load(Acquire)), |word| matching_bytes(word, tag))
    }

    /// A free slot, if any. Only meaningful under the shard lock. Reads the tags a word at a time (an occupied
    /// slot's tag has its top bit set, a free one is 0), not each slot: inserts ask this once or twice each.
    pub(super) fn free_slot(&self) -> Option<usize> {
        let free = slot_mask(self.tags.iter().map(|word| word.load(Relaxed)), free_bytes);
        (free != 0).then(|| free.trailing_zeros() as usize)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots set in `mask`, in order.
    fn slots(mask: usize) -> Vec<usize> {
        (0..BUCKET_SLOTS).filter(|&slot| mask & (1 << slot) != 0).collect()
    }

    /// The tag words of a bucket whose slot `s` holds `tags[s % tags.len()]`.
    fn words(tags: &[u8]) -> [usize; TAG_WORDS] {
        core::array::from_fn(|word| {
            (0..TAGS_PER_WORD)
                .fold(0, |acc, byte| acc | usize::from(tags[(word * TAGS_PER_WORD + byte) % tags.len()]) << (8 * byte))
        })
    }

    #[test]
    fn candidates_are_exactly_the_slots_with_the_tag_whichever_way_they_are_matched() {
        let patterns: [&[u8]; 6] = [&[0], &[0x80], &[0x81, 0x80], &[0xff, 0, 0x81, 0x80, 0x80], &[0x81; 3], &[0, 0x9c]];
        for pattern in patterns {
            let words = words(pattern);
            for tag in [0x80_usize, 0x81, 0x9c, 0xff] {
                let expected: Vec<usize> =
                    (0..BUCKET_SLOTS).filter(|&slot| usize::from(pattern[slot % pattern.len()]) == tag).collect();
                let portable = slot_mask(words, |word| matching_bytes(word, tag));
                assert_eq!(portable >> BUCKET_SLOTS, 0, "no bit beyond the slots: {pattern:?} {tag:#x}");
                assert_eq!(slots(portable), expected, "{pattern:?} {tag:#x}");
                #[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
                if let [low, high] = words.as_slice() {
                    let mask = sse2_matching_slots([*low, *high], tag);
                    assert_eq!(mask, portable, "sse2: {pattern:?} {tag:#x}");
                }
            }
        }
    }
}
