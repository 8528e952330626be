//! Shared by the test binaries: a named-case runner with libtest-like output for the `harness = false` ones (each has
//! its own `#[global_allocator]`, so each is its own binary), a small deterministic random number generator,
//! [`leaked`], which keeps what a test leaks reachable for Miri's leak checker, [`budget`] for a test's own budget,
//! [`bounded`], which fails a test that hangs, and small helpers the suites share.

// Each binary uses a subset.
#![allow(dead_code, unused_imports)]

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use leak_budget::LeakBudget;

// In a file of its own because the property tests' model (tests/model/mod.rs) includes it too: the budget fuzz target
// compiles the model without this module.
mod stats;
pub use stats::{without_peak, without_rejections};

// Why not libtest-mimic (0.8.2, MSRV 1.65), which would give these binaries libtest's whole command line: it brings 15
// crates into the dev-dependencies (clap with its derive macro, anstream and their helpers) and added 5 to 8 s of CPU
// to a cold `cargo test --no-run` (32 to 35 s without it, 40 to 45 s with it; 2 shared cores). It would also need
// settings to do what these binaries rely on: cases one at a time (the counting allocator's figures are process-wide),
// in the order given (tests/cap's resident-set cases first, while the process is small), each printing its figures on
// its own line. The runner below does that in 50 lines.

/// One named check. It panics (with an `assert!`) on failure and returns a one-line summary of its figures on success.
pub type Case = (&'static str, fn() -> String);

/// Runs `cases` in order and prints one line per case, as libtest does. Arguments, as libtest takes them: substrings
/// to select cases by name (all cases when none is given), `--skip <substring>` to leave cases out, `--exact` to match
/// whole names, `--list` to list the cases; other flags are ignored, so that `cargo test -- <flags>` works for every
/// test binary at once.
///
/// Returns failure if any case panicked.
pub fn run(cases: &[Case]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|arg| arg == "--exact");
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut words = args.iter().map(String::as_str);
    while let Some(word) = words.next() {
        match word {
            "--skip" => skips.extend(words.next()),
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter),
        }
    }
    let matches = |name: &str, pattern: &str| if exact { name == pattern } else { name.contains(pattern) };
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    if args.iter().any(|arg| arg == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} cases", selected.len());
    let mut failed = Vec::new();
    let started = Instant::now();
    for (name, case) in &selected {
        let case_started = Instant::now();
        match catch_unwind(AssertUnwindSafe(case)) {
            Ok(summary) => println!("case {name} ... ok ({:.2?}): {summary}", case_started.elapsed()),
            Err(_) => {
                println!("case {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    if failed.is_empty() {
        println!("\ncase result: ok. {passed} passed; finished in {:.2?}\n", started.elapsed());
        ExitCode::SUCCESS
    } else {
        println!("\nfailures: {failed:?}\ncase result: FAILED. {passed} passed; {} failed\n", failed.len());
        ExitCode::FAILURE
    }
}

/// Fewer iterations under Miri, which is slow, and the full count natively.
pub const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

/// How many cases a property test runs: `PROPTEST_CASES` if set, else `native` natively and 8 under Miri.
pub fn proptest_cases(native: u32) -> u32 {
    let default = if cfg!(miri) { 8 } else { native };
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(default)
}

/// xorshift64*: deterministic, allocation-free, good enough to mix request shapes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The byte at `index` of the pattern for `seed`: what a test writes into leaked memory and checks at the end.
pub fn pattern(seed: u64, index: usize) -> u8 {
    (seed as usize).wrapping_mul(31).wrapping_add(index.wrapping_mul(7)).to_le_bytes()[0] ^ 0x5A
}

/// Everything the tests leak, kept reachable from a static so that Miri's leak checker (which stays on) does not
/// report it: a leaked value that a static can reach is not a leak.
static LEAKED: Mutex<Vec<&'static (dyn Any + Sync)>> = Mutex::new(Vec::new());

/// Leaks `value` for the rest of the test process, reachable from [`LEAKED`]. In `tests/cap`, call it outside library
/// calls: its allocations are then not counted as the library's.
pub fn leaked<T: Any + Sync>(value: T) -> &'static T {
    let value: &'static T = Box::leak(Box::new(value));
    LEAKED.lock().unwrap_or_else(PoisonError::into_inner).push(value);
    value
}

/// The name of the budgets [`budget`] makes, which errors and reports show.
pub const BUDGET_NAME: &str = "test";

/// A fresh `'static` budget of `limit` bytes for one test (a local one would work too; `'static` lets threads borrow
/// it freely), kept reachable by [`leaked`].
pub fn budget(limit: usize) -> &'static LeakBudget {
    leaked(LeakBudget::named(BUDGET_NAME, limit))
}

/// How long a test body run by [`bounded`] may take before the test fails as hung. Generous: a body that finishes
/// takes milliseconds natively and seconds under Miri; only a deadlock or a hang comes near it.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(if cfg!(miri) { 600 } else { 60 });

/// Runs `body` on its own thread and returns how it ended (its value, or its panic's payload). If it has not ended
/// within [`HANG_TIMEOUT`], the test fails instead of hanging (the stuck thread is left behind; the process ends with
/// the test binary).
pub fn bounded<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> thread::Result<R> {
    bounded_with(None, HANG_TIMEOUT, body)
}

/// [`bounded`] on a thread with a stack of `stack` bytes (the default stack with `None`), failing after `timeout`.
/// Callers that want the body's panic as their own pass the `Err` to `std::panic::resume_unwind`.
pub fn bounded_with<R: Send + 'static>(
    stack: Option<usize>,
    timeout: Duration,
    body: impl FnOnce() -> R + Send + 'static,
) -> thread::Result<R> {
    let (done, finished) = std::sync::mpsc::channel();
    let mut builder = thread::Builder::new();
    if let Some(stack) = stack {
        builder = builder.stack_size(stack);
    }
    let worker = builder
        .spawn(move || {
            let ended = catch_unwind(AssertUnwindSafe(body));
            let _ = done.send(());
            ended
        })
        .expect("spawn the test body's thread");
    match finished.recv_timeout(timeout) {
        Ok(()) => worker.join().expect("the body's panic was caught on its thread"),
        Err(_) => panic!("the test body did not finish within {timeout:?}: a deadlock or a hang"),
    }
}

/// The message of a panic payload (`panic!` with a literal or with formatting), or `""`.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("")
        .to_owned()
}
