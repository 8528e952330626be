//! The tag bytes of a bucket: one byte per slot, [`TAGS_PER_WORD`] to a word, compared with a look-up's tag a whole
//! word at a time (SWAR: SIMD within a register). On `x86_64`, `bucket.rs` compares both words at once with SSE2
//! instead; this is the portable path (other targets, 32-bit ones, loom), and writers use [`free_bytes`] everywhere.

use core::mem::size_of;

/// Tag bytes per word.
pub(super) const TAGS_PER_WORD: usize = size_of::<usize>();
/// `0x0101..01`: one in every byte of a tag word.
const LOW_BITS: usize = usize::MAX / 0xff;
/// `0x8080..80`: the top bit of every byte of a tag word.
const HIGH_BITS: usize = LOW_BITS << 7;

/// The tag stored for `hash`: its low 7 bits, with the top bit set so that no tag is 0 (empty).
pub(super) fn tag_of(hash: u64) -> usize {
    (hash as usize & 0x7f) | 0x80
}

/// One bit per byte of `word` (the byte's top bit) where that byte is a free slot's 0. Every stored tag has its top
/// bit set ([`tag_of`]), so a clear top bit means free.
pub(super) fn free_bytes(word: usize) -> usize {
    !word & HIGH_BITS
}

/// `flags` (a byte's top bit set or clear, the rest clear, as [`matching_bytes`] and [`free_bytes`] give) as one bit
/// per byte: bit `k` for byte `k`. One multiply gathers them: byte `k`'s flag, shifted down to bit `8k`, is carried by
/// [`GATHER`] to bit `8 * (TAGS_PER_WORD - 1) + k`, and every other product lands on a bit of its own outside that
/// byte, so nothing carries into it.
pub(super) fn gather_byte_flags(flags: usize) -> usize {
    ((flags >> 7).wrapping_mul(GATHER) >> (8 * (TAGS_PER_WORD - 1))) & ((1 << TAGS_PER_WORD) - 1)
}

/// The multiplier of [`gather_byte_flags`]: bit `8 * (TAGS_PER_WORD - 1) - 7k` for every byte `k`
/// (`0x0102_0408_1020_4080` on 64-bit targets).
const GATHER: usize = {
    let mut gather = 0;
    let mut byte = 0;
    while byte < TAGS_PER_WORD {
        gather |= 1 << (8 * (TAGS_PER_WORD - 1) - 7 * byte);
        byte += 1;
    }
    gather
};

/// One bit per byte of `word` (the byte's top bit) where that byte equals `tag`. Exact: no false positives.
pub(super) fn matching_bytes(word: usize, tag: usize) -> usize {
    let diff = word ^ (tag * LOW_BITS);
    // A byte of `diff` is zero iff adding 0x7f to its low 7 bits leaves its top bit clear and its own top bit is clear.
    !(((diff & !HIGH_BITS) + !HIGH_BITS) | diff | !HIGH_BITS)
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
    fn free_bytes_are_exactly_the_zero_bytes_of_a_tag_word() {
        for pattern in [&[0u8][..], &[0x80], &[0xff, 0], &[0, 0x81, 0x80, 0], &[0x81, 0x80, 0xff, 0xc3, 0, 0, 0x80, 0]]
        {
            let word = word_of(pattern);
            let got: Vec<usize> = (0..TAGS_PER_WORD).filter(|i| free_bytes(word) & (0x80 << (8 * i)) != 0).collect();
            assert_eq!(got, positions(word, 0), "word {word:#x}");
        }
    }

    #[test]
    fn gathered_flags_are_one_bit_per_flagged_byte() {
        // Every combination of flagged bytes.
        for expected in 0..1usize << TAGS_PER_WORD {
            let flags =
                (0..TAGS_PER_WORD).filter(|byte| expected & (1 << byte) != 0).fold(0, |w, byte| w | 0x80 << (8 * byte));
            assert_eq!(gather_byte_flags(flags), expected, "flags {flags:#x}");
        }
        #[cfg(target_pointer_width = "64")]
        assert_eq!(GATHER, 0x0102_0408_1020_4080);
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
