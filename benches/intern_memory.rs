//! Memory of interning: growth of the resident set per unique byte interned, for every contender, each measured in
//! a fresh child process (median of three).
//!
//! ```text
//! LEAK_BUDGET_CORPUS=/path/to/idents.txt cargo bench -p leak-budget-benches --bench intern_memory
//! ```
//!
//! Leak-budget's figure includes its hash table and bookkeeping, all of which are charged to the budget.

mod common;

use common::interners::{Contender, Workload, child_main, run_in_child};

fn main() {
    if child_main() {
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument selects contenders by name.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let (_, label) = common::tokens();
    println!("token stream: {label}");
    println!("{:<36} {:>14} {:>14} {:>18}", "contender", "RSS growth", "unique bytes", "bytes / unique byte");
    for contender in Contender::ALL {
        if filter.as_deref().is_some_and(|f| !contender.name().contains(f)) {
            continue;
        }
        let mut runs: Vec<(usize, usize)> = (0..3)
            .map(|_| {
                let line = run_in_child(Workload::Memory, contender);
                let (growth, unique) = line.split_once(' ').expect("growth unique");
                (growth.parse().expect("bytes"), unique.parse().expect("bytes"))
            })
            .collect();
        runs.sort_unstable();
        let (growth, unique) = runs[1];
        println!("{:<36} {:>14} {:>14} {:>18.2}", contender.name(), growth, unique, growth as f64 / unique as f64);
    }
}
