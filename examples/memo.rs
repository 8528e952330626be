//! A CLI that factors numbers, memoizing each factorization (trial division: slow for large primes) in a
//! `StaticCache` under a small budget. Once the budget is exhausted it keeps answering, uncached, and at the end it
//! prints how many look-ups hit, missed and were degraded.
//!
//! ```text
//! cargo run --release --example memo                               # a built-in workload with repeats
//! cargo run --release --example memo -- 600851475143 97 97 1000003 # numbers to factor
//! echo "12 12 1000003" | cargo run --example memo -- -             # numbers from standard input
//! cargo run --release --example memo -- --budget 64KiB             # more room: fewer degraded look-ups
//! ```

use std::fmt;
use std::io::Read;
use std::process::ExitCode;

use leak_budget::{Cached, LeakBudget, StaticCache, parse_size};

/// The distinct prime factors of a `u64` with their exponents. Inline (no heap), so the budget charges all of it:
/// at most 15 primes, as the product of the first 16 exceeds `u64::MAX`.
#[derive(Debug, Clone, Copy)]
struct Factors {
    primes: [(u64, u8); 15],
    len: usize,
}

impl Factors {
    /// Trial division: about `sqrt(n)` steps when `n` is prime.
    fn of(mut n: u64) -> Self {
        let mut factors = Factors { primes: [(0, 0); 15], len: 0 };
        let mut divisor = 2;
        while divisor * divisor <= n {
            if n % divisor == 0 {
                let mut exponent = 0;
                while n % divisor == 0 {
                    n /= divisor;
                    exponent += 1;
                }
                factors.primes[factors.len] = (divisor, exponent);
                factors.len += 1;
            }
            divisor += if divisor == 2 { 1 } else { 2 };
        }
        if n > 1 {
            factors.primes[factors.len] = (n, 1);
            factors.len += 1;
        }
        factors
    }
}

impl fmt::Display for Factors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("1");
        }
        for (i, &(prime, exponent)) in self.primes[..self.len].iter().enumerate() {
            let separator = if i == 0 { "" } else { " x " };
            match exponent {
                1 => write!(f, "{separator}{prime}")?,
                _ => write!(f, "{separator}{prime}^{exponent}")?,
            }
        }
        Ok(())
    }
}

/// 400 look-ups of 120 distinct numbers (a few primes near 10^12 among them), the popular ones often repeated.
fn built_in_workload() -> Vec<u64> {
    let distinct: Vec<u64> =
        (0..120u64).map(|i| if i % 10 == 0 { 1_000_000_000_039 + i * 6 } else { 1_000_000 + i * 7919 }).collect();
    let mut state = 0x5eedu64;
    (0..400)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Skewed: low indices far more often than high ones.
            let uniform = (state >> 33) as f64 / (1u64 << 31) as f64;
            distinct[((uniform * uniform * uniform) * distinct.len() as f64) as usize]
        })
        .collect()
}

struct Options {
    budget: usize,
    numbers: Vec<u64>,
    verbose: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options { budget: 16 << 10, numbers: Vec::new(), verbose: true };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--budget" => {
                let size = args.next().ok_or("--budget needs a size, e.g. 64KiB")?;
                options.budget = parse_size(&size).map_err(|error| error.to_string())?;
            }
            "-" => {
                let mut input = String::new();
                std::io::stdin()
                    .read_to_string(&mut input)
                    .map_err(|error| format!("reading standard input: {error}"))?;
                for word in input.split_whitespace() {
                    options.numbers.push(word.parse().map_err(|error| format!("{word:?}: {error}"))?);
                }
            }
            number => options.numbers.push(number.parse().map_err(|error| format!("{number:?}: {error}"))?),
        }
    }
    if options.numbers.is_empty() {
        options.numbers = built_in_workload();
        options.verbose = false;
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("memo: {error}");
            eprintln!("usage: memo [--budget SIZE] [NUMBER... | -]");
            return ExitCode::from(2);
        }
    };
    // The cache and its budget live for the rest of the program, as `static`s would; the limit comes from the
    // command line, so they are leaked instead.
    let budget: &'static LeakBudget = Box::leak(Box::new(LeakBudget::named("memo", options.budget)));
    let factorizations: &'static StaticCache<u64, Factors> = Box::leak(Box::new(StaticCache::in_budget(budget)));

    for &n in &options.numbers {
        let misses = factorizations.stats().misses;
        let factors = factorizations.get_or_insert_with(&n, |&n| Factors::of(n));
        if options.verbose {
            let how = match (&factors, factorizations.stats().misses > misses) {
                (Cached::Static(_), false) => "cached",
                (Cached::Static(_), true) => "computed, now cached",
                (Cached::Owned(_), _) => "computed, not cached: the budget is full",
            };
            println!("{n} = {} ({how})", *factors);
        }
    }

    let stats = factorizations.stats();
    let distinct = options.numbers.iter().collect::<std::collections::HashSet<_>>().len();
    println!("{} numbers ({distinct} distinct)", options.numbers.len());
    println!("hits: {}, misses: {}, degraded: {}", stats.hits, stats.misses, stats.degraded);
    println!("cached values: {}, hit rate: {:.1}%", factorizations.len(), 100.0 * stats.hit_rate());
    println!("budget {budget}{}", if factorizations.is_full() { " (full: later misses were not cached)" } else { "" });
    ExitCode::SUCCESS
}
