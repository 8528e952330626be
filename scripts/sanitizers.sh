#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer, on nightly, with the standard
# library rebuilt with the same sanitizer (-Zbuild-std, from the rust-src component).
#
#   scripts/sanitizers.sh            # both
#   scripts/sanitizers.sh address    # one of: address, thread
#
# Each sanitizer builds into its own target directory (target/sanitizer-*), so reruns are incremental.
# Skipped under both:
# - the resident-memory cases of tests/cap.rs (sanitizers map shadow memory and pad every block, so the process's RSS
#   is no longer a measure of what the library holds);
# - tests/scan.rs, which builds an example with a nested `cargo build`: it inherits the sanitizer flags but not
#   -Zbuild-std, and fails to compile (it tests the example's command line, not memory safety).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=${SANITIZER_TOOLCHAIN:-nightly}
target=${SANITIZER_TARGET:-x86_64-unknown-linux-gnu}
if [ $# -eq 0 ]; then
    set -- address thread
fi

if ! rustup component list --toolchain "$toolchain" --installed 2>/dev/null | grep -q '^rust-src'; then
    echo "installing rust-src for $toolchain" >&2
    rustup component add --toolchain "$toolchain" rust-src || {
        echo "error: cannot install the rust-src component for $toolchain: sanitizer runs need it (-Zbuild-std)" >&2
        exit 1
    }
fi

# Every test target but those excluded above, and the library's unit tests.
targets=(--lib)
for file in tests/*.rs tests/*/main.rs; do
    name=$(basename "$file" .rs)
    [ "$name" = main ] && name=$(basename "$(dirname "$file")")
    [ "$name" = scan ] && continue
    targets+=(--test "$name")
done

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
        *)
            echo "error: unknown sanitizer '$sanitizer' (expected: address, thread)" >&2
            exit 2
            ;;
    esac
    echo "=== ${sanitizer} sanitizer ===" >&2
    started=$SECONDS
    RUSTFLAGS="-Zsanitizer=$sanitizer -Cdebug-assertions=on" \
    RUSTDOCFLAGS="-Zsanitizer=$sanitizer" \
    CARGO_TARGET_DIR="target/sanitizer-$sanitizer" \
        cargo "+$toolchain" test -Zbuild-std --target "$target" "${targets[@]}" --no-fail-fast -- --skip resident_memory
    echo "=== ${sanitizer} sanitizer: passed in $((SECONDS - started)) s ===" >&2
done
