//! A program with several components, each leaking into a budget of its own under one application budget, one of them
//! running into its cap. Prints the leak report.
//!
//! ```text
//! cargo run --example report
//! LEAK_BUDGET_REPORT=1 cargo run --example report   # also prints it to stderr when main ends
//! ```

#[cfg(not(loom))]
fn main() -> Result<(), leak_budget::LeakError> {
    program::main()
}

/// The loom build (`--cfg loom`) is for the model checker only: budgets are not `const` there, so not `static`.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
mod program {
    use std::thread;

    use leak_budget::{LeakBudget, LeakError};

    /// Everything the application leaks on purpose: 4 MiB.
    static APP: LeakBudget = LeakBudget::named("app", 4 << 20);
    /// Parsed configuration: a few strings, for the life of the process.
    static CONFIG: LeakBudget = LeakBudget::child_of(&APP, "config", 64 << 10);
    /// Interned identifiers. A ceiling of 2 MiB, not a reservation: it grows only as far as APP allows.
    static SYMBOLS: LeakBudget = LeakBudget::child_of(&APP, "symbols", 2 << 20);
    /// A cache that must always be able to use its full 512 KiB, whatever its siblings do: prepaid.
    static CACHE: LeakBudget = LeakBudget::prepaid_child_of(&APP, "cache", 512 << 10);

    pub(crate) fn main() -> Result<(), LeakError> {
        // `LEAK_BUDGET_REPORT=1` prints the report to stderr when this guard is dropped at the end of `main`.
        let _report = leak_budget::report_at_exit();
        // Take the cache's 512 KiB from APP now: a too-small APP fails at start-up, not at the first cache miss.
        CACHE.register()?;

        for (key, value) in [("listen", "0.0.0.0:8080"), ("workers", "8"), ("log", "info"), ("data", "/var/lib/app")] {
            let entry: &'static str = CONFIG.leak_str(&format!("{key} = {value}"))?;
            assert!(entry.starts_with(key));
        }

        // Four threads intern identifiers; long ones go to a budget of their own under SYMBOLS.
        let long_names = SYMBOLS.child("long-names", 256 << 10)?;
        thread::scope(|scope| {
            for worker in 0..4 {
                scope.spawn(move || -> Result<(), LeakError> {
                    for i in 0..2_000 {
                        let (budget, repeat) = if i % 10 == 0 { (long_names, 8) } else { (&SYMBOLS, 1) };
                        let name: &'static str =
                            budget.leak_str(&format!("module_{worker}::item_{i}").repeat(repeat))?;
                        assert!(name.contains("item_"));
                    }
                    Ok(())
                });
            }
        });

        for page in 0..48u8 {
            CACHE.leak([page; 4096])?;
        }

        // A plugin capped at 64 KiB tries to leak 128 blocks of 1 KiB: the last ones are refused, and it gets them back
        // to keep as owned values instead.
        let plugin = APP.child("plugin-x", 64 << 10)?;
        let mut kept_owned = Vec::new();
        for block in 0..128u32 {
            if let Err(refused) = plugin.leak_vec(vec![block; 256]) {
                kept_owned.push(refused.into_inner());
            }
        }

        println!("{} of the plugin's 128 blocks were refused and kept as owned values\n", kept_owned.len());
        println!("{}", leak_budget::report());
        Ok(())
    }
}
