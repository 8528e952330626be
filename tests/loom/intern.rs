//! Loom models of the interner's table: racing first inserts, inserts racing a bucket split, look-ups racing inserts.
//! Under loom the table has one shard and 8-slot buckets, so a split takes only nine values.

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
fn a_look_up_racing_an_insert_sees_nothing_or_the_inserted_handle() {
    crate::model(Bounds::CI, || {
        let strings = interner(64 << 10);
        strings.intern("warm").unwrap();
        let writer = thread::spawn(move || strings.intern("fresh").unwrap());
        let seen = strings.get("fresh");
        let inserted = writer.join().unwrap();
        if let Some(handle) = seen {
            assert_eq!(handle, inserted);
            assert_eq!(&*handle, "fresh");
        }
        assert_eq!(strings.get("fresh"), Some(inserted));
    });
}
