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
const _: () = assert!(TAG_WORDS <= 7, "`candidates` merges the tag words' matches into 7 bits of each byte of a mask");

/// Slots of a bucket whose tags matched, in a mask: bit `s` for slot `s` when [`INTERLEAVED`] is clear (the SSE2
/// path), or, when it is set, word `i`'s byte `k` on bit `8k + i` (the portable path, which merges the words' SWAR
/// matches by shifting each word's byte flags to its own bit of every byte).
struct Candidates {
    mask: usize,
}

/// The flag of an interleaved [`Candidates`] mask: bit 7 of the top byte, a position no tag word's match reaches
/// (word `i` lands on bit `i` of each byte, and `TAG_WORDS <= 7`).
const INTERLEAVED: usize = 1 << (usize::BITS - 1);

impl Candidates {
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        let bits = self.mask & !INTERLEAVED;
        if bits == 0 {
            return None;
        }
        self.mask &= self.mask - 1;
        let bit = bits.trailing_zeros() as usize;
        Some(if self.mask & INTERLEAVED != 0 { (bit % 8) * TAGS_PER_WORD + bit / 8 } else { bit })
    }
}

/// The slots of a bucket whose tag words are `words` equal `tag`, the portable way: each word's SWAR matches,
/// merged into an interleaved mask.
#[inline(always)]
fn interleaved_matching_slots(words: impl Iterator<Item = usize>, tag: usize) -> Candidates {
    let mut mask = 0;
    for (word_index, word) in words.enumerate() {
        mask |= matching_bytes(word, tag) >> (7 - word_index);
    }
    Candidates { mask: mask | INTERLEAVED }
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
        while let Some(slot) = candidates.next() {
            // `% BUCKET_SLOTS` is a mask (a power of two) that lets the compiler drop the bounds check.
            if let Some(entry) = NonNull::new(self.slots[slot % BUCKET_SLOTS].load(Acquire)) {
                if eq(entry) {
                    return Some(entry);
                }
            }
        }
        None
    }

    /// The slots tagged `tag`. All tag words are matched before the caller branches, so that a look-up branches
    /// once on "any candidate?" rather than once per word (which word holds a hit's tag is a coin toss the branch
    /// predictor would lose half the time).
    #[inline(always)]
    fn candidates(&self, tag: usize) -> Candidates {
        #[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
        if let [low, high] = self.tags.as_slice() {
            return Candidates { mask: sse2_matching_slots([low.load(Acquire), high.load(Acquire)], tag) };
        }
        interleaved_matching_slots(self.tags.iter().map(|word| word.load(Acquire)), tag)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots of `words` tagged `tag`, in order, from a [`Candidates`].
    fn slots(mut candidates: Candidates) -> Vec<usize> {
        let mut slots: Vec<usize> = core::iter::from_fn(|| candidates.next()).collect();
        slots.sort_unstable();
        slots
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
                assert_eq!(slots(interleaved_matching_slots(words.into_iter(), tag)), expected, "{pattern:?} {tag:#x}");
                #[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
                if let [low, high] = words.as_slice() {
                    let mask = sse2_matching_slots([*low, *high], tag);
                    assert_eq!(slots(Candidates { mask }), expected, "sse2: {pattern:?} {tag:#x}");
                }
            }
        }
    }
}
