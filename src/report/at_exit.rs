//! Printing the report: on demand, and at exit when `LEAK_BUDGET_REPORT` asks for it.

use std::io::Write as _;

use super::report;

/// The environment variable that makes [`report_at_exit`]'s guard print the report: any value but empty, `0`,
/// `false`, `no` or `off` (in any case) turns it on.
pub const LEAK_BUDGET_REPORT_VAR: &str = "LEAK_BUDGET_REPORT";

/// Prints the [`report`] of every budget to standard error, now. Write errors are ignored.
///
/// # Examples
///
/// ```
/// static CONFIG: leak_budget::LeakBudget = leak_budget::LeakBudget::named("config", 1 << 20);
/// CONFIG.leak_str("verbose = true").unwrap();
/// leak_budget::print_report();
/// ```
pub fn print_report() {
    let text = report().to_string();
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints the report to standard error when `main` ends, if the environment variable `LEAK_BUDGET_REPORT` asks for
/// it: keep the returned guard alive for the whole of `main`.
///
/// Rust runs nothing at process exit, so the report is printed when the guard is dropped: when `main` returns, or
/// when it unwinds from a panic (useful when the panic is an `expect` on a refused leak). The variable is read then:
/// any value but empty, `0`, `false`, `no` or `off` turns printing on ([`LEAK_BUDGET_REPORT_VAR`]). Nothing is
/// printed if the process ends through [`std::process::exit`] or an abort, which skip destructors: call
/// [`print_report`] before `exit` instead.
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static CONFIG: LeakBudget = LeakBudget::named("config", 1 << 20);
///
/// fn main() -> Result<(), leak_budget::LeakError> {
///     let _report = leak_budget::report_at_exit(); // `LEAK_BUDGET_REPORT=1 ./app` prints the table at the end
///     CONFIG.leak_str("threads = 8")?;
///     Ok(())
/// }
/// ```
pub fn report_at_exit() -> ReportAtExit {
    ReportAtExit { _private: () }
}

/// Guard returned by [`report_at_exit`]: prints the report to standard error when dropped, if `LEAK_BUDGET_REPORT`
/// is set (see [`report_at_exit`]).
///
/// # Examples
///
/// ```
/// let guard = leak_budget::report_at_exit();
/// drop(guard); // prints only if LEAK_BUDGET_REPORT is set
/// ```
#[derive(Debug)]
#[must_use = "the report is printed when the guard is dropped: bind it for the whole of `main` (`let _report = ...`)"]
pub struct ReportAtExit {
    _private: (),
}

impl Drop for ReportAtExit {
    fn drop(&mut self) {
        if report_requested(std::env::var_os(LEAK_BUDGET_REPORT_VAR).as_deref()) {
            print_report();
        }
    }
}

/// Whether a value of [`LEAK_BUDGET_REPORT_VAR`] asks for the report.
fn report_requested(value: Option<&std::ffi::OsStr>) -> bool {
    let Some(value) = value else { return false };
    let value = value.to_string_lossy();
    let value = value.trim();
    !(value.is_empty() || ["0", "false", "no", "off"].iter().any(|off| value.eq_ignore_ascii_case(off)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn only_a_set_variable_that_is_not_off_requests_the_report() {
        for on in ["1", "yes", "true", "ON", " 1 "] {
            assert!(report_requested(Some(OsStr::new(on))), "{on:?}");
        }
        for off in ["", " ", "0", "false", "No", "OFF"] {
            assert!(!report_requested(Some(OsStr::new(off))), "{off:?}");
        }
        assert!(!report_requested(None));
    }
}
