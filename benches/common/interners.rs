//! The string interners compared in the interning benchmarks, behind one interface, and a way to run one workload in
//! a fresh child process (so that interners with a process-wide table start empty, and every run gets fresh pages).

use std::collections::HashSet;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use leak_budget::{Interner, LeakBudget};

/// An interner under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    LeakBudget,
    Ustr,
    LassoRodeo,
    LassoThreadedRodeo,
    Internment,
    SymbolTable,
    StringInterner,
    HashSetBoxLeak,
}

impl Contender {
    pub const ALL: [Contender; 8] = [
        Contender::LeakBudget,
        Contender::Ustr,
        Contender::LassoRodeo,
        Contender::LassoThreadedRodeo,
        Contender::Internment,
        Contender::SymbolTable,
        Contender::StringInterner,
        Contender::HashSetBoxLeak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::LeakBudget => "leak-budget Interner<str>",
            Contender::Ustr => "ustr",
            Contender::LassoRodeo => "lasso Rodeo",
            Contender::LassoThreadedRodeo => "lasso ThreadedRodeo",
            Contender::Internment => "internment Intern<str>",
            Contender::SymbolTable => "symbol_table SymbolTable",
            Contender::StringInterner => "string-interner StringInterner",
            Contender::HashSetBoxLeak => "std HashSet + foldhash + Box::leak",
        }
    }

    /// Whether one instance can be shared by several threads.
    pub fn thread_safe(self) -> bool {
        matches!(
            self,
            Contender::LeakBudget
                | Contender::Ustr
                | Contender::LassoThreadedRodeo
                | Contender::Internment
                | Contender::SymbolTable
        )
    }

    fn from_name(name: &str) -> Contender {
        *Contender::ALL.iter().find(|c| c.name() == name).unwrap_or_else(|| panic!("unknown contender {name}"))
    }
}

/// A thread-safe interner instance, shareable by reference.
#[allow(clippy::large_enum_variant)] // one instance per benchmark; boxing would add an indirection to what is measured
pub enum Shared {
    LeakBudget(&'static Interner<str>),
    Ustr,
    LassoThreadedRodeo(lasso::ThreadedRodeo),
    Internment,
    SymbolTable(symbol_table::SymbolTable),
}

impl Shared {
    pub fn new(contender: Contender) -> Shared {
        match contender {
            Contender::LeakBudget => {
                let budget: &'static LeakBudget = Box::leak(Box::new(LeakBudget::named("bench", 4 << 30)));
                Shared::LeakBudget(Box::leak(Box::new(Interner::in_budget(budget))))
            }
            Contender::Ustr => Shared::Ustr,
            Contender::LassoThreadedRodeo => Shared::LassoThreadedRodeo(lasso::ThreadedRodeo::new()),
            Contender::Internment => Shared::Internment,
            Contender::SymbolTable => Shared::SymbolTable(symbol_table::SymbolTable::new()),
            other => panic!("{} is not thread-safe", other.name()),
        }
    }

    /// Interns every token, returning a checksum of the handles (so nothing is optimised away).
    #[inline(never)]
    pub fn intern_all(&self, tokens: &[&str]) -> usize {
        let mut sum = 0usize;
        match self {
            Shared::LeakBudget(interner) => {
                for token in tokens {
                    sum = sum.wrapping_add(interner.intern(token).unwrap().as_static().as_ptr().addr());
                }
            }
            Shared::Ustr => {
                for token in tokens {
                    sum = sum.wrapping_add(ustr::ustr(token).as_char_ptr().addr());
                }
            }
            Shared::LassoThreadedRodeo(rodeo) => {
                for token in tokens {
                    sum = sum.wrapping_add(rodeo.get_or_intern(token).into_inner().get() as usize);
                }
            }
            Shared::Internment => {
                for token in tokens {
                    sum = sum.wrapping_add(internment::Intern::<str>::from(*token).as_ref().as_ptr().addr());
                }
            }
            Shared::SymbolTable(table) => {
                for token in tokens {
                    sum = sum.wrapping_add(std::num::NonZeroU32::from(table.intern(token)).get() as usize);
                }
            }
        }
        sum
    }
}

/// A single-threaded interner instance (every contender has one).
#[allow(clippy::large_enum_variant)] // as for `Shared`
pub enum Local {
    Shared(Shared),
    LassoRodeo(lasso::Rodeo),
    StringInterner(string_interner::DefaultStringInterner),
    HashSetBoxLeak(HashSet<&'static str, foldhash::fast::RandomState>),
}

impl Local {
    pub fn new(contender: Contender) -> Local {
        match contender {
            Contender::LassoRodeo => Local::LassoRodeo(lasso::Rodeo::new()),
            Contender::StringInterner => Local::StringInterner(string_interner::DefaultStringInterner::new()),
            Contender::HashSetBoxLeak => Local::HashSetBoxLeak(HashSet::default()),
            shared => Local::Shared(Shared::new(shared)),
        }
    }

    #[inline(never)]
    pub fn intern_all(&mut self, tokens: &[&str]) -> usize {
        let mut sum = 0usize;
        match self {
            Local::Shared(shared) => sum = shared.intern_all(tokens),
            Local::LassoRodeo(rodeo) => {
                for token in tokens {
                    sum = sum.wrapping_add(rodeo.get_or_intern(token).into_inner().get() as usize);
                }
            }
            Local::StringInterner(interner) => {
                for token in tokens {
                    sum = sum.wrapping_add(string_interner::Symbol::to_usize(interner.get_or_intern(token)));
                }
            }
            Local::HashSetBoxLeak(set) => {
                for token in tokens {
                    let interned = match set.get(*token) {
                        Some(interned) => *interned,
                        None => {
                            let leaked: &'static str = Box::leak(Box::from(*token));
                            set.insert(leaked);
                            leaked
                        }
                    };
                    sum = sum.wrapping_add(interned.as_ptr().addr());
                }
            }
        }
        sum
    }
}

/// A workload measured in a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Intern the stream once into an empty interner, on one thread.
    Build,
    /// Two threads intern the whole stream into one empty interner at once.
    SameStreamTwoThreads,
    /// Two threads intern one half of the stream each into one empty interner.
    HalvesTwoThreads,
    /// Intern the stream once and report the growth of the resident set.
    Memory,
}

impl Workload {
    fn code(self) -> &'static str {
        match self {
            Workload::Build => "build",
            Workload::SameStreamTwoThreads => "same2",
            Workload::HalvesTwoThreads => "halves2",
            Workload::Memory => "memory",
        }
    }

    fn from_code(code: &str) -> Workload {
        [Workload::Build, Workload::SameStreamTwoThreads, Workload::HalvesTwoThreads, Workload::Memory]
            .into_iter()
            .find(|w| w.code() == code)
            .unwrap_or_else(|| panic!("unknown workload {code}"))
    }
}

/// Runs `workload` for `contender` in a fresh child process and returns what it printed.
pub fn run_in_child(workload: Workload, contender: Contender) -> String {
    super::run_in_child(&format!("{}:{}", workload.code(), contender.name()))
}

/// The elapsed time a child reported for `workload`.
pub fn timed_in_child(workload: Workload, contender: Contender) -> Duration {
    super::timed_in_child(&format!("{}:{}", workload.code(), contender.name()))
}

/// `count` distinct identifier-like keys of 6 to 20 bytes (letters, digits, `_`), the same on every run: a
/// pseudo-random prefix and the key's index in base 36, so no two are equal. Laid out in one buffer.
pub fn distinct_keys(count: usize) -> (String, Vec<(usize, usize)>) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut text, mut spans) = (String::with_capacity(count * 14), Vec::with_capacity(count));
    for index in 0..count {
        let start = text.len();
        let length = 6 + (next() % 15) as usize;
        let mut suffix = Vec::new();
        let mut rest = index;
        loop {
            suffix.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[rest % 36]);
            rest /= 36;
            if rest == 0 {
                break;
            }
        }
        // A letter first, then pseudo-random characters, then `_` and the index in base 36 (after the last `_`, so
        // no two keys are equal): 6..=20 bytes for every index below 36^12.
        text.push(char::from(ALPHABET[(next() % 26) as usize]));
        while text.len() - start + 1 + suffix.len() < length {
            text.push(char::from(ALPHABET[(next() % ALPHABET.len() as u64) as usize]));
        }
        text.push('_');
        text.extend(suffix.iter().rev().map(|&b| char::from(b)));
        spans.push((start, text.len()));
    }
    (text, spans)
}

/// If this process is a child started by [`run_in_child`], runs its workload, prints the result and returns `true`.
pub fn child_main() -> bool {
    let Some(spec) = super::child_case() else { return false };
    let (workload, contender) = spec.split_once(':').expect("workload:contender");
    if let Some(count) = workload.strip_prefix("misses-") {
        let (text, spans) = distinct_keys(count.parse().expect("a key count"));
        let keys: Vec<&str> = spans.iter().map(|&(start, end)| &text[start..end]).collect();
        let mut interner = Local::new(Contender::from_name(contender));
        let start = Instant::now();
        std::hint::black_box(interner.intern_all(&keys));
        println!("{}", start.elapsed().as_nanos());
        std::mem::forget(interner);
        return true;
    }
    let (workload, contender) = (Workload::from_code(workload), Contender::from_name(contender));
    let (owned, _) = super::tokens();
    let tokens: Vec<&str> = owned.iter().map(String::as_str).collect();
    match workload {
        Workload::Build => {
            let mut interner = Local::new(contender);
            let start = Instant::now();
            std::hint::black_box(interner.intern_all(&tokens));
            println!("{}", start.elapsed().as_nanos());
            std::mem::forget(interner);
        }
        Workload::SameStreamTwoThreads | Workload::HalvesTwoThreads => {
            let shared = Shared::new(contender);
            let half = tokens.len() / 2;
            let parts: [&[&str]; 2] = if workload == Workload::HalvesTwoThreads {
                [&tokens[..half], &tokens[half..]]
            } else {
                [&tokens, &tokens]
            };
            let barrier = Barrier::new(3);
            let elapsed = thread::scope(|scope| {
                for part in parts {
                    let (shared, barrier) = (&shared, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        std::hint::black_box(shared.intern_all(part));
                    });
                }
                barrier.wait();
                Instant::now()
            })
            .elapsed();
            println!("{}", elapsed.as_nanos());
            std::mem::forget(shared);
        }
        Workload::Memory => {
            let before = resident_bytes();
            let mut interner = Local::new(contender);
            std::hint::black_box(interner.intern_all(&tokens));
            let after = resident_bytes();
            // Counted after the measurement, so this set's memory cannot be reused by the interner.
            let unique: usize = tokens.iter().copied().collect::<HashSet<&str>>().iter().map(|s| s.len()).sum();
            println!("{} {}", after.saturating_sub(before), unique);
            std::mem::forget(interner);
        }
    }
    true
}

/// The resident set size of this process, in bytes (0 where `/proc` is unavailable).
pub fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}
