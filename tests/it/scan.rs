//! The `scan` example, run as a user would: on fixture trees, with a small budget, and on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The example's executable, built once per test run (cheap when it is up to date).
fn scan_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let output = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "scan", "--message-format=json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo can be run");
        assert!(output.status.success(), "building the example failed: {}", String::from_utf8_lossy(&output.stderr));
        let messages = String::from_utf8(output.stdout).expect("utf-8");
        let line = messages
            .lines()
            .find(|line| line.contains("\"reason\":\"compiler-artifact\"") && line.contains("\"name\":\"scan\""))
            .expect("cargo reports the example's artifact");
        let start = line.find("\"executable\":\"").expect("an executable path") + "\"executable\":\"".len();
        let end = start + line[start..].find('"').expect("a closing quote");
        PathBuf::from(&line[start..end])
    })
}

/// A fresh, empty directory for one test.
fn fixture_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "leak-budget-scan-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directories can be created");
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (Output, String, String) {
    let mut command = Command::new(scan_binary());
    command.args(args).env_remove("LEAK_BUDGET").env_remove("LEAK_BUDGET_REPORT");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

/// A failed run printed exactly one `error:` line, nothing on stdout, and no panic.
fn assert_one_error_line(output: &Output, stdout: &str, stderr: &str, code: i32, needle: &str) {
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stdout, "", "nothing on stdout when failing");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stderr:?}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{stderr:?} should mention {needle:?}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
}

#[test]
#[cfg_attr(miri, ignore = "runs cargo and a process")]
fn scans_a_fixture_tree_and_counts_its_identifiers() {
    let dir = fixture_dir();
    write(&dir.join("a.rs"), "fn alpha() { let beta = alpha; beta }\n");
    write(&dir.join("nested/b.rs"), "struct Gamma; const DELTA: u8 = 1; // alpha alpha\n");
    write(&dir.join("notes.txt"), "not scanned: only .rs files are, when walking a directory\n");
    write(&dir.join(".hidden/c.rs"), "hidden_identifier\n");
    let (output, stdout, stderr) = run(&[dir.to_str().unwrap(), "--threads", "2"], &[]);
    assert!(output.status.success(), "{stderr}");
    // a.rs: fn alpha let beta alpha beta; b.rs: struct Gamma const DELTA u8 alpha alpha.
    assert!(stdout.contains("scanned 2 files"), "{stdout}");
    assert!(stdout.contains(" 13 tokens, 9 unique identifiers"), "{stdout}");
    assert!(stdout.contains("top identifiers: alpha (4), beta (2), "), "{stdout}");
    assert!(stdout.contains("4 Keyword, 1 UpperCamel, 1 ScreamingSnake, 7 SnakeCase, 0 Other"), "{stdout}");
    assert!(stdout.contains("every identifier was interned and every classification cached"), "{stdout}");
    for budget in ["scan", "symbols", "classes"] {
        assert!(stdout.contains(budget), "the report names {budget}: {stdout}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "runs cargo and a process")]
fn a_small_budget_keeps_going_and_says_what_was_left_out() {
    let dir = fixture_dir();
    let many: String = (0..3000).map(|i| format!("identifier_number_{i} ")).collect();
    write(&dir.join("many.rs"), &many);
    let (output, stdout, stderr) = run(&[dir.to_str().unwrap(), "--budget", "16KiB"], &[]);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("3000 tokens"), "every token was still scanned: {stdout}");
    assert!(stdout.contains("budget ran out: "), "{stdout}");
    assert!(stdout.contains("tokens were not interned"), "{stdout}");
    assert!(stdout.contains("16.00 KiB"), "the report shows the cap: {stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "runs cargo and a process")]
fn with_no_arguments_it_scans_this_crate() {
    let (output, stdout, stderr) = run(&[], &[]);
    assert!(output.status.success(), "{stderr}");
    // The default input is the crate itself: at least every file of `src/` is scanned, and identifiers every
    // version of these sources holds are among the tokens classified.
    let sources = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src")).unwrap().count();
    let files: usize = stdout
        .strip_prefix("scanned ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("the summary starts with the file count: {stdout}"));
    assert!(files >= sources, "{files} files scanned, {sources} entries in src/: {stdout}");
    assert!(stdout.contains("every identifier was interned and every classification cached"), "{stdout}");
    assert!(stdout.contains("├─ symbols") && stdout.contains("└─ classes"), "the report shows the tree: {stdout}");
}

#[test]
#[cfg_attr(miri, ignore = "runs cargo and a process")]
fn bad_input_gives_one_error_line_and_a_non_zero_status() {
    let missing = fixture_dir().join("does-not-exist");
    let (output, stdout, stderr) = run(&[missing.to_str().unwrap()], &[]);
    assert_one_error_line(&output, &stdout, &stderr, 1, "cannot read");

    let (output, stdout, stderr) = run(&["--budget", "12XB"], &[]);
    assert_one_error_line(&output, &stdout, &stderr, 2, "\"12XB\"");

    let (output, stdout, stderr) = run(&[], &[("LEAK_BUDGET", "lots")]);
    assert_one_error_line(&output, &stdout, &stderr, 2, "LEAK_BUDGET=\"lots\"");

    let (output, stdout, stderr) = run(&["--threads", "zero"], &[]);
    assert_one_error_line(&output, &stdout, &stderr, 2, "--threads");

    let (output, stdout, stderr) = run(&["--budget", "100"], &[]);
    assert_one_error_line(&output, &stdout, &stderr, 2, "too small");

    let (output, stdout, stderr) = run(&["--no-such-option"], &[]);
    assert_one_error_line(&output, &stdout, &stderr, 2, "unknown option");
}

#[test]
#[cfg(unix)]
#[cfg_attr(miri, ignore = "runs cargo and a process")]
fn an_unreadable_file_stops_the_scan_with_one_error_line() {
    let dir = fixture_dir();
    write(&dir.join("fine.rs"), "fn fine() {}\n");
    // A dangling link named like a source file: listed by the walk, unreadable when opened (even as root).
    std::os::unix::fs::symlink(dir.join("gone/away.rs"), dir.join("broken.rs")).unwrap();
    let (output, stdout, stderr) = run(&[dir.to_str().unwrap()], &[]);
    assert_one_error_line(&output, &stdout, &stderr, 1, "broken.rs");
    std::fs::remove_dir_all(dir).unwrap();
}
