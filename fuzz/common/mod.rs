//! Helpers shared by the component fuzz targets: an input cursor, budget limits, fresh budgets that stay reachable,
//! the checks every refusal must pass, and panics that a target provokes on purpose.

use core::any::Any;
use core::cell::Cell;
use core::hash::{Hash, Hasher};
use core::ptr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use leak_budget::{LeakBudget, LeakError, Stats};

pub mod intern;

/// A cursor over the fuzz input; every read is `None` once the input is used up, which ends the sequence.
#[derive(Debug)]
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    pub fn bool(&mut self) -> Option<bool> {
        Some(self.u8()? & 1 == 1)
    }

    /// A number below `n` (`n <= 256`).
    pub fn below(&mut self, n: usize) -> Option<usize> {
        Some(usize::from(self.u8()?) % n)
    }

    /// Up to `len` bytes (fewer if the input ends first).
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// Strings: mostly short over a tiny alphabet (so equal ones are frequent), some over four letters, some arbitrary
/// text, and runs of one letter whose lengths sit on either side of the points where an interned string's length takes
/// a second or third byte (128, 16384).
pub fn text(input: &mut Input<'_>) -> Option<String> {
    Some(match input.u8()? % 16 {
        0..=5 => {
            let bits = input.u8()?;
            (0..bits & 3).map(|at| if bits >> (2 + at) & 1 == 0 { 'a' } else { 'b' }).collect()
        }
        6..=9 => {
            let len = input.below(13)?;
            input.bytes(len).iter().map(|&byte| char::from(b'a' + byte % 4)).collect()
        }
        10 | 11 => {
            let len = input.below(41)?;
            String::from_utf8_lossy(input.bytes(len)).into_owned()
        }
        12 => {
            let len = input.below(9)?;
            input.bytes(2 * len).chunks(2).filter_map(|pair| char::from_u32(u32::from(pair[0]) << 8 | 0x80)).collect()
        }
        _ => {
            const LENGTHS: [usize; 12] = [0, 1, 126, 127, 128, 129, 255, 256, 300, 16_383, 16_384, 16_385];
            let choice = input.u8()?;
            let letter = if choice & 0x80 == 0 { "a" } else { "B" };
            letter.repeat(LENGTHS[usize::from(choice & 0x7f) % LENGTHS.len()])
        }
    })
}

/// A budget's limit for one run.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Bytes(usize),
    /// The `index`th (wrapping) of the values `reserved` grew to in a run of the same sequence on a `plenty` budget,
    /// plus `delta`: the run with this limit is refused somewhere in the middle.
    Growth {
        index: usize,
        delta: isize,
    },
}

impl Limit {
    /// Zero, tiny, below `max`, `plenty`, or near a value `reserved` reached in a run with `plenty`.
    pub fn decode(input: &mut Input<'_>, max: usize, plenty: usize) -> Self {
        let kind = input.u8().unwrap_or(0);
        let raw = usize::from(input.u16().unwrap_or(0));
        match kind % 8 {
            0 => Limit::Bytes(0),
            1 => Limit::Bytes(raw % 512),
            2 | 3 => Limit::Bytes((raw * max) >> 16),
            4 => Limit::Bytes(plenty),
            _ => Limit::Growth { index: raw >> 7, delta: (raw & 0x7f) as isize - 64 },
        }
    }

    /// The limit in bytes; `probe` runs the sequence on a `plenty` budget and returns `reserved` after each step.
    pub fn bytes(self, probe: impl FnOnce() -> Vec<usize>) -> usize {
        match self {
            Limit::Bytes(bytes) => bytes,
            Limit::Growth { index, delta } => {
                let mut grown = probe();
                grown.dedup();
                grown.retain(|&reserved| reserved > 0);
                if grown.is_empty() {
                    return delta.unsigned_abs();
                }
                grown[index % grown.len()].saturating_add_signed(delta)
            }
        }
    }
}

/// Where every budget handle a target creates lives. A handle the process can no longer reach is reported by
/// LeakSanitizer (which libFuzzer runs after inputs that allocate more than they free); one leaked into this budget
/// stays reachable through the registry of accounts, and costs a few dozen bytes per input.
static HANDLES: LeakBudget = LeakBudget::named("fuzz handles", isize::MAX as usize);

/// Leaks `budget` (built at run time, e.g. by the `const fn` constructors) so that it can be used as `&'static`.
pub fn keep(budget: LeakBudget) -> &'static LeakBudget {
    HANDLES.leak(budget).expect("the handles' budget has no practical limit")
}

/// A fresh root budget for one run.
pub fn budget(name: &'static str, limit: usize) -> &'static LeakBudget {
    keep(LeakBudget::named(name, limit))
}

/// Everything but the rejection count.
pub fn settled(stats: Stats) -> Stats {
    let mut stats = stats;
    stats.rejections = 0;
    stats
}

/// The address a reference points to.
pub fn address<T: ?Sized>(value: &T) -> usize {
    ptr::from_ref(value).cast::<u8>().addr()
}

/// Checks the figures every budget must keep.
pub fn check_figures(budget: &LeakBudget) {
    let stats = budget.stats();
    assert!(stats.used <= stats.reserved, "used > reserved: {stats}");
    assert!(stats.reserved <= stats.limit, "reserved > limit: {stats}");
    assert!(stats.reserved <= stats.peak_reserved && stats.peak_reserved <= stats.limit, "peak: {stats}");
    assert_eq!(budget.remaining(), budget.limit() - budget.reserved());
}

/// Checks that `error` is a refusal for lack of room by `budget` alone (a root used by one component), with the
/// figures it has now: a refusal changes nothing.
pub fn check_refusal_error(budget: &LeakBudget, error: &LeakError) {
    match *error {
        LeakError::BudgetExceeded { budget: name, requested, remaining, limit, .. } => {
            assert_eq!((name, limit), (budget.name(), budget.limit()), "{error}");
            assert_eq!(remaining, budget.remaining(), "{error}");
            assert!(requested > remaining, "{error}");
        }
        _ => panic!("only refusals for lack of room are expected: {error}"),
    }
}

/// Checks a refusal made by a call that started with the figures `before`: for lack of room, and nothing changed
/// but the rejection count.
pub fn check_refusal(budget: &LeakBudget, before: Stats, error: &LeakError) {
    check_refusal_error(budget, error);
    let after = budget.stats();
    assert_eq!(settled(after), settled(before), "a refusal changes nothing");
    assert_eq!(after.rejections, before.rejections + 1, "and counts once");
}

/// The payload of a panic a target provokes in user code (an initialiser, `Hash`, `Eq`, `Clone`).
#[derive(Debug)]
pub struct Deliberate;

thread_local! {
    /// Set while a call is expected to panic in the library itself (a re-entrant call it refuses to deadlock on).
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
}

/// libfuzzer-sys installs a panic hook that aborts the process, even for panics that are caught. This wraps it: a
/// [`Deliberate`] panic, or one raised while [`expect_library_panic`] runs, is silent and unwinds to whoever catches
/// it; any other panic still reaches libFuzzer's hook and is a crash.
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let abort = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().is::<Deliberate>() || EXPECTING.with(Cell::get) {
                return;
            }
            abort(info);
        }));
    });
}

/// Panics with [`Deliberate`].
pub fn deliberate_panic() -> ! {
    panic::panic_any(Deliberate)
}

/// Runs `f`, catching a [`Deliberate`] panic (any other panic aborts in the hook before it gets here).
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Deliberate> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        assert!(payload.is::<Deliberate>(), "unexpected panic: {}", message(&*payload));
        Deliberate
    })
}

/// Runs `f`, which should panic in the library (with a message containing `expected`) or in user code
/// ([`Deliberate`]); returns `f`'s value if it did not panic, else the panic's message (`None` for `Deliberate`).
pub fn expect_library_panic<R>(expected: &str, f: impl FnOnce() -> R) -> Result<R, Option<String>> {
    let was = EXPECTING.with(|expecting| expecting.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    EXPECTING.with(|expecting| expecting.set(was));
    result.map_err(|payload| {
        if payload.is::<Deliberate>() {
            return None;
        }
        let message = message(&*payload);
        assert!(message.contains(expected), "unexpected panic: {message}");
        Some(message)
    })
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("<non-string payload>")
    }
}

/// Where a [`Weird`] value panics, once armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trap {
    Hash,
    Eq,
    Clone,
}

thread_local! {
    /// An armed trap and how many more calls of its kind pass before it fires.
    static TRAP: Cell<Option<(Trap, u8)>> = const { Cell::new(None) };
}

/// Arms a trap: the `skip + 1`th call of `trap`'s kind panics with [`Deliberate`], which disarms it. The models
/// hash and compare `Weird` values too, so a trap is armed only around a call into the library.
pub fn arm(trap: Trap, skip: u8) {
    TRAP.with(|armed| armed.set(Some((trap, skip))));
}

/// Disarms the trap; returns whether it was still armed (had not fired).
pub fn disarm() -> bool {
    TRAP.with(|armed| armed.take()).is_some()
}

fn spring(kind: Trap) {
    let fire = TRAP.with(|armed| match armed.get() {
        Some((trap, 0)) if trap == kind => {
            armed.set(None);
            true
        }
        Some((trap, skip)) if trap == kind => {
            armed.set(Some((trap, skip - 1)));
            false
        }
        _ => false,
    });
    if fire {
        deliberate_panic();
    }
}

/// A key with legal but unusual trait impls:
/// - `Eq` ignores `noise` and the ASCII case of `data`;
/// - `Hash` covers, depending on `mode`, nothing at all (every such value collides), only `tag`, or everything `Eq`
///   compares; equal values always hash alike, so this is legal;
/// - `Clone` changes `noise` (a clone is still equal);
/// - any of the three can be armed to panic ([`arm`]).
#[derive(Debug)]
pub struct Weird {
    pub mode: u8,
    pub tag: u8,
    pub data: Vec<u8>,
    pub noise: u8,
}

impl Weird {
    pub fn decode(input: &mut Input<'_>) -> Option<Self> {
        let head = input.u8()?;
        let len = input.below(8)?;
        let data = input.bytes(len).iter().map(|&byte| b"aAbB"[usize::from(byte % 4)]).collect();
        Some(Weird { mode: head % 3, tag: (head >> 2) % 4, data, noise: input.u8()? })
    }

    /// Everything, `noise` and case included: tells apart values that are equal.
    pub fn exact(&self) -> (u8, u8, Vec<u8>, u8) {
        (self.mode, self.tag, self.data.clone(), self.noise)
    }
}

impl PartialEq for Weird {
    fn eq(&self, other: &Self) -> bool {
        spring(Trap::Eq);
        self.mode == other.mode && self.tag == other.tag && self.data.eq_ignore_ascii_case(&other.data)
    }
}

impl Eq for Weird {}

impl Hash for Weird {
    fn hash<H: Hasher>(&self, state: &mut H) {
        spring(Trap::Hash);
        match self.mode {
            0 => {}
            1 => self.tag.hash(state),
            _ => {
                self.tag.hash(state);
                self.data.to_ascii_lowercase().hash(state);
            }
        }
    }
}

impl Clone for Weird {
    fn clone(&self) -> Self {
        spring(Trap::Clone);
        Weird { mode: self.mode, tag: self.tag, data: self.data.clone(), noise: self.noise.wrapping_add(1) }
    }
}
