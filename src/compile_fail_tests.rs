//! What must not compile, pinned by `compile_fail` doctests, each next to a positive control that does compile (so a
//! test cannot pass for an unrelated reason, such as a typo). Built only for doctests.
//!
//! # Variance: containers are invariant in what they store
//!
//! A container whose `&self` methods store values of a type parameter and hand them out again must not let a
//! reference to it be used at another type, or a value stored through the wider view is read at the narrower one. The
//! exploit each of these stops: a `for<'a> fn(&'a str)` (callable with any string) viewed as a `fn(&'static str)`
//! (which may keep its argument forever); a function that keeps its argument is stored through the second view and
//! later called through the first with a short-lived string.
//!
//! `Interner<T>`:
//!
//! ```compile_fail,E0308
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use leak_budget::Interner;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! type StaticOnly = fn(&'static str);
//! fn widen(interner: &'static Interner<AnyLifetime>) -> &'static Interner<StaticOnly> {
//!     interner
//! }
//! ```
//!
//! ```
//! use leak_budget::Interner;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! fn same(interner: &'static Interner<AnyLifetime>) -> &'static Interner<AnyLifetime> {
//!     interner
//! }
//! static FUNCTIONS: Interner<AnyLifetime> = Interner::new();
//! assert!(same(&FUNCTIONS).is_empty());
//! ```
//!
//! `StaticCache<K, V>`, in its value:
//!
//! ```compile_fail,E0308
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use leak_budget::StaticCache;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! type StaticOnly = fn(&'static str);
//! fn widen(cache: &'static StaticCache<u32, AnyLifetime>) -> &'static StaticCache<u32, StaticOnly> {
//!     cache
//! }
//! ```
//!
//! and in its key:
//!
//! ```compile_fail,E0308
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use leak_budget::StaticCache;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! type StaticOnly = fn(&'static str);
//! fn widen(cache: &'static StaticCache<AnyLifetime, u32>) -> &'static StaticCache<StaticOnly, u32> {
//!     cache
//! }
//! ```
//!
//! ```
//! use leak_budget::StaticCache;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! fn same(cache: &'static StaticCache<u32, AnyLifetime>) -> &'static StaticCache<u32, AnyLifetime> {
//!     cache
//! }
//! fn same_key(cache: &'static StaticCache<AnyLifetime, u32>) -> &'static StaticCache<AnyLifetime, u32> {
//!     cache
//! }
//! static BY_KEY: StaticCache<u32, AnyLifetime> = StaticCache::new();
//! static BY_FUNCTION: StaticCache<AnyLifetime, u32> = StaticCache::new();
//! assert!(same(&BY_KEY).is_empty() && same_key(&BY_FUNCTION).is_empty());
//! ```
//!
//! `LeakOnce<T>` (also pinned in `once.rs`, next to its field):
//!
//! ```compile_fail,E0308
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use leak_budget::LeakOnce;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! type StaticOnly = fn(&'static str);
//! fn widen(cell: &'static LeakOnce<AnyLifetime>) -> &'static LeakOnce<StaticOnly> {
//!     cell
//! }
//! ```
//!
//! `LeakLazy<T, F>`, in `T` (it stores the `T` its initialiser returns and hands it out):
//!
//! ```compile_fail,E0308
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use leak_budget::LeakLazy;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! type StaticOnly = fn(&'static str);
//! fn widen(lazy: &'static LeakLazy<AnyLifetime, fn() -> AnyLifetime>) -> &'static LeakLazy<StaticOnly, fn() -> AnyLifetime> {
//!     lazy
//! }
//! ```
//!
//! ```
//! use leak_budget::LeakLazy;
//!
//! type AnyLifetime = for<'a> fn(&'a str);
//! fn same(lazy: &'static LeakLazy<AnyLifetime, fn() -> AnyLifetime>) -> &'static LeakLazy<AnyLifetime, fn() -> AnyLifetime> {
//!     lazy
//! }
//! fn ignore(_: &str) {}
//! static PRINTER: LeakLazy<AnyLifetime, fn() -> AnyLifetime> = LeakLazy::new(|| ignore);
//! (same(&PRINTER))("called");
//! ```
//!
//! Read-only handles and owned wrappers stay covariant, like `&'static T` and `Option<T>`: nothing can be stored
//! through them.
//!
//! ```
//! use leak_budget::{Cached, Interned, Rejected};
//!
//! fn handle(value: Interned<str>) -> Interned<str> {
//!     value
//! }
//! fn shorter<'short>(rejected: Rejected<&'static str>) -> Rejected<&'short str> {
//!     rejected
//! }
//! fn cached<'short>(value: Cached<&'static str>) -> Cached<&'short str> {
//!     value
//! }
//! let _ = (handle, shorter, cached);
//! ```
//!
//! # `Send` and `Sync`: a value that is not `Sync` never reaches another thread
//!
//! Every container hands out `&'static T` to whichever thread holds it, so it is `Sync` (and `Send`) only when
//! `T: Sync`.
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::LeakOnce;
//!
//! static CELL: LeakOnce<Cell<u32>> = LeakOnce::new(); // `LeakOnce<Cell<u32>>` is not `Sync`
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::LeakOnce;
//!
//! let cell: LeakOnce<Cell<u32>> = LeakOnce::new();
//! std::thread::spawn(move || cell.get().map(Cell::get)); // nor `Send`: moving it shares the value
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::StaticCache;
//!
//! static CACHE: StaticCache<u32, Cell<u32>> = StaticCache::new();
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::LeakLazy;
//!
//! static COUNTER: LeakLazy<Cell<u32>> = LeakLazy::new(|| Cell::new(0)); // `LeakLazy<Cell<u32>>` is not `Sync`
//! ```
//!
//! ```
//! use std::sync::atomic::AtomicU32;
//! use leak_budget::LeakLazy;
//!
//! static COUNTER: LeakLazy<AtomicU32> = LeakLazy::new(|| AtomicU32::new(0)); // `Sync` without `T: Send` needed
//! std::thread::spawn(|| COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)).join().unwrap();
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::StaticCache;
//!
//! static CACHE: StaticCache<Cell<u32>, u32> = StaticCache::new(); // keys are compared by every thread
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::{Interned, Interner};
//!
//! #[derive(Clone, PartialEq, Eq, Hash)]
//! struct Counter(u32, std::marker::PhantomData<Cell<()>>);
//! let values: Interner<Counter> = Interner::new();
//! let handle: Interned<Counter> = values.intern(&Counter(1, std::marker::PhantomData)).unwrap();
//! std::thread::spawn(move || handle.0); // `Interned<Counter>` is not `Send`
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::LeakBudget;
//!
//! static BUDGET: LeakBudget = LeakBudget::new(1 << 10);
//! let shared: &'static Cell<u32> = BUDGET.leak(Cell::new(1)).unwrap();
//! std::thread::spawn(move || shared.set(2)); // a leaked `&'static Cell` is still a `&Cell`
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::rc::Rc;
//! use leak_budget::LeakBudget;
//!
//! static BUDGET: LeakBudget = LeakBudget::new(0);
//! let refused = BUDGET.leak(Rc::new(1)).unwrap_err(); // gives the `Rc` back on this thread
//! std::thread::spawn(move || refused.into_inner());
//! ```
//!
//! The positive controls: the same with `Sync` values.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use leak_budget::{Interner, LeakBudget, LeakOnce, StaticCache};
//!
//! static CELL: LeakOnce<AtomicU32> = LeakOnce::new();
//! static CACHE: StaticCache<u32, AtomicU32> = StaticCache::new();
//! static BUDGET: LeakBudget = LeakBudget::new(1 << 10);
//! let values: Interner<u32> = Interner::new();
//! let handle = values.intern(&1).unwrap();
//! let shared: &'static AtomicU32 = BUDGET.leak(AtomicU32::new(1)).unwrap();
//! static NOTHING: LeakBudget = LeakBudget::new(0);
//! let refused = NOTHING.leak(7_u32).unwrap_err();
//! std::thread::spawn(move || {
//!     shared.store(2, Ordering::Relaxed);
//!     CELL.get_or_init(|| AtomicU32::new(3)).unwrap();
//!     CACHE.get_or_insert_with(&1, |_| AtomicU32::new(4));
//!     assert_eq!((*handle, refused.into_inner()), (1, 7));
//! })
//! .join()
//! .unwrap();
//! ```
//!
//! # Unwind safety: as `OnceLock<T>`
//!
//! A cell, interner or cache of a type with interior mutability is not `RefUnwindSafe`, exactly as
//! `OnceLock<Cell<u32>>` is not:
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::LeakOnce;
//!
//! fn ref_unwind_safe<T: std::panic::RefUnwindSafe>() {}
//! ref_unwind_safe::<LeakOnce<Cell<u32>>>();
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::Interner;
//!
//! fn ref_unwind_safe<T: std::panic::RefUnwindSafe>() {}
//! ref_unwind_safe::<Interner<Cell<u32>>>();
//! ```
//!
//! ```compile_fail,E0277
//! # #![allow(unused)] // only the error under test may stop the compilation
//! use std::cell::Cell;
//! use leak_budget::StaticCache;
//!
//! fn ref_unwind_safe<T: std::panic::RefUnwindSafe>() {}
//! ref_unwind_safe::<StaticCache<u32, Cell<u32>>>();
//! ```
//!
//! ```
//! use std::cell::Cell;
//! use std::sync::OnceLock;
//! use leak_budget::{Interner, LeakOnce, StaticCache};
//!
//! fn ref_unwind_safe<T: std::panic::RefUnwindSafe>() {}
//! fn unwind_safe<T: std::panic::UnwindSafe>() {}
//! ref_unwind_safe::<LeakOnce<u32>>();
//! ref_unwind_safe::<Interner<str>>();
//! ref_unwind_safe::<StaticCache<u32, u32>>();
//! unwind_safe::<LeakOnce<Cell<u32>>>();
//! unwind_safe::<OnceLock<Cell<u32>>>();
//! ```
