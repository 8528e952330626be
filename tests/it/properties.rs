//! Property tests: random sequences of requests of every kind (raw layouts up to 2^16 alignment and a few KiB, typed
//! values, strings, slices, vectors, uninitialised slices, requests that can never fit) and changes of the limit (below
//! `reserved`, just above it, far above it) on budgets with small random limits, zero and limits that run out
//! mid-sequence included, each step checked against the model in `tests/model/mod.rs` (alignment, contents, figures,
//! when a refusal is allowed, nothing changed by a refusal, no charge while it would leave `reserved` above the limit),
//! and every reference checked intact and disjoint at the end.
//!
//! `PROPTEST_CASES` overrides the number of cases (4096 natively, 8 under Miri).

use core::alloc::Layout;

use leak_budget::LeakBudget;
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::model::{Absurd, MAX_ALIGN_SHIFT, MAX_SIZE, Model, Op, Typed};
use crate::support::proptest_cases;

fn config() -> Config {
    // No regression files: Miri has no file system, and the generators are cheap to re-run from a seed.
    Config { cases: proptest_cases(4096), failure_persistence: None, ..Config::default() }
}

/// Mostly short, sometimes up to `max`.
fn length(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..64usize, 1 => 0..=max]
}

fn typed() -> impl Strategy<Value = Typed> {
    prop_oneof![
        Just(Typed::U8),
        Just(Typed::U64),
        Just(Typed::U128),
        Just(Typed::Bytes3),
        Just(Typed::Align64),
        Just(Typed::Align4096),
        Just(Typed::Owned),
        Just(Typed::Unit),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // Miri checks every byte written and read, one by one: smaller values there.
    let max = if cfg!(miri) { 512 } else { MAX_SIZE };
    prop_oneof![
        6 => (length(max), 0..=MAX_ALIGN_SHIFT).prop_map(|(size, align_shift)| Op::Layout { size, align_shift }),
        4 => typed().prop_map(Op::Leak),
        1 => Just(Op::With),
        3 => length(max).prop_map(|len| Op::Str { len }),
        2 => length(max / 4).prop_map(|len| Op::Slice { len }),
        2 => length(max / 2).prop_map(|len| Op::Vec { len }),
        2 => length(max / 8).prop_map(|len| Op::Uninit { len }),
        1 => prop_oneof![
            Just(Absurd::SliceOverflow),
            Just(Absurd::MaxLayout),
            Just(Absurd::HalfLayout),
            Just(Absurd::OverAligned),
        ]
        .prop_map(Op::Absurd),
        // Below what is reserved (every charge refused from then on), a little above it, or far above it.
        1 => prop_oneof![-4096..0i32, 0..512i32, 0..(256i32 << 10)].prop_map(|delta| Op::SetLimit { delta }),
    ]
}

/// A limit: zero, around the first request's threshold (`delta` bytes from it, either way), tiny, small or medium.
/// The first, second and fourth run out within a few requests.
#[derive(Debug, Clone)]
enum Limit {
    Zero,
    NearThreshold(i16),
    Bytes(usize),
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        1 => Just(Limit::Zero),
        3 => (-64i16..=64).prop_map(Limit::NearThreshold),
        2 => (0..1024usize).prop_map(Limit::Bytes),
        4 => (0..64usize << 10).prop_map(Limit::Bytes),
        1 => (0..512usize << 10).prop_map(Limit::Bytes),
    ]
}

impl Limit {
    fn bytes(&self, first: Option<&Op>) -> usize {
        match *self {
            Limit::Zero => 0,
            Limit::Bytes(bytes) => bytes,
            Limit::NearThreshold(delta) => {
                let layout = first.map_or(Layout::new::<u8>(), Op::layout);
                let threshold = LeakBudget::RECORD_BYTES + LeakBudget::max_charge_for(layout);
                threshold.saturating_add_signed(isize::from(delta))
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_sequences_match_the_model(limit in limit(), ops in prop::collection::vec(op(), 1..48)) {
        let budget = LeakBudget::named("property", limit.bytes(ops.first()));
        let mut model = Model::new(&budget);
        for op in &ops {
            model.apply(op);
        }
        model.finish();
    }
}

/// A sequence that fills a budget and then keeps asking, so that every run certainly covers refusals after the
/// first request, in the lane path and in the dedicated-block path.
#[test]
fn a_full_budget_refuses_cleanly() {
    for limit in [0, 100, 4096, if cfg!(miri) { 8192 } else { 20_000 }] {
        let budget = LeakBudget::named("property", limit);
        let mut model = Model::new(&budget);
        for round in 0..if cfg!(miri) { 6 } else { 200 } {
            model.apply(&Op::Layout { size: 24 + round % 7, align_shift: (round % 5) as u8 });
            model.apply(&Op::Str { len: 300 });
            model.apply(&Op::Leak(Typed::Align4096));
            model.apply(&Op::Vec { len: 3 });
        }
        let served = model.finish();
        assert!(budget.stats().rejections > 0, "limit {limit}: {served} served and never refused");
    }
}

/// A budget filled, lowered below what it holds, asked again, then raised: every run covers refusals while `reserved`
/// is above the limit, requests served from room already charged, and serving again after the raise.
#[test]
fn a_budget_lowered_below_reserved_and_raised_again_matches_the_model() {
    let budget = LeakBudget::named("property", 64 << 10);
    let mut model = Model::new(&budget);
    let requests = [
        Op::Leak(Typed::U64),
        Op::Str { len: 300 },
        Op::Layout { size: 5000, align_shift: 3 },
        Op::Vec { len: 40 },
        Op::Leak(Typed::Align4096),
    ];
    for round in 0..if cfg!(miri) { 2 } else { 20 } {
        for op in &requests {
            model.apply(op);
        }
        model.apply(&Op::SetLimit { delta: -1 - round * 64 });
        for op in requests.iter().cycle().take(12) {
            model.apply(op);
        }
        model.apply(&Op::SetLimit { delta: 16 << 10 });
    }
    let served = model.finish();
    let stats = budget.stats();
    assert!(stats.rejections > 0 && served > 0, "{served} served\n{stats}");
}
