//! Loom models of `LeakBudget::set_limit`: a charge racing a change of the limit is served under the old limit or
//! the new one, and one that starts after the change returned sees the new limit, both before the budget has a record
//! (the change goes to the copy the record will be created from, under `creating`) and after (the account's limit).

use loom::sync::Arc;
use loom::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use loom::thread;

use crate::{Bounds, budget};

/// Lowers a budget to 0 on one thread while another leaks a value; the leaker also reads whether the lowering has
/// finished (a flag set after `set_limit` returns). Once it has, the leak must be refused; before, it may go either
/// way. Either way the budget never holds more than the old limit, and a refusal changes nothing.
fn lowering_races_a_leak(record_first: bool) {
    crate::model(Bounds::CI, move || {
        let budget = budget("lowered", 64 << 10);
        if record_first {
            budget.register().unwrap();
        }
        let lowered = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&lowered);
        let leaker = thread::spawn(move || {
            let after = done.load(Acquire);
            (after, budget.leak(7u64).is_ok())
        });
        budget.set_limit(0).unwrap();
        lowered.store(true, Release);
        let (after, served) = leaker.join().unwrap();
        assert!(!(after && served), "a leak that started after set_limit(0) returned was served");
        assert_eq!(budget.limit(), 0);
        assert!(budget.reserved() <= 64 << 10);
        let stats = budget.stats();
        assert_eq!(stats.allocations, usize::from(served), "{stats:?}");
        assert_eq!(stats.rejections, usize::from(!served), "{stats:?}");
        if !served {
            // No value and no chunk was charged for it. Bookkeeping the request created under the old limit before the
            // lowering (the record, a lane) may stay: charged while the limit allowed it, and used by later requests.
            assert_eq!((stats.used, stats.blocks), (0, 0), "{stats:?}");
        }
    });
}

#[test]
fn a_lowering_racing_a_first_leak_is_seen_by_every_later_leak() {
    lowering_races_a_leak(false);
}

#[test]
fn a_lowering_racing_a_leak_into_an_existing_record_is_seen_by_every_later_leak() {
    lowering_races_a_leak(true);
}

#[test]
fn a_raise_racing_a_first_leak_is_never_lost() {
    // A budget too small for anything is raised while another thread's first leak creates its record: whichever
    // comes first, the record ends up with the raised limit (the leak read the old limit and was refused, or the new
    // one and was served).
    crate::model(Bounds::CI, || {
        let budget = budget("raised", 0);
        let leaker = thread::spawn(move || budget.leak(7u64).is_ok());
        budget.set_limit(64 << 10).unwrap();
        let served = leaker.join().unwrap();
        assert_eq!(budget.limit(), 64 << 10);
        // The limit reached the record, however the two interleaved: a later leak is served.
        assert!(budget.leak(8u64).is_ok());
        assert_eq!(budget.stats().allocations, 1 + usize::from(served));
    });
}
