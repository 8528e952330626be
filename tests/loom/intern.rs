//! Loom models of the interner: racing first inserts, inserts racing a bucket split, look-ups racing inserts (the
//! table's growth is modelled in `table.rs`). Under loom the table has one shard and 8-slot buckets, so a split takes
//! only nine values.

use leak_budget::{Interned, Interner};
use loom::thread;

use crate::{Bounds, budget};

fn interner(limit: usize) -> &'static Interner<str> {
    Box::leak(Box::new(Interner::in_budget(budget("intern", limit))))
}

#[test]
fn two_threads_interning_the_same_new_value_get_one_pointer_and_one_copy() {
    crate::model(Bounds::CI, || {
        let strings = interner(64 << 10);
        let workers: Vec<_> = (0..2).map(|_| thread::spawn(move || strings.intern("shared").unwrap())).collect();
        let handles: Vec<Interned<str>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(handles[0], handles[1]);
        assert_eq!(&*handles[0], "shared");
        assert_eq!(strings.len(), 1);
        let used_once = strings.budget().unwrap().used();
        // Interning it again charges nothing: it was stored once.
        strings.intern("shared").unwrap();
        assert_eq!(strings.budget().unwrap().used(), used_once);
    });
}

#[test]
fn values_already_present_are_never_lost_while_a_bucket_splits() {
    crate::model(Bounds::CI, || {
        let strings = interner(64 << 10);
        // Fill the only bucket: the next new value splits it.
        let before: Vec<Interned<str>> = (0..8).map(|i| strings.intern(&format!("v{i}")).unwrap()).collect();
        let splitter = thread::spawn(move || strings.intern("the ninth").unwrap());
        let reader = thread::spawn(move || {
            for (i, handle) in [(0, before[0]), (7, before[7])] {
                assert_eq!(strings.intern(&format!("v{i}")).unwrap(), handle, "re-interning finds the same entry");
                assert_eq!(strings.get(&format!("v{i}")), Some(handle), "get never misses a present value");
            }
        });
        let ninth = splitter.join().unwrap();
        reader.join().unwrap();
        assert_eq!(strings.len(), 9);
        assert_eq!(strings.get("the ninth"), Some(ninth));
        for i in 0..8 {
            assert!(strings.get(&format!("v{i}")).is_some());
        }
    });
}

#[test]
fn look_ups_racing_inserts_see_nothing_or_the_inserted_handle_and_a_racing_intern_adds_no_copy() {
    // Cheap enough to explore at a bound of 8: about 2,700 executions in a fraction of a second.
    crate::model(Bounds::preemptions(8), || {
        // A fresh interner: the first insert also creates the interner's state, its first bucket and its first
        // directory, each published with `Release` for the reader's `Acquire` loads.
        let strings = interner(64 << 10);
        // The reader runs its look-ups while the main thread inserts (loom's first execution runs the main thread's
        // inserts first, and explores the reader's loads before each of their stores from there), then races it to
        // insert the first value.
        let reader = thread::spawn(move || {
            let second = strings.get("fresher");
            let first = strings.get("fresh");
            assert!(second.is_none() || first.is_some(), "the second value is published after the first");
            (first, second, strings.intern("fresh").unwrap(), strings.len())
        });
        let fresh = strings.intern("fresh").unwrap();
        let fresher = strings.intern("fresher").unwrap();
        let (first, second, raced, len) = reader.join().unwrap();
        assert!(first.is_none() || first == Some(fresh), "{first:?}");
        assert!(second.is_none() || second == Some(fresher), "{second:?}");
        assert_eq!(raced, fresh, "one entry for the value both threads interned");
        assert_eq!(&*raced, "fresh");
        assert!((1..=2).contains(&len), "{len}");
        assert_eq!(strings.len(), 2);
        // The state, its shard array, the first bucket, the first directory and one entry per value: nothing stored
        // twice.
        assert_eq!(strings.budget().unwrap().stats().allocations, 4 + 2);
    });
}
