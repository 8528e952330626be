//! Scan source files for identifiers: the whole job of leak-budget in one program.
//!
//! ```text
//! cargo run --release --example scan                                   # this crate's own sources
//! cargo run --release --example scan -- PATH... [--threads N] [--budget SIZE]
//! ```
//!
//! - The parsed options live in a `LeakOnce`; every worker thread reads them as `&'static Options`.
//! - Every identifier goes through an `Interner<str>` in the `symbols` budget, and a `StaticCache` in the `classes`
//!   budget memoizes each distinct identifier's classification. Both are children of a `scan` budget (`--budget`, or
//!   the global budget's limit, `LEAK_BUDGET`), so the report shows where every byte went.
//! - With a small budget (`--budget 64KiB`) it keeps going: identifiers that no longer fit are counted, not interned,
//!   and classifications that no longer fit are computed but not cached; the summary says how many.
//! - Bad input (a missing path, an unreadable file, an invalid `--budget`, `--threads` or `LEAK_BUDGET`) prints one
//!   error line and exits with status 1 (input or output error) or 2 (usage), never a panic.

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    scanner::main()
}

/// Builds with `--cfg loom` compile every target, and loom's types have no `const` constructors for the scanner's
/// `static`s; the program itself needs no loom build.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
mod scanner {
    use std::collections::HashMap;
    use std::fmt;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

    use leak_budget::{Cached, InitError, Interned, Interner, LeakBudget, LeakError, LeakOnce, StaticCache};

    /// What the command line asked for.
    #[derive(Debug)]
    struct Options {
        /// Files and directories to scan.
        paths: Vec<PathBuf>,
        /// Worker threads.
        threads: usize,
        /// The `scan` budget's limit; `None` for the global budget's.
        budget: Option<usize>,
    }

    /// Parsed once; every worker reads it through the same `&'static Options`.
    static OPTIONS: LeakOnce<Options> = LeakOnce::new();

    /// Why the program stopped, with the exit status it maps to.
    #[derive(Debug)]
    enum Failure {
        /// Wrong command line or configuration: status 2.
        Usage(String),
        /// A file or directory could not be read: status 1.
        Io(String),
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Failure::Usage(message) | Failure::Io(message) => f.write_str(message),
            }
        }
    }

    impl From<LeakError> for Failure {
        fn from(error: LeakError) -> Self {
            Failure::Usage(error.to_string())
        }
    }

    const USAGE: &str = "usage: scan [PATH]... [--threads N] [--budget SIZE]   (SIZE like 64KiB or 16MiB)";

    fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options, Failure> {
        let mut options = Options { paths: Vec::new(), threads: 0, budget: None };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value =
                |flag: &str| args.next().ok_or_else(|| Failure::Usage(format!("{flag} needs a value; {USAGE}")));
            match arg.as_str() {
                "--threads" | "-j" => {
                    let text = value(&arg)?;
                    options.threads = match text.parse::<usize>() {
                        Ok(n) if (1..=1024).contains(&n) => n,
                        _ => return Err(Failure::Usage(format!("invalid --threads {text:?}: expected 1 to 1024"))),
                    };
                }
                "--budget" => {
                    let text = value(&arg)?;
                    let size = leak_budget::parse_size(&text).map_err(|e| Failure::Usage(format!("--budget: {e}")))?;
                    options.budget = Some(size);
                }
                "--help" | "-h" => return Err(Failure::Usage(USAGE.to_owned())),
                flag if flag.starts_with('-') => {
                    return Err(Failure::Usage(format!("unknown option {flag:?}; {USAGE}")));
                }
                path => options.paths.push(PathBuf::from(path)),
            }
        }
        if options.paths.is_empty() {
            // Always exists: the sources this example was built from.
            options.paths.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        }
        if options.threads == 0 {
            options.threads = thread::available_parallelism().map_or(2, usize::from);
        }
        Ok(options)
    }

    /// Files to scan: every `.rs` file under a directory (skipping hidden directories and `target`), every file named.
    fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), Failure> {
        let cannot = |error: std::io::Error| Failure::Io(format!("cannot read {}: {error}", path.display()));
        let metadata = std::fs::metadata(path).map_err(cannot)?;
        if !metadata.is_dir() {
            files.push(path.to_owned());
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(path).map_err(cannot)?.collect::<Result<_, _>>().map_err(cannot)?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let child = entry.path();
            // A symbolic link is followed to read a file, but not into a directory (no cycles).
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            if is_dir {
                if !name.starts_with('.') && name != "target" {
                    collect_files(&child, files)?;
                }
            } else if name.ends_with(".rs") {
                files.push(child);
            }
        }
        Ok(())
    }

    /// What an identifier looks like, memoized per distinct identifier.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    enum Class {
        Keyword,
        UpperCamel,
        ScreamingSnake,
        SnakeCase,
        Other,
    }

    impl Class {
        const ALL: [Class; 5] =
            [Class::Keyword, Class::UpperCamel, Class::ScreamingSnake, Class::SnakeCase, Class::Other];
    }

    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while",
    ];

    fn classify(identifier: &str) -> Class {
        let starts_upper = identifier.starts_with(|c: char| c.is_ascii_uppercase());
        if KEYWORDS.contains(&identifier) {
            Class::Keyword
        } else if starts_upper && identifier.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            Class::ScreamingSnake
        } else if starts_upper && !identifier.contains('_') {
            Class::UpperCamel
        } else if identifier.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            Class::SnakeCase
        } else {
            Class::Other
        }
    }

    /// Calls `each` with every identifier (`[A-Za-z_][A-Za-z0-9_]*`) in `text`.
    fn identifiers(text: &[u8], mut each: impl FnMut(&str)) {
        let is_start = |b: u8| b.is_ascii_alphabetic() || b == b'_';
        let is_part = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut at = 0;
        while at < text.len() {
            if is_start(text[at]) && (at == 0 || !is_part(text[at - 1])) {
                let start = at;
                while at < text.len() && is_part(text[at]) {
                    at += 1;
                }
                // ASCII only, so this is valid UTF-8.
                each(std::str::from_utf8(&text[start..at]).expect("identifiers are ASCII"));
            } else {
                at += 1;
            }
        }
    }

    /// What one worker saw.
    #[derive(Debug, Default)]
    struct Tally {
        files: usize,
        bytes: usize,
        tokens: usize,
        counts: HashMap<Interned<str>, usize>,
        /// Tokens the `symbols` budget had no room for.
        not_interned: usize,
        /// Interned tokens per class, indexed like `Class::ALL`.
        class_tokens: [usize; 5],
    }

    /// The interner and the cache the workers share, leaked into the `scan` budget.
    struct Tables {
        symbols: Interner<str>,
        classes: StaticCache<Interned<str>, Class>,
    }

    fn scan_files(files: &[PathBuf], next: &AtomicUsize, tables: &Tables) -> Result<Tally, Failure> {
        let mut tally = Tally::default();
        while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
            let text = std::fs::read(path).map_err(|e| Failure::Io(format!("cannot read {}: {e}", path.display())))?;
            tally.files += 1;
            tally.bytes += text.len();
            identifiers(&text, |token| {
                tally.tokens += 1;
                match tables.symbols.intern(token) {
                    Ok(symbol) => {
                        *tally.counts.entry(symbol).or_default() += 1;
                        // Memoized per distinct identifier. Once the `classes` budget is full, a new identifier's class
                        // is computed and handed back uncached (`Cached::Owned`); the scan does not stop.
                        let class: Cached<Class> =
                            tables.classes.get_or_insert_with(&symbol, |symbol| classify(symbol));
                        tally.class_tokens[*class as usize] += 1;
                    }
                    Err(_) => tally.not_interned += 1,
                }
            });
        }
        Ok(tally)
    }

    fn run() -> Result<(), Failure> {
        let options: &'static Options =
            OPTIONS.get_or_try_init(|| parse_options(std::env::args().skip(1))).map_err(|error| match error {
                InitError::Init(failure) => failure,
                InitError::Leak(refused) => Failure::Usage(refused.error().to_string()),
            })?;
        let mut files = Vec::new();
        for path in &options.paths {
            collect_files(path, &mut files)?;
        }

        // The budget tree: scan (the cap) -> symbols (the interner) and classes (the cache). A child's limit is a ceiling,
        // not a reservation: both compete for scan's bytes, and the cache may take at most a quarter of them.
        let global = LeakBudget::try_global()?;
        let scan = global.child("scan", options.budget.unwrap_or(global.limit()))?;
        let tables = scan.child("symbols", scan.limit()).and_then(|symbols| {
            let classes = scan.child("classes", scan.limit() / 4)?;
            let tables = Tables { symbols: Interner::in_budget(symbols), classes: StaticCache::in_budget(classes) };
            scan.leak(tables).map_err(LeakError::from)
        });
        let tables: &'static Tables = tables.map_err(|error| {
            Failure::Usage(format!("the budget is too small for the scanner's own bookkeeping: {error}"))
        })?;

        let start = Instant::now();
        let next = AtomicUsize::new(0);
        let tallies: Vec<Result<Tally, Failure>> = thread::scope(|scope| {
            let workers: Vec<_> =
                (0..options.threads).map(|_| scope.spawn(|| scan_files(&files, &next, tables))).collect();
            workers.into_iter().map(|worker| worker.join().expect("a worker panicked")).collect()
        });
        let elapsed = start.elapsed();
        let mut total = Tally::default();
        for tally in tallies {
            let tally = tally?;
            total.files += tally.files;
            total.bytes += tally.bytes;
            total.tokens += tally.tokens;
            total.not_interned += tally.not_interned;
            for (sum, count) in total.class_tokens.iter_mut().zip(tally.class_tokens) {
                *sum += count;
            }
            for (symbol, count) in tally.counts {
                *total.counts.entry(symbol).or_default() += count;
            }
        }
        print_summary(options, &total, tables, elapsed, scan);
        Ok(())
    }

    fn print_summary(options: &Options, total: &Tally, tables: &Tables, elapsed: Duration, scan: &LeakBudget) {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        println!(
            "scanned {} files ({:.1} KiB) on {} threads in {:.1} ms: {} tokens, {} unique identifiers, {:.1} M tokens/s",
            total.files,
            total.bytes as f64 / 1024.0,
            options.threads,
            seconds * 1e3,
            total.tokens,
            tables.symbols.len(),
            total.tokens as f64 / seconds / 1e6,
        );
        let mut top: Vec<(&Interned<str>, &usize)> = total.counts.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let top: Vec<String> = top.iter().take(10).map(|(symbol, count)| format!("{symbol} ({count})")).collect();
        println!("top identifiers: {}", top.join(", "));

        let classes: Vec<String> =
            Class::ALL.iter().zip(total.class_tokens).map(|(class, tokens)| format!("{tokens} {class:?}")).collect();
        println!("tokens by class: {}", classes.join(", "));
        let cache = tables.classes.stats();
        println!(
            "class cache: {} cached, {} hits, {} misses, {} computed but not cached (budget full)",
            tables.classes.len(),
            cache.hits,
            cache.misses,
            cache.degraded
        );
        if total.not_interned > 0 || cache.degraded > 0 {
            println!(
                "budget ran out: {} tokens were not interned and {} classifications were not cached; the scan went on \
                 without them (raise --budget or LEAK_BUDGET to keep everything)",
                total.not_interned, cache.degraded
            );
        } else {
            println!("every identifier was interned and every classification cached");
        }
        println!();
        println!("{}", scan.report());
    }

    pub fn main() -> ExitCode {
        match run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => {
                eprintln!("error: {failure}");
                ExitCode::from(match failure {
                    Failure::Io(_) => 1,
                    Failure::Usage(_) => 2,
                })
            }
        }
    }
}
