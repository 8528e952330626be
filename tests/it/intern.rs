//! `Interner<T>` and `Interned<T>`: identity, concurrency, the budget, and misbehaving `Hash`/`Eq`/`Clone`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::support::{budget, leaked, scaled, without_rejections};

use leak_budget::{Interned, Interner, LeakBudget, LeakError};

fn interner<T: ?Sized + 'static>(budget: &'static LeakBudget) -> &'static Interner<T>
where
    Interner<T>: Sync,
{
    leaked(Interner::in_budget(budget))
}

fn words(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("w{i}_{}", "x".repeat(i % 23))).collect()
}

#[test]
fn equal_values_share_one_address_and_distinct_values_do_not() {
    let strings = interner::<str>(budget(1 << 20));
    let a = strings.intern("alpha").unwrap();
    let b = strings.intern(&String::from("alpha")).unwrap();
    let c = strings.intern("beta").unwrap();
    assert_eq!(a, b);
    assert!(core::ptr::eq(a.as_static(), b.as_static()));
    assert_ne!(a, c);
    assert_eq!((&*a, &*c), ("alpha", "beta"));
    assert_eq!(strings.len(), 2);
    assert_eq!(strings.intern("").unwrap().as_static(), "");
    assert_eq!(strings.len(), 3);
}

#[test]
fn many_values_survive_every_split_and_doubling() {
    let count = scaled(50_000, 600);
    let strings = interner::<str>(budget(64 << 20));
    let words = words(count);
    let handles: Vec<Interned<str>> = words.iter().map(|w| strings.intern(w).unwrap()).collect();
    assert_eq!(strings.len(), count);
    for (word, handle) in words.iter().zip(&handles) {
        assert_eq!(&**handle, word.as_str());
        assert_eq!(strings.get(word), Some(*handle), "{word}");
        assert_eq!(strings.intern(word).unwrap(), *handle);
    }
    let distinct: HashSet<Interned<str>> = handles.iter().copied().collect();
    assert_eq!(distinct.len(), count);
    let mut snapshot: Vec<&str> = strings.iter().map(Interned::as_static).collect();
    snapshot.sort_unstable();
    let mut expected: Vec<&str> = words.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(snapshot, expected, "every value exactly once");
}

#[test]
fn long_strings_and_unicode_round_trip() {
    let strings = interner::<str>(budget(4 << 20));
    for len in [0, 1, 7, 8, 15, 16, 17, 127, 128, 300, 16_383, 16_384, 100_000] {
        let text: String = "é".repeat(len / 2) + &"z".repeat(len % 2);
        let handle = strings.intern(&text).unwrap();
        assert_eq!(&*handle, text);
        assert_eq!(strings.get(&text), Some(handle));
    }
}

#[test]
fn get_never_allocates_or_charges() {
    let budget = budget(1 << 20);
    let strings = interner::<str>(budget);
    assert_eq!(strings.get("absent"), None);
    assert_eq!(budget.reserved(), 0, "a look-up on an unused interner allocates nothing");
    strings.intern("present").unwrap();
    let before = budget.stats();
    for _ in 0..100 {
        assert!(strings.get("present").is_some());
        assert!(strings.get("absent").is_none());
    }
    assert_eq!(budget.stats(), before);
}

#[test]
fn an_exhausted_budget_refuses_new_values_changes_nothing_and_keeps_old_ones() {
    // Limits the word list is sure to exhaust (it is shorter under Miri).
    let limits: &[usize] = if cfg!(miri) { &[2 << 10, 4 << 10] } else { &[2 << 10, 8 << 10, 32 << 10, 200 << 10] };
    for &limit in limits {
        let budget = budget(limit);
        let strings = interner::<str>(budget);
        let mut kept = HashMap::new();
        let mut refusals = 0;
        for word in words(scaled(20_000, 300)) {
            let before = (budget.stats(), strings.len());
            match strings.intern(&word) {
                Ok(handle) => {
                    kept.insert(word, handle);
                }
                Err(error) => {
                    assert!(matches!(error, LeakError::BudgetExceeded { .. }), "{error}");
                    let after = budget.stats();
                    assert_eq!(
                        without_rejections(after),
                        without_rejections(before.0),
                        "a refusal changes nothing (limit {limit})"
                    );
                    assert_eq!(after.rejections, before.0.rejections + 1);
                    assert_eq!(strings.len(), before.1);
                    assert_eq!(strings.get(&word), None);
                    refusals += 1;
                }
            }
            assert!(budget.reserved() <= budget.limit());
        }
        assert!(refusals > 0, "limit {limit} was meant to run out");
        assert_eq!(strings.len(), kept.len());
        for (word, handle) in &kept {
            assert_eq!(strings.intern(word).unwrap(), *handle, "values already present keep interning");
            assert_eq!(strings.get(word), Some(*handle));
        }
    }
}

#[test]
fn the_table_is_charged_to_the_budget() {
    let budget = budget(64 << 20);
    let strings = interner::<str>(budget);
    let words = words(scaled(20_000, 400));
    for word in &words {
        strings.intern(word).unwrap();
    }
    // Each string entry is its bytes plus a one-byte length (all these are shorter than 128 bytes).
    let entries: usize = words.iter().map(|w| w.len() + 1).sum();
    let stats = budget.stats();
    assert!(stats.used > entries, "the table's buckets and directories are charged too\n{stats}");
    assert!(stats.used < entries * 3, "and they stay proportionate\n{stats}");
}

#[test]
fn threads_interning_the_same_new_values_get_one_copy_each() {
    let threads = 4;
    // Values large enough that a second copy of any one would exceed what the table itself can charge.
    let values: Vec<String> = (0..scaled(64, 8)).map(|i| format!("{i:04}").repeat(2048)).collect();
    let budget = budget(64 << 20);
    let strings = interner::<str>(budget);
    let barrier = Barrier::new(threads);
    let seen: Vec<Vec<Interned<str>>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, values) = (&barrier, &values);
                scope.spawn(move || {
                    barrier.wait();
                    // Each thread walks the values from a different starting point, so first sightings collide.
                    (0..values.len())
                        .map(|i| (i + t * 3) % values.len())
                        .map(|i| (i, strings.intern(&values[i]).unwrap()))
                        .fold(vec![None; values.len()], |mut acc, (i, handle)| {
                            acc[i] = Some(handle);
                            acc
                        })
                        .into_iter()
                        .map(Option::unwrap)
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for per_thread in &seen[1..] {
        assert_eq!(per_thread, &seen[0], "every thread got the same handle for each value");
    }
    assert_eq!(strings.len(), values.len());
    let stored: usize = values.iter().map(|v| v.len() + 2).sum();
    let stats = budget.stats();
    let one_value = values[0].len();
    assert!(stats.used >= stored && stats.used < stored + one_value, "each value stored once\n{stats}");
}

#[test]
fn threads_on_disjoint_and_shared_values_agree_with_a_single_threaded_run() {
    let words = words(scaled(30_000, 300));
    let strings = interner::<str>(budget(64 << 20));
    let halves: Vec<&[String]> = words.chunks(words.len() / 2 + 1).collect();
    thread::scope(|scope| {
        for half in &halves {
            scope.spawn(move || {
                for word in *half {
                    strings.intern(word).unwrap();
                }
            });
        }
        scope.spawn(|| {
            for word in words.iter().rev() {
                strings.intern(word).unwrap();
            }
        });
    });
    assert_eq!(strings.len(), words.len());
    for word in &words {
        assert_eq!(strings.get(word).map(Interned::as_static), Some(word.as_str()));
    }
}

#[test]
fn slices_bytes_and_sized_values_intern_too() {
    let budget = budget(1 << 20);
    let bytes = interner::<[u8]>(budget);
    let heap_bytes = String::from("abc").into_bytes();
    assert_eq!(bytes.intern(b"abc").unwrap(), bytes.intern(&heap_bytes).unwrap());
    let numbers = interner::<[u32]>(budget);
    let a = numbers.intern(&[1, 2, 3]).unwrap();
    assert_eq!(&*a, &[1, 2, 3]);
    let heap_numbers: Vec<u32> = (1..=3).collect();
    assert_eq!(a, numbers.intern(&heap_numbers).unwrap());
    assert_ne!(a, numbers.intern(&[1, 2]).unwrap());
    assert_eq!(numbers.intern(&[]).unwrap().len(), 0);

    #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
    struct Point {
        x: i64,
        y: i64,
        label: String,
    }
    let points = interner::<Point>(budget);
    let p = Point { x: 1, y: -2, label: "origin-ish".into() };
    let first = points.intern(&p).unwrap();
    assert_eq!(first, points.intern(&p.clone()).unwrap());
    assert_eq!(first, points.intern_owned(p.clone()).unwrap());
    assert_eq!(*first, p);
    assert_eq!(points.len(), 1);
}

#[test]
fn owned_values_come_back_when_refused() {
    let points = interner::<Vec<u64>>(budget(0));
    let refused = points.intern_owned(vec![1, 2, 3]).unwrap_err();
    assert!(matches!(refused.error(), LeakError::BudgetExceeded { .. }));
    assert_eq!(refused.into_inner(), [1, 2, 3]);
    assert!(matches!(points.intern(&vec![4]), Err(LeakError::BudgetExceeded { .. })));
}

#[test]
fn handles_are_one_pointer_ordered_by_value_and_print_as_the_value() {
    assert_eq!(size_of::<Interned<str>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<Interned<str>>>(), size_of::<usize>());
    let strings = interner::<str>(budget(1 << 20));
    let (b, a, c) = (strings.intern("b").unwrap(), strings.intern("a").unwrap(), strings.intern("c").unwrap());
    let mut sorted = vec![c, a, b];
    sorted.sort();
    assert_eq!(sorted, [a, b, c]);
    assert_eq!((format!("{a}"), format!("{a:?}")), ("a".to_owned(), "\"a\"".to_owned()));
    // Equal values in two interners: different handles, ordered consistently with `Eq`.
    let other = interner::<str>(budget(1 << 20)).intern("a").unwrap();
    assert_ne!(a, other);
    assert_ne!(a.cmp(&other), core::cmp::Ordering::Equal);
    assert_eq!(a.cmp(&other), other.cmp(&a).reverse());
}

#[test]
fn the_global_intern_function_returns_shared_handles() {
    let a = leak_budget::intern("global-intern-test").unwrap();
    let b = leak_budget::intern(&String::from("global-intern-test")).unwrap();
    assert_eq!(a, b);
    assert!(core::ptr::eq(a.as_static(), b.as_static()));
    assert_eq!(a, "global-intern-test");
}

/// A value whose `Hash`, `Eq` or `Clone` panics on demand, and whose hash is constant (every value collides, so
/// `Eq` runs on every insert and the table must chain).
#[derive(Debug)]
struct Fragile(u32);

static PANIC_IN_HASH: AtomicBool = AtomicBool::new(false);
static PANIC_IN_EQ: AtomicBool = AtomicBool::new(false);
static PANIC_IN_CLONE: AtomicBool = AtomicBool::new(false);

impl Hash for Fragile {
    fn hash<H: Hasher>(&self, state: &mut H) {
        assert!(!PANIC_IN_HASH.load(Ordering::Relaxed), "Hash panicked");
        state.write_u8(7);
    }
}
impl PartialEq for Fragile {
    fn eq(&self, other: &Self) -> bool {
        assert!(!PANIC_IN_EQ.load(Ordering::Relaxed), "Eq panicked");
        self.0 == other.0
    }
}
impl Eq for Fragile {}
impl Clone for Fragile {
    fn clone(&self) -> Self {
        assert!(!PANIC_IN_CLONE.load(Ordering::Relaxed), "Clone panicked");
        Fragile(self.0)
    }
}

#[test]
#[cfg_attr(miri, ignore = "unwinding through the table is exercised natively; slow under Miri")]
fn panicking_hash_eq_and_clone_leave_the_interner_consistent() {
    let budget = budget(4 << 20);
    let values = interner::<Fragile>(budget);
    // Constant hashes: more values than a bucket holds, so they chain.
    let handles: Vec<_> = (0..100).map(|i| values.intern(&Fragile(i)).unwrap()).collect();
    for flag in [&PANIC_IN_HASH, &PANIC_IN_EQ, &PANIC_IN_CLONE] {
        let before = (budget.stats(), values.len());
        flag.store(true, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| values.intern(&Fragile(1000))));
        flag.store(false, Ordering::Relaxed);
        assert!(outcome.is_err(), "the panic propagates");
        assert_eq!(
            (without_rejections(budget.stats()), values.len()),
            (without_rejections(before.0), before.1),
            "nothing changed"
        );
        // The lock was released and every value is still there.
        for (i, handle) in handles.iter().enumerate() {
            assert_eq!(values.intern(&Fragile(i as u32)).unwrap(), *handle);
        }
    }
    let late = values.intern(&Fragile(1000)).unwrap();
    assert_eq!(late.0, 1000);
    assert_eq!(values.len(), 101);
}

#[test]
fn a_non_sync_value_type_can_still_be_interned_on_one_thread() {
    #[derive(Clone, PartialEq, Eq, Hash)]
    struct Local(u32, std::marker::PhantomData<Cell<()>>);
    let values: Interner<Local> = Interner::in_budget(budget(1 << 20));
    let a = values.intern(&Local(1, std::marker::PhantomData)).unwrap();
    assert_eq!(a.0, 1);
}

#[test]
fn iter_visits_every_value_interned_before_it_once_while_others_intern() {
    let strings: &'static Interner<str> = interner(budget(4 << 20));
    let before: Vec<String> = (0..scaled(2_000, 60)).map(|i| format!("before-{i}")).collect();
    for value in &before {
        strings.intern(value).unwrap();
    }
    let writer = thread::spawn(move || {
        for i in 0..scaled(2_000, 60) {
            strings.intern(&format!("during-{i}")).unwrap();
        }
    });
    let seen: Vec<&str> = strings.iter().map(Interned::as_static).collect();
    writer.join().unwrap();
    let distinct: HashSet<&str> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "a value was visited twice");
    for value in &before {
        assert!(distinct.contains(value.as_str()), "{value} was interned before iter() and not visited");
    }
    assert!(seen.iter().all(|value| value.starts_with("before-") || value.starts_with("during-")));
    // With no insert under way, the iterator sees exactly what the interner holds.
    assert_eq!(strings.iter().count(), strings.len());
    assert_eq!(strings.into_iter().count(), strings.len());
}

#[test]
fn iter_holds_no_lock_between_items_so_the_loop_may_intern() {
    let outcome = crate::support::bounded(|| {
        let strings: &'static Interner<str> = interner(budget(1 << 20));
        for i in 0..64 {
            strings.intern(&format!("seed-{i}")).unwrap();
        }
        let mut added = 0;
        for value in strings.iter().take(64) {
            // A new value goes into some shard, maybe the one this iterator copied last: its lock is not held.
            strings.intern(&format!("{value}-copy")).unwrap();
            added += 1;
        }
        (added, strings.len())
    });
    assert_eq!(outcome.expect("no deadlock, no panic"), (64, 128));
}

#[test]
fn an_empty_interner_iterates_nothing() {
    let strings: &'static Interner<str> = interner(budget(1 << 20));
    assert_eq!(strings.iter().next(), None);
    let none: &'static Interner<str> = interner(budget(0));
    assert!(none.intern("x").is_err());
    assert_eq!(none.iter().count(), 0);
}

#[test]
fn string_handles_compare_with_plain_strings_both_ways() {
    let strings: &'static Interner<str> = interner(budget(1 << 20));
    let word = strings.intern("word").unwrap();
    // Each impl on its own line: clippy would fold a chain of them.
    assert!(word == "word");
    assert!("word" == word);
    assert!(word == *"word");
    assert!(*"word" == word);
    let (same, other) = (String::from("word"), String::from("other"));
    assert!(word == same);
    assert!(same == word);
    assert!(word != "other");
    assert!(other != word);
    let bytes: &'static Interner<[u8]> = interner(budget(1 << 20));
    let raw = bytes.intern(b"raw").unwrap();
    assert!(raw == b"raw"[..]);
    let borrowed: &[u8] = b"raw";
    assert!(raw == borrowed);
    let owned = b"raw".to_vec();
    assert!(raw == owned);
    assert!(owned == raw);
    let plain: &'static [u8] = raw.into();
    assert_eq!(plain, b"raw");
    assert_eq!(AsRef::<[u8]>::as_ref(&word), b"word");
    assert_eq!(AsRef::<std::path::Path>::as_ref(&word), std::path::Path::new("word"));
}
