//! Parse a configuration once in `main`, then let four threads read it through a `&'static Config`: no `Arc`, no
//! lifetimes to thread through, and the memory it takes is charged to a budget of its own.
//!
//! ```text
//! cargo run --example share_config
//! ```
// Loom builds (`--cfg loom`, for the model checker) swap the crate's atomics for loom's, which cannot be created at
// compile time, so this example's `static` cells exist only in ordinary builds.
#![cfg_attr(loom, allow(unused))]

use std::error::Error;
use std::fmt;
use std::thread;

use leak_budget::{LeakBudget, LeakOnce};

/// The configuration, as a file would hold it.
const CONFIG_TEXT: &str = "\
# orders service
service = orders
greeting = hello from
workers = 4
batch = 5
";

#[derive(Debug)]
struct Config {
    service: String,
    greeting: String,
    workers: usize,
    batch: u64,
}

#[derive(Debug)]
struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl Error for ConfigError {}

impl Config {
    /// Parses `key = value` lines; `#` starts a comment.
    fn parse(text: &str) -> Result<Self, ConfigError> {
        let (mut service, mut greeting, mut workers, mut batch) = (None, None, None, None);
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            let (key, value) = line.split_once('=').ok_or_else(|| ConfigError(format!("no `=` in {line:?}")))?;
            let value = value.trim();
            let number = || value.parse().map_err(|_| ConfigError(format!("{key}: {value:?} is not a number")));
            match key.trim() {
                "service" => service = Some(value.to_owned()),
                "greeting" => greeting = Some(value.to_owned()),
                "workers" => workers = Some(number()?),
                "batch" => batch = Some(u64::try_from(number()?).expect("a usize fits in a u64")),
                other => return Err(ConfigError(format!("unknown key {other:?}"))),
            }
        }
        let missing = |key: &str| ConfigError(format!("missing {key}"));
        Ok(Config {
            service: service.ok_or_else(|| missing("service"))?,
            greeting: greeting.ok_or_else(|| missing("greeting"))?,
            workers: workers.ok_or_else(|| missing("workers"))?,
            batch: batch.ok_or_else(|| missing("batch"))?,
        })
    }
}

#[cfg(not(loom))]
static CONFIG_BUDGET: LeakBudget = LeakBudget::named("config", 64 << 10);
#[cfg(not(loom))]
static CONFIG: LeakOnce<Config> = LeakOnce::in_budget(&CONFIG_BUDGET);

#[cfg(not(loom))]
fn main() -> Result<(), Box<dyn Error>> {
    // Parsed once; from here on every thread shares the one `Config` in the budget.
    let config: &'static Config = CONFIG.get_or_try_init(|| Config::parse(CONFIG_TEXT))?;

    let workers: Vec<_> = (0..config.workers)
        .map(|id| {
            // `&'static Config` is `Copy` and `Send`: each thread gets its own copy of the reference.
            thread::spawn(move || {
                let first = id as u64 * config.batch;
                let items = first..first + config.batch;
                let sum: u64 = items.clone().sum();
                let same = std::ptr::eq(config, CONFIG.get().expect("set before the threads started"));
                format!(
                    "worker {id}: {} {}, summed items {items:?} = {sum} (same config as main: {same})",
                    config.greeting, config.service
                )
            })
        })
        .collect();
    for worker in workers {
        println!("{}", worker.join().expect("a worker panicked"));
    }
    println!("budget {CONFIG_BUDGET} ({} allocation)", CONFIG_BUDGET.stats().allocations);
    Ok(())
}

#[cfg(loom)]
fn main() {}
