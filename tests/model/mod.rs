//! A model of one `LeakBudget` used by one thread, shared by the property tests (`tests/it/properties.rs`, which draws
//! operations with proptest) and the fuzz target (`fuzz/fuzz_targets/budget.rs`, which decodes them from bytes).
//!
//! [`Model::apply`] runs one operation and checks it against what the budget promises, panicking on any difference:
//! - a served reference is aligned, its contents are what was asked for, and its figures moved exactly: `used` by the
//!   size plus less than one alignment of padding, `allocations` by one, nothing else but `reserved`/`peak_reserved`;
//! - zero-sized requests are free: no figure moves;
//! - a refusal for lack of budget happens only when `remaining()` before the call was below
//!   `LeakBudget::max_charge_for(layout)` (plus `LeakBudget::RECORD_BYTES` for the budget's first request), and other
//!   errors only for requests that can never fit; after any refusal every figure is unchanged but `rejections` (+1),
//!   and a by-value argument comes back intact;
//! - [`Op::SetLimit`] changes the limit and nothing else (it may lower it below `reserved`);
//! - the cap, restated for a limit that changes: no byte is charged while it would leave `reserved` above the limit
//!   (a request that grew `reserved` left it at most `limit`, so while `reserved > limit` nothing grows it);
//! - after every operation `used <= reserved <= peak_reserved`, and `peak_reserved` is at most the highest limit the
//!   budget has had.
//!
//! [`Model::finish`] then checks that every reference is still intact (nothing was written past any buffer) and that
//! no two overlap.
//!
//! Add an operation for a new component by adding an `Op` variant, its `decode` arm and its `apply` arm.

use core::alloc::Layout;
use core::mem::size_of;

use leak_budget::{LeakBudget, LeakError};

// The test binaries' helper, by path: the fuzz target compiles this model without tests/support. (The `it` binary
// includes the file twice, here and in its support module.)
#[allow(clippy::duplicate_mod)]
#[path = "../support/stats.rs"]
mod stats;
use stats::without_rejections;

/// A plain-bytes value aligned to 64.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Align64(pub [u8; 64]);

/// A plain-bytes value aligned to 4096.
#[repr(C, align(4096))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Align4096(pub [u8; 4096]);

/// Typed values `leak` moves into the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    U8,
    U64,
    U128,
    Bytes3,
    Align64,
    Align4096,
    /// A `String` (its heap buffer stays owned by the leaked value).
    Owned,
    /// A zero-sized value.
    Unit,
}

/// Requests that can never be served on any budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absurd {
    /// `leak_uninit_slice::<u64>(usize::MAX / 4)`: the size overflows.
    SliceOverflow,
    /// `leak_layout` of `isize::MAX` bytes.
    MaxLayout,
    /// `leak_layout` of `isize::MAX / 2` bytes: too large for any limit the model uses.
    HalfLayout,
    /// `leak_layout` aligned to 2^30, beyond `MAX_ALIGN`.
    OverAligned,
}

/// One request. Sizes are small enough to run thousands of sequences; alignments go up to 2^16.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `leak_layout(Layout::from_size_align(size, 1 << align_shift))`, then fill it.
    Layout { size: usize, align_shift: u8 },
    /// `leak(value)` for a value of this type.
    Leak(Typed),
    /// `leak_with(|| [u32; 16])`.
    With,
    /// `leak_str` of `len` bytes.
    Str { len: usize },
    /// `leak_slice` of `len` `u32`s.
    Slice { len: usize },
    /// `leak_vec` of `len` `u16`s.
    Vec { len: usize },
    /// `leak_uninit_slice::<u64>(len)`, then fill it.
    Uninit { len: usize },
    /// A request that must fail whatever the limit.
    Absurd(Absurd),
    /// `set_limit(reserved + delta)` (saturating at zero): a negative `delta` lowers the limit below what is already
    /// reserved.
    SetLimit { delta: i32 },
}

/// Largest `align_shift` of [`Op::Layout`].
pub const MAX_ALIGN_SHIFT: u8 = 16;
/// Largest size of [`Op::Layout`] and length of strings.
pub const MAX_SIZE: usize = 6000;

impl Op {
    /// The layout the budget is asked for.
    pub fn layout(&self) -> Layout {
        match *self {
            Op::Layout { size, align_shift } => Layout::from_size_align(size, 1 << align_shift).expect("valid"),
            Op::Leak(Typed::U8) => Layout::new::<u8>(),
            Op::Leak(Typed::U64) => Layout::new::<u64>(),
            Op::Leak(Typed::U128) => Layout::new::<u128>(),
            Op::Leak(Typed::Bytes3) => Layout::new::<[u8; 3]>(),
            Op::Leak(Typed::Align64) => Layout::new::<Align64>(),
            Op::Leak(Typed::Align4096) => Layout::new::<Align4096>(),
            Op::Leak(Typed::Owned) => Layout::new::<String>(),
            Op::Leak(Typed::Unit) => Layout::new::<()>(),
            Op::With => Layout::new::<[u32; 16]>(),
            Op::Str { len } => Layout::array::<u8>(len).expect("small"),
            Op::Slice { len } => Layout::array::<u32>(len).expect("small"),
            Op::Vec { len } => Layout::array::<u16>(len).expect("small"),
            Op::Uninit { len } => Layout::array::<u64>(len).expect("small"),
            // Not used: these never reach a layout check.
            Op::Absurd(_) | Op::SetLimit { .. } => Layout::new::<()>(),
        }
    }

    /// Decodes one operation from `bytes` (for the fuzz target); `None` when the bytes run out.
    pub fn decode(bytes: &mut Bytes<'_>) -> Option<Op> {
        let small = |bytes: &mut Bytes<'_>| -> Option<usize> {
            // Mostly short, sometimes up to a few KiB.
            let n = bytes.u16()? as usize;
            Some(if n & 0x8000 != 0 { n & 0x1FFF } else { n & 0x7F })
        };
        Some(match bytes.u8()? % 16 {
            0..=3 => Op::Layout { size: small(bytes)?.min(MAX_SIZE), align_shift: bytes.u8()? % (MAX_ALIGN_SHIFT + 1) },
            4 => Op::Leak(Typed::U8),
            5 => Op::Leak(Typed::U64),
            6 => Op::Leak(match bytes.u8()? % 6 {
                0 => Typed::U128,
                1 => Typed::Bytes3,
                2 => Typed::Align64,
                3 => Typed::Align4096,
                4 => Typed::Owned,
                _ => Typed::Unit,
            }),
            7 => Op::With,
            8 | 9 => Op::Str { len: small(bytes)?.min(MAX_SIZE) },
            10 => Op::Slice { len: small(bytes)? / 4 },
            11 => Op::Vec { len: small(bytes)? / 2 },
            12 => Op::Uninit { len: small(bytes)? / 8 },
            13 => Op::Absurd(match bytes.u8()? % 4 {
                0 => Absurd::SliceOverflow,
                1 => Absurd::MaxLayout,
                2 => Absurd::HalfLayout,
                _ => Absurd::OverAligned,
            }),
            14 => {
                // Mostly small changes either way, sometimes a large raise.
                let raw = bytes.u16()?;
                let delta =
                    if raw & 0x8000 != 0 { i32::from(raw & 0x7FFF) * 4 } else { i32::from(raw & 0x1FFF) - 4096 };
                Op::SetLimit { delta }
            }
            _ => Op::Leak(Typed::U64),
        })
    }
}

/// A cursor over fuzz input.
#[derive(Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
}

/// Decodes a limit and a sequence of operations from fuzz input. The limit is one of: zero, tiny, small, medium, or
/// within 64 bytes of the first operation's first-request threshold (adversarial limits near exhaustion).
pub fn decode(input: &[u8]) -> (usize, Vec<Op>) {
    let mut bytes = Bytes(input);
    let kind = bytes.u8().unwrap_or(0);
    let raw = bytes.u16().unwrap_or(0) as usize;
    let mut ops = Vec::new();
    while let Some(op) = Op::decode(&mut bytes) {
        ops.push(op);
    }
    let limit = match kind % 5 {
        0 => 0,
        1 => raw % 1024,
        2 => raw,
        3 => raw * 16,
        _ => {
            let first = ops.first().map_or(Layout::new::<u8>(), Op::layout);
            let threshold = LeakBudget::RECORD_BYTES + LeakBudget::max_charge_for(first);
            (threshold + raw % 128).saturating_sub(64)
        }
    };
    (limit, ops)
}

/// The byte at `index` of the pattern for `seed`.
pub fn pattern(seed: u64, index: usize) -> u8 {
    ((seed as usize).wrapping_mul(131).wrapping_add(index.wrapping_mul(7)) >> 1) as u8 ^ 0xA5
}

/// A served reference, and what it must keep reading.
#[derive(Debug)]
struct Leaked {
    /// Address and size of the reference.
    at: usize,
    len: usize,
    check: Check,
}

#[derive(Debug)]
enum Check {
    /// Bytes that read `pattern(seed, ..)`.
    Pattern(&'static [u8], u64),
    /// Bytes that read a copy kept by the model.
    Copy(&'static [u8], Vec<u8>),
    /// A leaked `String` that reads a copy kept by the model.
    Owned(&'static String, String),
}

impl Leaked {
    fn bytes(bytes: &'static [u8], check: Check) -> Self {
        Self { at: bytes.as_ptr().addr(), len: bytes.len(), check }
    }

    fn pattern(bytes: &'static [u8], seed: u64) -> Self {
        Self::bytes(bytes, Check::Pattern(bytes, seed))
    }

    fn intact(&self) -> bool {
        match &self.check {
            Check::Pattern(bytes, seed) => bytes.iter().enumerate().all(|(i, &b)| b == pattern(*seed, i)),
            Check::Copy(bytes, want) => bytes == want,
            Check::Owned(value, want) => *value == want,
        }
    }
}

/// One budget, driven by one thread, and everything it has handed out.
#[derive(Debug)]
pub struct Model<'b> {
    budget: &'b LeakBudget,
    leaked: Vec<Leaked>,
    ops: usize,
    /// The highest limit the budget has had: `peak_reserved` never exceeds it.
    highest_limit: usize,
}

/// A value of plain bytes made from the pattern.
fn filled<T: Copy>(seed: u64) -> T {
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    let base = value.as_mut_ptr().cast::<u8>();
    for i in 0..size_of::<T>() {
        // SAFETY: `i < size_of::<T>()`, inside `value`.
        unsafe { base.add(i).write(pattern(seed, i)) };
    }
    // SAFETY: every byte is written; callers only use plain-bytes types (integers, byte arrays, their aligned
    // wrappers), which have no padding and no invalid bit pattern.
    unsafe { value.assume_init() }
}

/// The bytes of a plain-bytes value.
fn bytes_of<T>(value: &'static T) -> &'static [u8] {
    // SAFETY: callers only pass plain-bytes types (no padding), so all `size_of::<T>()` bytes are initialised; the
    // value is never freed and no longer written through another reference.
    unsafe { core::slice::from_raw_parts(core::ptr::from_ref(value).cast(), size_of::<T>()) }
}

impl<'b> Model<'b> {
    /// A model of `budget`, which must not have been used yet.
    pub fn new(budget: &'b LeakBudget) -> Self {
        let stats = budget.stats();
        assert_eq!((stats.reserved, stats.allocations, stats.rejections), (0, 0, 0), "a fresh budget");
        Self { budget, leaked: Vec::new(), ops: 0, highest_limit: stats.limit }
    }

    /// Runs `op` on the budget and checks the outcome (see the module docs).
    pub fn apply(&mut self, op: &Op) {
        self.ops += 1;
        let seed = self.ops as u64;
        let budget = self.budget;
        let before = budget.stats();
        let remaining = budget.remaining();
        assert_eq!(remaining, before.limit.saturating_sub(before.reserved));
        let first = before.reserved == 0;

        if let Op::SetLimit { delta } = *op {
            let limit = before.reserved.saturating_add_signed(delta as isize);
            budget.set_limit(limit).expect("a budget that is not a prepaid child takes any limit");
            self.highest_limit = self.highest_limit.max(limit);
            let after = budget.stats();
            assert_eq!(after.limit, limit);
            let mut expected = before;
            expected.limit = limit;
            assert_eq!(after, expected, "set_limit({limit}) changed only the limit");
            assert_eq!(budget.remaining(), limit.saturating_sub(after.reserved));
            return;
        }

        // Run the request: the served bytes (checked or filled), or the error (value given back and checked).
        let outcome: Result<Leaked, LeakError> = match *op {
            Op::Layout { .. } | Op::Uninit { .. } => {
                let memory = match *op {
                    Op::Layout { .. } => budget.leak_layout(op.layout()),
                    Op::Uninit { len } => budget.leak_uninit_slice::<u64>(len).map(|slots| {
                        let len = size_of_val(slots);
                        // SAFETY: viewing `MaybeUninit<u64>` slots as `MaybeUninit<u8>` bytes: same memory, no
                        // validity requirement.
                        unsafe { core::slice::from_raw_parts_mut(slots.as_mut_ptr().cast(), len) }
                    }),
                    _ => unreachable!(),
                };
                memory.map(|memory| {
                    for (i, byte) in memory.iter_mut().enumerate() {
                        byte.write(pattern(seed, i));
                    }
                    // SAFETY: every byte was just written; never freed, and no longer written.
                    let bytes = unsafe { core::slice::from_raw_parts(memory.as_ptr().cast::<u8>(), memory.len()) };
                    Leaked::pattern(bytes, seed)
                })
            }
            Op::Leak(Typed::U8) => self.leak_typed::<u8>(seed),
            Op::Leak(Typed::U64) => self.leak_typed::<u64>(seed),
            Op::Leak(Typed::U128) => self.leak_typed::<u128>(seed),
            Op::Leak(Typed::Bytes3) => self.leak_typed::<[u8; 3]>(seed),
            Op::Leak(Typed::Align64) => self.leak_typed::<Align64>(seed),
            Op::Leak(Typed::Align4096) => self.leak_typed::<Align4096>(seed),
            Op::Leak(Typed::Unit) => match budget.leak(()) {
                Ok(unit) => Ok(Leaked::pattern(bytes_of(unit), seed)),
                Err(refused) => Err(refused.into_parts().1),
            },
            Op::Leak(Typed::Owned) => {
                let text = format!("owned {seed}");
                match budget.leak(text.clone()) {
                    Ok(owned) => {
                        assert_eq!(*owned, text);
                        let owned: &'static String = owned;
                        let at = core::ptr::from_ref(owned).addr();
                        Ok(Leaked { at, len: size_of::<String>(), check: Check::Owned(owned, text) })
                    }
                    Err(refused) => {
                        let (back, error) = refused.into_parts();
                        assert_eq!(back, text, "the refused value comes back");
                        Err(error)
                    }
                }
            }
            Op::With => {
                let called = core::cell::Cell::new(false);
                let result = budget.leak_with(|| {
                    called.set(true);
                    filled::<[u32; 16]>(seed)
                });
                assert_eq!(called.get(), result.is_ok(), "the initialiser runs exactly when the room is reserved");
                result.map(|value| Leaked::pattern(bytes_of(value), seed))
            }
            Op::Str { len } => {
                let text: String = (0..len).map(|i| char::from(pattern(seed, i) & 0x7F)).collect();
                budget.leak_str(&text).map(|leaked| {
                    assert_eq!(leaked, text);
                    Leaked::bytes(leaked.as_bytes(), Check::Copy(leaked.as_bytes(), text.into_bytes()))
                })
            }
            Op::Slice { len } => {
                let words: Vec<u32> = (0..len).map(|w| u32::from_ne_bytes(filled(seed + w as u64 * 4))).collect();
                let expected = words.clone();
                budget.leak_slice(&words).map(|leaked| {
                    assert_eq!(leaked, expected.as_slice());
                    slice_bytes(leaked, &expected)
                })
            }
            Op::Vec { len } => {
                let values: Vec<u16> = (0..len).map(|i| u16::from(pattern(seed, i))).collect();
                let expected = values.clone();
                match budget.leak_vec(values) {
                    Ok(leaked) => {
                        assert_eq!(leaked, expected.as_slice());
                        Ok(slice_bytes(leaked, &expected))
                    }
                    Err(refused) => {
                        let (back, error) = refused.into_parts();
                        assert_eq!(back, expected, "the refused vector comes back");
                        Err(error)
                    }
                }
            }
            Op::SetLimit { .. } => unreachable!("applied above"),
            Op::Absurd(kind) => {
                let result = match kind {
                    Absurd::SliceOverflow => budget.leak_uninit_slice::<u64>(usize::MAX / 4).map(drop),
                    Absurd::MaxLayout => {
                        budget.leak_layout(Layout::from_size_align(isize::MAX as usize, 1).unwrap()).map(drop)
                    }
                    Absurd::HalfLayout => {
                        budget.leak_layout(Layout::from_size_align(isize::MAX as usize / 2, 8).unwrap()).map(drop)
                    }
                    Absurd::OverAligned => budget.leak_layout(Layout::from_size_align(8, 1 << 30).unwrap()).map(drop),
                };
                Err(result.expect_err("an absurd request is never served"))
            }
        };

        let after = budget.stats();
        assert!(
            after.used <= after.reserved
                && after.reserved <= after.peak_reserved
                && after.peak_reserved <= self.highest_limit,
            "after {op:?} (highest limit {})\n{after}",
            self.highest_limit
        );
        // The cap: a request that charged left `reserved` within the limit, so nothing grows it while above.
        if after.reserved > before.reserved {
            assert!(after.reserved <= after.limit, "{op:?} charged while it left reserved above the limit\n{after}");
        }
        match outcome {
            Ok(leaked) => {
                let layout = op.layout();
                assert_eq!(leaked.at % layout.align(), 0, "{op:?}: misaligned");
                assert_eq!(after.rejections, before.rejections);
                if layout.size() == 0 {
                    assert_eq!(after, before, "{op:?}: a zero-sized request is free");
                } else {
                    let grew = after.used - before.used;
                    assert!(grew >= layout.size() && grew < layout.size() + layout.align(), "{op:?}: used grew {grew}");
                    assert_eq!(after.allocations, before.allocations + 1);
                    self.leaked.push(leaked);
                }
            }
            Err(error) => {
                assert_eq!(
                    without_rejections(after),
                    without_rejections(before),
                    "{op:?} refused ({error}) but changed"
                );
                assert_eq!(after.rejections, before.rejections + 1, "{op:?}: a refusal is counted");
                match (op, &error) {
                    (Op::Absurd(_), _) => {}
                    (_, LeakError::BudgetExceeded { .. }) => {
                        let bound = LeakBudget::max_charge_for(op.layout()).saturating_add(if first {
                            LeakBudget::RECORD_BYTES
                        } else {
                            0
                        });
                        assert!(
                            remaining < bound,
                            "{op:?} refused with {remaining} bytes remaining, at least the documented {bound}: {error}"
                        );
                    }
                    _ => panic!("{op:?}: unexpected {error}"),
                }
            }
        }
    }

    /// Leaks a plain-bytes value made from the pattern; checks a refused one comes back intact.
    fn leak_typed<T: Copy + PartialEq + core::fmt::Debug + 'static>(&self, seed: u64) -> Result<Leaked, LeakError> {
        let value: T = filled(seed);
        match self.budget.leak(value) {
            Ok(leaked) => {
                assert_eq!(*leaked, value);
                Ok(Leaked::pattern(bytes_of(leaked), seed))
            }
            Err(refused) => {
                assert_eq!(*refused.value(), value, "the refused value comes back");
                Err(refused.into_parts().1)
            }
        }
    }

    /// Checks every reference handed out: intact, and pairwise disjoint. Returns how many there were.
    pub fn finish(self) -> usize {
        assert!(self.leaked.iter().all(Leaked::intact), "a leaked value was overwritten");
        let mut ranges: Vec<(usize, usize)> = self.leaked.iter().map(|l| (l.at, l.len)).collect();
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "references {:x?} and {:x?} overlap", pair[0], pair[1]);
        }
        let stats = self.budget.stats();
        assert_eq!(stats.allocations, self.leaked.len());
        assert!(stats.used >= ranges.iter().map(|r| r.1).sum::<usize>());
        self.leaked.len()
    }
}

/// A served slice of plain values (`u16`, `u32`), recorded by its bytes and a copy of them.
fn slice_bytes<T: Copy>(leaked: &'static mut [T], expected: &[T]) -> Leaked {
    // SAFETY: plain values without padding viewed as bytes; never freed and no longer written.
    let bytes = unsafe { core::slice::from_raw_parts(leaked.as_ptr().cast::<u8>(), size_of_val(leaked)) };
    // SAFETY: as above, for the expected copy.
    let want = unsafe { core::slice::from_raw_parts(expected.as_ptr().cast::<u8>(), size_of_val(expected)) };
    Leaked::bytes(bytes, Check::Copy(bytes, want.to_vec()))
}
