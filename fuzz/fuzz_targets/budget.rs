//! Drives one `LeakBudget` with operations decoded from the input (see `decode` in `tests/model/mod.rs`: the limit is
//! zero, tiny, small, up to 1 MiB, or within 64 bytes of the first request's threshold), checking every step against
//! the same model as the property tests.
//!
//! ```text
//! cargo +nightly fuzz run budget -- -fork=1 -max_total_time=660 -rss_limit_mb=4096
//! ```
//!
//! Everything leaked stays leaked (that is the crate's point), so a long run grows: without `-fork` it reaches
//! libFuzzer's 2 GB memory limit within a minute. `-fork` runs the target in child processes that are restarted
//! regularly, which keeps each one's memory bounded.

#![no_main]

use leak_budget::LeakBudget;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
#[allow(dead_code)]
mod model;

fuzz_target!(|data: &[u8]| {
    let (limit, ops) = model::decode(data);
    let budget = LeakBudget::named("fuzz", limit);
    let mut model = model::Model::new(&budget);
    for op in &ops {
        model.apply(op);
    }
    model.finish();
});
