//! Size strings (`64MiB`) and the `LEAK_BUDGET` environment variable that sets the global budget's limit.

use crate::error::LeakError;

/// The environment variable read once, on first use of the global budget, for its limit.
pub const LEAK_BUDGET_VAR: &str = "LEAK_BUDGET";

/// The global budget's limit when [`LEAK_BUDGET_VAR`] is unset: 256 MiB.
///
/// Enough for configuration, interned identifiers of a large code base and sizeable caches; small enough that a loop
/// leaking by mistake stops with an error long before the machine runs out of memory.
pub const DEFAULT_GLOBAL_LIMIT: usize = 256 << 20;

/// Parses a byte count such as `4096`, `64k`, `64KiB`, `512MiB` or `2 GiB`.
///
/// Units are powers of 1024 and case-insensitive: none or `b` (bytes), `k`/`kb`/`kib`, `m`/`mb`/`mib`, `g`/`gb`/`gib`,
/// `t`/`tb`/`tib`. Whitespace around the number and between number and unit is ignored; `_` may separate digits.
/// Fractions, signs and sizes that do not fit in `usize` are refused.
///
/// # Errors
///
/// [`LeakError::InvalidSize`] naming the input and what is wrong with it.
///
/// # Examples
///
/// ```
/// use leak_budget::parse_size;
///
/// assert_eq!(parse_size("4096").unwrap(), 4096);
/// assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
/// assert_eq!(parse_size("64k").unwrap(), 64 << 10);
/// assert_eq!(parse_size(" 2 gib ").unwrap(), 2 << 30);
/// assert_eq!(parse_size("1_000").unwrap(), 1000);
/// assert!(parse_size("12XB").is_err());
/// assert!(parse_size("-1").is_err());
/// assert!(parse_size("").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<usize, LeakError> {
    parse_size_inner(text).map_err(|reason| LeakError::InvalidSize { input: text.to_owned(), reason })
}

fn parse_size_inner(text: &str) -> Result<usize, &'static str> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("it is empty");
    }
    let digits_end = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '_')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err("it does not start with a number");
    }
    if number.starts_with('_') || number.ends_with('_') {
        return Err("`_` may only separate digits");
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other if other.starts_with('.') || other.starts_with(',') => return Err("fractions are not accepted"),
        _ => return Err("unknown unit"),
    };
    let mut value: usize = 0;
    for digit in number.bytes().filter(u8::is_ascii_digit) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(usize::from(digit - b'0')))
            .ok_or("it does not fit in usize")?;
    }
    // In u128, where it cannot overflow (below 2^64 * 2^40): `1 << 40` does not fit a 32-bit usize.
    usize::try_from(value as u128 * (1_u128 << shift)).map_err(|_| "it does not fit in usize")
}

/// The global budget's limit: [`LEAK_BUDGET_VAR`] if set, else [`DEFAULT_GLOBAL_LIMIT`].
pub(crate) fn global_limit_from_env() -> Result<usize, LeakError> {
    match std::env::var_os(LEAK_BUDGET_VAR) {
        None => Ok(DEFAULT_GLOBAL_LIMIT),
        Some(raw) => {
            let value = raw.to_string_lossy().into_owned();
            let Some(text) = raw.to_str() else {
                return Err(LeakError::InvalidConfig { var: LEAK_BUDGET_VAR, value, reason: "it is not valid UTF-8" });
            };
            parse_size_inner(text).map_err(|reason| LeakError::InvalidConfig { var: LEAK_BUDGET_VAR, value, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `want` is a u64 so the table holds on every target: where it does not fit in usize (a 32-bit target), the
    /// size must be refused.
    #[test]
    fn accepts_every_documented_unit_in_any_case() {
        let cases: [(&str, u64); 18] = [
            ("0", 0),
            ("0T", 0),
            ("17", 17),
            ("17b", 17),
            ("3k", 3 << 10),
            ("3K", 3 << 10),
            ("3kb", 3 << 10),
            ("3KiB", 3 << 10),
            ("3kIb", 3 << 10),
            ("5M", 5 << 20),
            ("5mib", 5 << 20),
            ("5MB", 5 << 20),
            ("7G", 7 << 30),
            ("7GiB", 7 << 30),
            ("1T", 1 << 40),
            ("1 TiB", 1 << 40),
            ("\t64 MiB\n", 64 << 20),
            ("1_048_576", 1 << 20),
        ];
        for (text, want) in cases {
            let want = usize::try_from(want)
                .map_err(|_| LeakError::InvalidSize { input: text.to_owned(), reason: "it does not fit in usize" });
            assert_eq!(parse_size(text), want, "{text:?}");
        }
    }

    #[test]
    fn refuses_malformed_sizes_with_a_reason() {
        let cases = [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("MiB", "it does not start with a number"),
            ("-5", "it does not start with a number"),
            ("+5", "it does not start with a number"),
            ("1.5G", "fractions are not accepted"),
            ("12XB", "unknown unit"),
            ("12 mega", "unknown unit"),
            ("_12", "`_` may only separate digits"),
            ("12_", "`_` may only separate digits"),
            ("99999999999999999999999", "it does not fit in usize"),
            ("16777216T", "it does not fit in usize"),
        ];
        for (text, reason) in cases {
            assert_eq!(parse_size(text), Err(LeakError::InvalidSize { input: text.to_owned(), reason }), "{text:?}");
        }
    }

    #[test]
    fn largest_value_that_fits_is_accepted() {
        assert_eq!(parse_size(&usize::MAX.to_string()), Ok(usize::MAX));
        assert_eq!(parse_size(&format!("{}k", usize::MAX >> 10)), Ok((usize::MAX >> 10) << 10));
    }
}
