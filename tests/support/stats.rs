//! Helpers on `Stats`, shared by the test modules (through `tests/support`) and by the property tests' model
//! (`tests/model/mod.rs`, which includes this file by path so that the fuzz target that compiles the model has it too).

use leak_budget::Stats;

/// Every figure but the rejection counter: what a refusal must leave unchanged.
pub fn without_rejections(mut stats: Stats) -> Stats {
    stats.rejections = 0;
    stats
}

/// Every figure but the peak of `reserved` (which keeps a charge refunded after the allocator refused).
pub fn without_peak(mut stats: Stats) -> Stats {
    stats.peak_reserved = 0;
    stats
}
