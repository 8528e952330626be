//! Leaking 24-byte values and identifier-sized strings: leak-budget against `Box::leak`, bumpalo and typed-arena.
//!
//! ```text
//! cargo bench -p leak-budget-benches --bench leak   # optional: LEAK_BUDGET_CORPUS=/path/to/tokens.txt for the strings
//! ```
//!
//! Every sample runs in a fresh child process (this binary, re-executed), which performs the sample's operations,
//! times them, and reports the time: every contender allocates fresh pages, as a program that leaks does, and the
//! memory nobody frees is returned when the child exits. bumpalo and typed-arena arenas are forgotten rather than
//! dropped, so that they too are measured without reusing memory.
//!
//! "2 threads" rows split the same number of operations over two threads and time them together (aggregate
//! nanoseconds per operation), so a design that scales shows about half the 1-thread time.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::timed_on_threads;
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use leak_budget::LeakBudget;

/// A case measured in a child: its name in the report and its code on the child's command line.
const VALUE_CASES: [(&str, &str); 7] = [
    ("leak-budget LeakBudget::leak", "budget"),
    ("bumpalo Bump::alloc", "bumpalo"),
    ("typed-arena Arena::alloc", "typed-arena"),
    ("std Box::leak", "box"),
    ("leak-budget LeakBudget::leak, 2 threads", "budget-2"),
    ("bumpalo Bump::alloc, one Bump per thread, 2 threads", "bumpalo-2"),
    ("std Box::leak, 2 threads", "box-2"),
];

const STRING_CASES: [(&str, &str); 3] = [
    ("leak-budget LeakBudget::leak_str", "str-budget"),
    ("bumpalo Bump::alloc_str", "str-bumpalo"),
    ("std Box::leak(Box<str>)", "str-box"),
];

fn fresh_budget() -> &'static LeakBudget {
    Box::leak(Box::new(LeakBudget::named("bench", usize::MAX / 2)))
}

fn leak_values(budget: &LeakBudget, operations: u64) {
    for i in 0..operations {
        black_box(budget.leak([i; 3]).unwrap());
    }
}

fn bump_values(operations: u64) {
    let bump = bumpalo::Bump::new();
    for i in 0..operations {
        black_box(bump.alloc([i; 3]));
    }
    std::mem::forget(bump);
}

fn box_values(operations: u64) {
    for i in 0..operations {
        black_box(Box::leak(Box::new([i; 3])));
    }
}

/// Runs one sample of `case` with `operations` operations and returns its time. Runs in a child process.
fn run_case(case: &str, operations: u64) -> Duration {
    let one_thread = |work: &dyn Fn()| {
        let start = Instant::now();
        work();
        start.elapsed()
    };
    match case {
        "budget" => {
            let budget = fresh_budget();
            one_thread(&|| leak_values(budget, operations))
        }
        "bumpalo" => one_thread(&|| bump_values(operations)),
        "typed-arena" => one_thread(&|| {
            let arena = typed_arena::Arena::<[u64; 3]>::new();
            for i in 0..operations {
                black_box(arena.alloc([i; 3]));
            }
            std::mem::forget(arena);
        }),
        "box" => one_thread(&|| box_values(operations)),
        "budget-2" => {
            let budget = fresh_budget();
            timed_on_threads(2, operations, |n| leak_values(budget, n))
        }
        "bumpalo-2" => timed_on_threads(2, operations, bump_values),
        "box-2" => timed_on_threads(2, operations, box_values),
        strings => {
            let (owned, _) = common::tokens();
            let tokens: Vec<&str> = owned.iter().map(String::as_str).collect();
            // One iteration is one pass over the whole stream (see `in_children`).
            let stream = || tokens.iter().cycle().take(operations as usize * tokens.len());
            match strings {
                "str-budget" => {
                    let budget = fresh_budget();
                    one_thread(&|| {
                        for token in stream() {
                            black_box(budget.leak_str(token).unwrap());
                        }
                    })
                }
                "str-bumpalo" => one_thread(&|| {
                    let bump = bumpalo::Bump::new();
                    for token in stream() {
                        black_box(bump.alloc_str(token));
                    }
                    std::mem::forget(bump);
                }),
                "str-box" => one_thread(&|| {
                    for token in stream() {
                        black_box(Box::leak(Box::<str>::from(*token)));
                    }
                }),
                other => panic!("unknown case {other}"),
            }
        }
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, elements_per_iteration: u64) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(elements_per_iteration));
}

/// Measures each case in children. An iteration is one value for the value cases, and one pass over the whole token
/// stream for the string cases: criterion ends its warm-up on wall-clock time, which here includes starting a child
/// and reading the corpus, so with one string per iteration the warm-up stopped at a few strings per sample and the
/// samples measured a fresh budget's first-use costs instead of leaking.
fn in_children(c: &mut Criterion, title: &str, cases: &[(&str, &str)], elements_per_iteration: u64) {
    let mut group = c.benchmark_group(title);
    configure(&mut group, elements_per_iteration);
    for (name, code) in cases {
        group.bench_function(*name, |b| b.iter_custom(|iters| common::timed_in_child(&format!("{code}:{iters}"))));
    }
    group.finish();
}

fn main() {
    if let Some(case) = common::child_case() {
        let (code, operations) = case.rsplit_once(':').expect("case:operations");
        let elapsed = run_case(code, operations.parse().expect("a count"));
        println!("{}", elapsed.as_nanos());
        return;
    }
    let (tokens, label) = common::tokens();
    eprintln!("strings: {label}");
    let mut criterion = Criterion::default().configure_from_args();
    in_children(&mut criterion, "leak 24-byte values", &VALUE_CASES, 1);
    in_children(&mut criterion, "leak identifier strings", &STRING_CASES, tokens.len() as u64);
    criterion.final_summary();
}
