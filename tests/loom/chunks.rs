//! Loom models of chunk sizing at the limit (`Account::charge_between` through `take_chunk`): two threads that each
//! need a lane and a chunk for a small value race for the last bytes of a budget. The models in `budget.rs` use
//! 600-byte values, which take dedicated blocks; these use `u64`s, which are bumped in chunks.
//!
//! A lane's chunk is at least what the request needs and at most 1/8 of the room it saw, and a request that finds no
//! room for a chunk tries a dedicated block (smaller: no worst-case padding). What is promised, and asserted here
//! whatever the interleaving: a request is refused only if `remaining()` has fallen below
//! `LeakBudget::max_charge_for(layout)` (checked once both requests are done: nothing is given back in these models,
//! so the room only shrinks), the budget never goes over its limit, and what was handed out is intact, disjoint and
//! counted.

use core::alloc::Layout;
use std::sync::atomic::{AtomicBool as SeenFlag, Ordering::Relaxed as Seen};

use leak_budget::{LeakBudget, LeakError};
use loom::sync::Arc;
use loom::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use loom::thread;

use crate::{Bounds, budget};

/// What a lane costs under loom (its record is made of loom atomics): a thread's first 600-byte leak charges a lane
/// and a dedicated block of 600 bytes plus a 16-byte header.
fn lane_bytes() -> usize {
    let scratch = budget("scratch", 1 << 20);
    scratch.leak([0u8; 600]).unwrap();
    scratch.reserved() - LeakBudget::RECORD_BYTES - (600 + 16)
}

/// What a `u64` needs from a chunk: a 16-byte header and the value, rounded to 16.
const CHUNK_FOR_U64: usize = 32;

/// Two threads leak a `u64` each into `budget` (which has its record): returns what each got, value and address.
///
/// The other thread keeps its lane until the main thread's leak is done: were it to exit first, its lane would be
/// released and the main thread could adopt it and bump in its chunk, and these models are about two lanes sizing
/// chunks at once (`budget.rs` models adoption).
fn race(budget: &'static LeakBudget) -> Vec<Result<(u64, usize), LeakError>> {
    let leak = move |value: u64| {
        budget.leak(value).map(|leaked| (*leaked, core::ptr::from_ref(leaked).addr())).map_err(|e| e.into_parts().1)
    };
    let done = Arc::new(AtomicBool::new(false));
    let other = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let result = leak(2);
            while !done.load(Acquire) {
                thread::yield_now();
            }
            result
        })
    };
    let mine = leak(1);
    done.store(true, Release);
    vec![mine, other.join().unwrap()]
}

/// The promises that hold whatever the interleaving: see the module note.
fn check(budget: &LeakBudget, results: &[Result<(u64, usize), LeakError>]) {
    let mut addresses = Vec::new();
    for (expected, result) in (1..).zip(results) {
        match result {
            Ok((value, address)) => {
                assert_eq!(*value, expected);
                assert_eq!(address % 8, 0);
                addresses.push(*address);
            }
            Err(error) => {
                assert!(matches!(error, LeakError::BudgetExceeded { .. }), "{error:?}");
                let bound = LeakBudget::max_charge_for(Layout::new::<u64>());
                assert!(budget.remaining() < bound, "refused with {} left of {bound} needed", budget.remaining());
            }
        }
    }
    addresses.sort_unstable();
    assert!(addresses.windows(2).all(|pair| pair[0] + 8 <= pair[1]), "overlap: {addresses:?}");
    let stats = budget.stats();
    let served = addresses.len();
    assert_eq!((stats.allocations, stats.used, stats.rejections), (served, 8 * served, 2 - served), "{stats:?}");
    assert!(stats.reserved <= stats.limit && stats.peak_reserved <= stats.limit, "{stats:?}");
}

/// A registered budget with room for its record, two lanes and `room` bytes more.
fn budget_with_room(room: usize) -> &'static LeakBudget {
    let budget = budget("chunks", LeakBudget::RECORD_BYTES + 2 * lane_bytes() + room);
    budget.register().unwrap();
    budget
}

#[test]
fn at_the_limit_one_thread_gets_a_chunk_and_the_other_a_dedicated_block() {
    // Beside the two lanes, room for one chunk for a `u64` (32 bytes) and one dedicated block (24): whichever thread
    // sizes its chunk first takes 32 (a lane never takes more than 1/8 of the room it sees, and this room is small),
    // the other finds no room for a chunk and falls back to a block. Both are always served, exactly at the limit.
    crate::model(Bounds::CI, || {
        let budget = budget_with_room(CHUNK_FOR_U64 + 24);
        let results = race(budget);
        check(budget, &results);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let stats = budget.stats();
        assert_eq!((stats.blocks, stats.lanes, stats.reserved), (2, 2, stats.limit), "{stats:?}");
    });
}

#[test]
fn one_byte_short_of_a_chunk_and_a_block_a_thread_without_room_for_a_lane_gets_a_block() {
    // One byte less than above. If one thread makes its lane and chunk first, the other has no room for a lane
    // (128 bytes and its 24-byte value) but room for a block of its own, so it is served without a lane: both are
    // served, with one lane. If both lanes are made first, the first chunk leaves 23 bytes, too few for a block: the
    // other request is refused (its lane stays charged). Both outcomes are reached.
    crate::model(Bounds::CI, || {
        let budget = budget_with_room(CHUNK_FOR_U64 + 24 - 1);
        let results = race(budget);
        check(budget, &results);
        let served = results.iter().filter(|result| result.is_ok()).count();
        let stats = budget.stats();
        match (served, stats.lanes) {
            (2, 1) => {
                assert_eq!(stats.blocks, 2, "{stats:?}");
                SEEN_SERVED_WITHOUT_A_LANE.store(true, Seen);
            }
            (1, 2) => {
                assert_eq!(stats.blocks, 1, "{stats:?}");
                SEEN_REFUSED_AFTER_ITS_LANE.store(true, Seen);
            }
            other => panic!("unexpected outcome {other:?}: {results:?} {stats:?}"),
        }
    });
    assert!(SEEN_SERVED_WITHOUT_A_LANE.load(Seen) && SEEN_REFUSED_AFTER_ITS_LANE.load(Seen), "both outcomes happen");
}

static SEEN_SERVED_WITHOUT_A_LANE: SeenFlag = SeenFlag::new(false);
static SEEN_REFUSED_AFTER_ITS_LANE: SeenFlag = SeenFlag::new(false);

static SEEN_LARGER_FIRST_CHUNK: SeenFlag = SeenFlag::new(false);
static SEEN_EQUAL_CHUNKS: SeenFlag = SeenFlag::new(false);

#[test]
fn chunks_are_sized_by_the_room_each_lane_sees() {
    // Room for several chunks: a lane that sizes its chunk before the other lane is charged sees 1/8 of a larger
    // room and takes 48 bytes; after, 32. Both are served whatever the order.
    crate::model(Bounds::CI, || {
        let budget = budget_with_room(300);
        let results = race(budget);
        check(budget, &results);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let stats = budget.stats();
        let chunks = stats.reserved - LeakBudget::RECORD_BYTES - stats.lanes * lane_bytes();
        assert_eq!((stats.blocks, stats.lanes), (2, 2), "{stats:?}");
        match chunks {
            80 => SEEN_LARGER_FIRST_CHUNK.store(true, Seen),
            64 => SEEN_EQUAL_CHUNKS.store(true, Seen),
            other => panic!("chunks of {other} bytes in all: {stats:?}"),
        }
    });
    assert!(SEEN_LARGER_FIRST_CHUNK.load(Seen) && SEEN_EQUAL_CHUNKS.load(Seen), "both sizings are reachable");
}
