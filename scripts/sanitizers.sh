#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer, on nightly, with the standard
# library rebuilt with the same sanitizer (-Zbuild-std, from the rust-src component, which this script installs).
#
#   scripts/sanitizers.sh            # both passes, one after the other (what CI runs)
#   scripts/sanitizers.sh address    # one of: address, thread
#
# What a pass covers: the library's unit tests and the integration test binaries (but those skipped below), built in
# the test profile with debug assertions, the standard library instrumented too.
# - address: out-of-bounds accesses and uses after free in the library and the tests (which write into what they leak
#   and read it back), uses of stack memory after return, and at exit LeakSanitizer, which must report nothing: all the
#   library takes stays reachable from its accounts, and the tests keep what they leak reachable from statics.
# - thread: data races on real threads: the lanes' fast path against statistics readers and chunk switches, the
#   concurrent table, cells and caches, the charge races of tests/cap, and thread exit handing lanes on.
#
# What it takes, measured on a 2-core x86-64 VM with nightly 1.97 while other builds shared the machine (load 3 to 6,
# so upper bounds): from cold target directories, address 3 min 53 s (build 3 min 4 s, tests 49 s) and thread 4 min
# 48 s (build 2 min 39 s, tests 2 min 9 s), both 8 min 41 s (5 min 43 s of CPU); warm, address 57 s and thread
# 2 min 3 s. Each pass builds into its own target directory (target/sanitizer-*, about 1.1 GiB each), so reruns are
# incremental.
#
# Cut to keep both passes within a CI run:
# - PROPTEST_CASES defaults to 256 (natively the property tests run 4096 and 2048 cases): the property tests check the
#   crate against its models natively; here they only need to drive its code paths under the sanitizers. At the full
#   counts, tests/it/properties_components.rs alone took 3 min 48 s under ThreadSanitizer, and the thread pass 12 min
#   from cold. Set PROPTEST_CASES to override.
# - Debug info is line tables only: the reports' stacks keep function, file and line, and the build is lighter (one
#   address build from cold: 97 s against 122 s with full debug info).
# Skipped under both:
# - the resident-memory cases of tests/cap/resident.rs (sanitizers map shadow memory and pad every block, so the
#   process's RSS is no longer a measure of what the library holds): `--skip resident_memory`;
# - the scan tests, tests/it/scan.rs, which build an example with a nested `cargo build`: it inherits the sanitizer
#   flags but not -Zbuild-std, and fails to compile (they test the example's command line, not memory safety):
#   `--skip scan::`;
# - tests/loom, whose models exist only under `--cfg loom` (they run in their own step).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=${SANITIZER_TOOLCHAIN:-nightly}
target=${SANITIZER_TARGET:-x86_64-unknown-linux-gnu}
if [ $# -eq 0 ]; then
    set -- address thread
fi

fail() {
    printf '\n!!! sanitizers: %s\n\n' "$@" >&2
    exit 1
}

for sanitizer in "$@"; do
    case "$sanitizer" in
        address | thread) ;;
        *) fail "unknown sanitizer '$sanitizer' (expected: address, thread)" ;;
    esac
done

rustc "+$toolchain" --version >/dev/null 2>&1 ||
    fail "the $toolchain toolchain is missing: rustup toolchain install $toolchain"
if ! rustup component list --toolchain "$toolchain" --installed 2>/dev/null | grep -q '^rust-src'; then
    echo "installing rust-src for $toolchain" >&2
    rustup component add --toolchain "$toolchain" rust-src ||
        fail "cannot install the rust-src component for $toolchain: sanitizer runs need it (-Zbuild-std)"
fi
runtimes="$(rustc "+$toolchain" --print sysroot)/lib/rustlib/$target/lib"
for sanitizer in "$@"; do
    short=${sanitizer:0:1}san
    compgen -G "$runtimes/librustc-*_rt.$short.a" >/dev/null ||
        fail "no $sanitizer sanitizer runtime for $target in $runtimes"
done
if ! command -v llvm-symbolizer >/dev/null && [ -z "${ASAN_SYMBOLIZER_PATH:-}${TSAN_SYMBOLIZER_PATH:-}" ]; then
    echo "warning: llvm-symbolizer not found: reports will show addresses, not functions and lines" >&2
fi

# Every test target (tests/*.rs, tests/*/main.rs) but tests/loom, and the library's unit tests.
targets=(--lib)
for file in tests/*.rs tests/*/main.rs; do
    name=$(basename "${file%/main.rs}" .rs)
    [ "$name" = loom ] && continue
    targets+=(--test "$name")
done

export PROPTEST_CASES=${PROPTEST_CASES:-256}
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
failed=()
summary=()
for sanitizer in "$@"; do
    # allocator_may_return_null: tests ask for absurd sizes and expect a null (AllocFailed), not an abort.
    case "$sanitizer" in
        address)
            export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1:abort_on_error=1"
            export LSAN_OPTIONS="report_objects=1"
            ;;
        thread)
            export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1"
            ;;
    esac
    cargo=(env RUSTFLAGS="-Zsanitizer=$sanitizer -Cdebug-assertions=on" CARGO_TARGET_DIR="target/sanitizer-$sanitizer"
        cargo "+$toolchain" test -Zbuild-std --target "$target" "${targets[@]}")
    echo "=== $sanitizer sanitizer: build ===" >&2
    started=$SECONDS
    if ! "${cargo[@]}" --no-run; then
        failed+=("$sanitizer")
        summary+=("$sanitizer: the build FAILED")
        continue
    fi
    built=$((SECONDS - started))
    echo "=== $sanitizer sanitizer: tests (PROPTEST_CASES=$PROPTEST_CASES) ===" >&2
    if "${cargo[@]}" --no-fail-fast -- --skip resident_memory --skip scan::; then
        outcome=passed
    else
        outcome=FAILED
        failed+=("$sanitizer")
    fi
    took=$((SECONDS - started))
    summary+=("$sanitizer: $outcome in $took s (build $built s, tests $((took - built)) s)")
    echo "=== ${summary[-1]} ===" >&2
done

printf '%s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
    fail "failed under ${failed[*]}: see the reports above"
fi
