//! Thread-local destructors of the main thread, which run during process exit, after `main` has returned and after
//! the crate's own per-thread state is gone, leak into a static budget: into one used before, and into one used for
//! the first time there.
//!
//! `harness = false`: the main thread must be this program's own. The test runs itself as a child process and checks
//! that the child's destructor ran and succeeded (it aborts on any failure, and reports success on stderr). Under Miri,
//! which cannot start processes, it runs the child's part directly; Miri then runs the destructor at exit and checks
//! it like any other code.

// Under `--cfg loom` the crate's atomics are loom's, usable only inside a model: this binary is then empty.
#![cfg_attr(loom, allow(unused_imports))]

use std::cell::Cell;
use std::process::{Command, ExitCode};

use leak_budget::LeakBudget;

#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
static USED_BEFORE: LeakBudget = LeakBudget::named("used before exit", 1 << 20);
#[cfg(not(loom))]
static FIRST_AT_EXIT: LeakBudget = LeakBudget::named("first used at exit", 1 << 20);

#[cfg(not(loom))]
const CHILD: &str = "LEAK_BUDGET_AT_EXIT_CHILD";
#[cfg(not(loom))]
const SUCCESS: &str = "destructor at exit: ok";

#[cfg(not(loom))]
struct LeaksAtExit;

#[cfg(not(loom))]
impl Drop for LeaksAtExit {
    fn drop(&mut self) {
        let check = |ok: bool, what: &str| {
            if !ok {
                eprintln!("destructor at exit: FAILED: {what}");
                std::process::abort();
            }
        };
        let late = USED_BEFORE.leak_str("leaked during exit");
        check(late == Ok("leaked during exit"), "leak into a budget used before");
        let first = FIRST_AT_EXIT.leak([7u64; 32]);
        check(first.as_deref() == Ok(&[7u64; 32]), "first leak into a budget");
        let (before, at_exit) = (USED_BEFORE.stats(), FIRST_AT_EXIT.stats());
        check(
            before.allocations == 2 && before.used == "leaked in main".len() + late.map_or(0, str::len),
            "figures of the budget used before",
        );
        check(at_exit.allocations == 1 && at_exit.lanes == 1, "figures of the budget first used at exit");
        check(at_exit.reserved <= at_exit.limit && before.reserved <= before.limit, "the cap");
        eprintln!("{SUCCESS}");
    }
}

#[cfg(not(loom))]
thread_local! {
    static ON_EXIT: Cell<Option<LeaksAtExit>> = const { Cell::new(None) };
}

#[cfg(not(loom))]
/// Registers the destructor before the thread's first leak, so that it runs after the crate's thread-locals are
/// destroyed (destructors run in reverse order of registration).
fn child() {
    ON_EXIT.with(|slot| slot.set(Some(LeaksAtExit)));
    assert_eq!(USED_BEFORE.leak_str("leaked in main").unwrap(), "leaked in main");
}

#[cfg(not(loom))]
fn main() -> ExitCode {
    if cfg!(miri) || std::env::var_os(CHILD).is_some() {
        child();
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("this test's path");
    let output = Command::new(exe).env(CHILD, "1").output().expect("run the child");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() && stderr.contains(SUCCESS) {
        println!("\nrunning 1 case\ncase main_thread_destructors_leak_at_exit ... ok\n");
        ExitCode::SUCCESS
    } else {
        println!("\ncase main_thread_destructors_leak_at_exit ... FAILED: {}\n{stderr}", output.status);
        ExitCode::FAILURE
    }
}
