//! Shared by the benchmarks: a real token stream when one is available (a generated one otherwise), running samples
//! in child processes, and timing work spread over threads.
#![allow(dead_code)] // each bench uses part of this module

use std::path::PathBuf;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

pub mod interners;

/// Environment variable that makes a benchmark binary run one case as a child process and print its result.
pub const CHILD_VAR: &str = "LEAK_BUDGET_BENCH_CHILD";

/// The case this process was started to run by [`run_in_child`], if any.
pub fn child_case() -> Option<String> {
    std::env::var(CHILD_VAR).ok()
}

/// Runs `case` in a fresh child process (this same binary) and returns what it printed.
pub fn run_in_child(case: &str) -> String {
    let exe = std::env::current_exe().expect("the benchmark binary knows its path");
    let output =
        std::process::Command::new(exe).env(CHILD_VAR, case).output().expect("the benchmark binary can run itself");
    assert!(output.status.success(), "child {case} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}

/// The elapsed time a child printed (in nanoseconds) for `case`.
pub fn timed_in_child(case: &str) -> std::time::Duration {
    std::time::Duration::from_nanos(run_in_child(case).parse().expect("the child prints nanoseconds"))
}

/// Environment variable naming a corpus file: one token per line (for example every identifier of a source tree).
pub const CORPUS_VAR: &str = "LEAK_BUDGET_CORPUS";

/// The token stream: the file named by [`CORPUS_VAR`] if set (and readable), else a generated one.
pub fn tokens() -> (Vec<String>, String) {
    if let Some(path) = std::env::var_os(CORPUS_VAR).map(PathBuf::from) {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let tokens: Vec<String> = text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
                let label = format!("{} ({} tokens)", path.display(), tokens.len());
                return (tokens, label);
            }
            // Cargo runs benchmarks in benches/: show where a relative path was looked for.
            Err(error) => {
                let shown = std::path::absolute(&path).unwrap_or(path);
                eprintln!("cannot read {}: {error}; using a generated stream", shown.display());
            }
        }
    }
    let tokens = generated_tokens(600_000, 20_000);
    (tokens, "generated Zipf stream (600000 tokens, 20000 distinct)".to_owned())
}

/// A deterministic stream of identifier-like tokens whose frequencies follow Zipf's law (exponent 1), the shape of
/// identifiers in source code: a few very common (`self`, `fn`), a long tail seen once or twice.
pub fn generated_tokens(count: usize, distinct: usize) -> Vec<String> {
    let mut rng = SplitMix(0x5eed_1e4b_u64);
    let vocabulary: Vec<String> = (0..distinct).map(|i| identifier(&mut rng, i)).collect();
    // Inverse-CDF sampling over the harmonic weights 1/(rank+1).
    let mut cumulative = Vec::with_capacity(distinct);
    let mut total = 0.0;
    for rank in 0..distinct {
        total += 1.0 / (rank as f64 + 1.0);
        cumulative.push(total);
    }
    (0..count)
        .map(|_| {
            let target = rng.unit() * total;
            let rank = cumulative.partition_point(|&c| c < target).min(distinct - 1);
            vocabulary[rank].clone()
        })
        .collect()
}

/// A distinct identifier of 2 to 24 characters (lengths roughly as in source code).
fn identifier(rng: &mut SplitMix, index: usize) -> String {
    const HEAD: &[u8] = b"abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const TAIL: &[u8] = b"abcdefghijklmnopqrstuvwxyz_0123456789";
    let len = 2 + (rng.next() % 9 + rng.next() % 9 + rng.next() % 6) as usize;
    let mut text = String::with_capacity(len + 8);
    text.push(char::from(HEAD[(rng.next() % HEAD.len() as u64) as usize]));
    for _ in 1..len {
        text.push(char::from(TAIL[(rng.next() % TAIL.len() as u64) as usize]));
    }
    // A unique suffix keeps the vocabulary distinct.
    text.push_str(&format!("{index:x}"));
    text
}

/// SplitMix64: tiny, deterministic, good enough to shape benchmark input.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `work(operations)` on `threads` threads at once and times them together, spawning excluded.
pub fn timed_on_threads(threads: usize, operations: u64, work: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let per_thread = operations / threads as u64;
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(per_thread);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        start.elapsed()
    })
}
