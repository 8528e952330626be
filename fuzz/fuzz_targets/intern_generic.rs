//! Drives one `Interner<T>` on a small budget of its own, for one of four types chosen by the input, with `intern`,
//! `intern_owned`, `get`, `len` and `snapshot`, checking every step against a `HashMap` model
//! (`fuzz/common/intern.rs`):
//! - `Weird` (`fuzz/common/mod.rs`): a struct whose `Eq` ignores a field and the case of another, whose `Hash` covers
//!   all, part or none of what `Eq` compares (so values collide by the dozen, and whole buckets share one hash), whose
//!   `Clone` changes the field `Eq` ignores (so the model sees which value the interner kept: the first one, cloned by
//!   `intern` or moved by `intern_owned`), and whose `Hash`, `Eq` or `Clone` the input can make panic at their nth
//!   call (the interner must stay as it was and count no refusal, and charge nothing but, for `Clone`, the table
//!   growth made for the entry before the clone: `fuzz/artifacts-notes/README.md`);
//! - `(u8, Vec<u8>)`, through `intern_owned` as well: a refused value comes back with the same heap buffer;
//! - `[u16]` slices (`Interner<[u16]>`), empty ones included;
//! - `Wide`, a 64-byte-aligned struct: every handle must be aligned.
//!
//! Checked as for `intern_str`: equal values give equal handles, different values different ones, `get` and
//! `snapshot` agree with the model, every refusal is `BudgetExceeded` and changes nothing but the rejection count
//! (but the interner's state on its first call), and `used <= reserved <= peak_reserved <= limit` after every step.
//! The limit is zero, tiny, below 16 KiB, plenty, or near a value `reserved` reached with plenty.
//!
//! ```text
//! cargo +nightly fuzz run intern_generic -- -fork=1 -max_total_time=660 -rss_limit_mb=4096 -timeout=60 -detect_leaks=0
//! cargo +nightly fuzz run intern_generic -- -fork=1 -max_total_time=150 -rss_limit_mb=4096 -timeout=60
//! ```
//!
//! Everything interned stays leaked; as for `budget`, runs need `-fork` to keep each process's memory bounded. `-fork`
//! starts a process per job, and libFuzzer runs LeakSanitizer after every input that allocates more than it frees
//! (every input here) up to 1,000 times per process, so with leak detection on a run does little but scan for leaks (a
//! few dozen executions a second instead of a thousand or more). Hence the long run without it, and a shorter one with
//! it.

#![no_main]

use leak_budget::{Interned, Interner, Rejected};
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::intern::{Model, Value};
use common::{Input, Limit, Weird};

impl Value for Weird {
    type T = Weird;

    fn decode(input: &mut Input<'_>) -> Option<Self> {
        Weird::decode(input)
    }

    fn as_interned(&self) -> &Weird {
        self
    }

    /// A copy with everything equal, `noise` included, made without `Clone` (which the model must not run).
    fn copy(&self) -> Self {
        Weird { mode: self.mode, tag: self.tag, data: self.data.clone(), noise: self.noise }
    }

    /// `intern` stores a clone, and `Weird`'s `Clone` changes `noise`.
    fn exact_stored(&self) -> String {
        format!("{:?}", Weird { noise: self.noise.wrapping_add(1), ..self.copy() })
    }

    fn intern_owned(interner: &Interner<Weird>, value: Self) -> Option<Result<Interned<Weird>, Rejected<Self>>> {
        Some(interner.intern_owned(value))
    }

    fn buffer(&self) -> Option<usize> {
        (self.data.capacity() > 0).then(|| self.data.as_ptr().addr())
    }
}

impl Value for (u8, Vec<u8>) {
    type T = (u8, Vec<u8>);

    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let tag = input.u8()? % 4;
        let len = input.below(12)?;
        Some((tag, input.bytes(len).iter().map(|byte| byte % 3).collect()))
    }

    fn as_interned(&self) -> &Self {
        self
    }

    fn copy(&self) -> Self {
        self.clone()
    }

    fn intern_owned(interner: &Interner<Self>, value: Self) -> Option<Result<Interned<Self>, Rejected<Self>>> {
        Some(interner.intern_owned(value))
    }

    fn buffer(&self) -> Option<usize> {
        (self.1.capacity() > 0).then(|| self.1.as_ptr().addr())
    }
}

impl Value for Vec<u16> {
    type T = [u16];

    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let len = input.below(10)?;
        let elements = input.bytes(len);
        Some(
            elements
                .iter()
                .map(|&byte| if byte & 0x80 == 0 { u16::from(byte % 3) } else { u16::MAX - u16::from(byte) })
                .collect(),
        )
    }

    fn as_interned(&self) -> &[u16] {
        self
    }

    fn copy(&self) -> Self {
        self.clone()
    }
}

/// A value aligned to 64 bytes.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Wide {
    tag: u16,
    bytes: [u8; 6],
}

impl Value for Wide {
    type T = Wide;

    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let tag = input.u16()? % 8;
        let mut bytes = [0; 6];
        for (slot, &byte) in bytes.iter_mut().zip(input.bytes(6)) {
            *slot = byte % 2;
        }
        Some(Wide { tag, bytes })
    }

    fn as_interned(&self) -> &Self {
        self
    }

    fn copy(&self) -> Self {
        *self
    }

    fn intern_owned(interner: &Interner<Self>, value: Self) -> Option<Result<Interned<Self>, Rejected<Self>>> {
        Some(interner.intern_owned(value))
    }
}

const PLENTY: usize = 256 << 10;

fn run<V: Value>(input: &mut Input<'_>, traps: bool) {
    let limit = Limit::decode(input, 16 << 10, PLENTY);
    let Some((pool, ops)) = common::intern::decode::<V>(input, traps, 64) else { return };
    let limit = limit.bytes(|| Model::run("intern-generic", PLENTY, &pool, &ops));
    Model::run("intern-generic", limit, &pool, &ops);
}

fuzz_target!(|data: &[u8]| {
    common::install_panic_hook();
    let mut input = Input::new(data);
    match input.below(4) {
        Some(0) => run::<Weird>(&mut input, true),
        Some(1) => run::<(u8, Vec<u8>)>(&mut input, false),
        Some(2) => run::<Vec<u16>>(&mut input, false),
        Some(_) => run::<Wide>(&mut input, false),
        None => {}
    }
});
