//! Drives one `Interner<str>` on a small budget of its own with `intern` (of a pool's strings and of equal copies at
//! other addresses), `get`, `len` and `snapshot` decoded from the input, checking every step against a model
//! (`fuzz/common/intern.rs`): equal strings give equal handles, different strings different handles, `get` agrees with
//! what was interned, `snapshot` lists it all, handles order as their strings do, every refusal is `BudgetExceeded`
//! and leaves the interner and the budget as they were (but the interner's state on its first call), and
//! `used <= reserved <= peak_reserved <= limit` after every step.
//!
//! Strings are mostly short over two to four letters (so repeats are frequent), some arbitrary text, and runs of one
//! letter on either side of 128 and 16384 bytes (where the stored length takes a second or third byte). The limit is
//! zero, tiny, below 24 KiB, plenty, or within 64 bytes of a value `reserved` reached when the same sequence ran with
//! plenty (that run is checked too), so that most sequences run out of room somewhere in the middle.
//!
//! ```text
//! cargo +nightly fuzz run intern_str -- -fork=1 -max_total_time=660 -rss_limit_mb=4096 -timeout=60 -detect_leaks=0
//! cargo +nightly fuzz run intern_str -- -fork=1 -max_total_time=150 -rss_limit_mb=4096 -timeout=60
//! ```
//!
//! Everything interned stays leaked; as for `budget`, runs need `-fork` to keep each process's memory bounded. `-fork`
//! starts a process per job, and libFuzzer runs LeakSanitizer after every input that allocates more than it frees
//! (every input here) up to 1,000 times per process, so with leak detection on a run does little but scan for leaks (a
//! few dozen executions a second instead of a thousand or more). Hence the long run without it, and a shorter one with
//! it.

#![no_main]

use core::cmp::Ordering;

use leak_budget::Interned;
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::intern::{Model, Value};
use common::{Input, Limit};

impl Value for String {
    type T = str;

    fn decode(input: &mut Input<'_>) -> Option<Self> {
        common::text(input)
    }

    fn as_interned(&self) -> &str {
        self
    }

    fn copy(&self) -> Self {
        self.clone()
    }

    fn check_pair(new: Interned<str>, other: Interned<str>) {
        let by_value = new.as_static().cmp(other.as_static());
        assert_ne!(by_value, Ordering::Equal, "different handles hold different strings");
        assert_eq!(new.cmp(&other), by_value, "handles order as their strings");
        assert_eq!(new.to_string(), new.as_static());
    }
}

const PLENTY: usize = 256 << 10;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let limit = Limit::decode(&mut input, 24 << 10, PLENTY);
    let Some((pool, ops)) = common::intern::decode::<String>(&mut input, false, 64) else { return };
    let limit = limit.bytes(|| Model::run("intern-str", PLENTY, &pool, &ops));
    Model::run("intern-str", limit, &pool, &ops);
});
