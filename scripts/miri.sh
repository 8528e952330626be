#!/usr/bin/env bash
# Miri over the test suite, as CI runs it, with the leak checker on (memory reachable from the static registry of budget
# accounts is not a leak; anything else is). Installs the components it needs, and fails loudly if it cannot.
#
#   scripts/miri.sh          # the four passes below
#   scripts/miri.sh quick    # pass 1 only
#   scripts/miri.sh i686     # pass 4 only
#
# 1. Every test binary, unit tests and doctests, with -Zmiri-strict-provenance (Stacked Borrows, the default model).
# 2. Tree Borrows (-Zmiri-tree-borrows, with strict provenance) on the unit tests and the test binaries whose code paths
#    cover every raw-pointer protocol of the crate: the core (budget, adversarial), the components (intern, cache, once,
#    tree) and the API-soundness cases. Left out: the property, cap, stress and process tests, which run the same
#    library code as these, only longer (they are in pass 1).
# 3. The tests that race threads, under MIRI_SEEDS more scheduler seeds (-Zmiri-many-seeds; default 0..4).
# 4. 32-bit: the unit tests and the core and component test binaries on i686-unknown-linux-gnu, strict provenance, so
#    size arithmetic is checked where `usize` has 32 bits.
#
# Iteration counts are scaled down under cfg(miri) in the tests themselves (see each file's `scaled`); the only tests
# Miri skips are marked `cfg_attr(miri, ignore = "...")` with their reason (a 1 GiB allocation, which Miri backs with
# host memory), and the resident-memory cases of tests/cap.rs report themselves skipped (no /proc under Miri).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=${MIRI_TOOLCHAIN:-nightly}
seeds=${MIRI_SEEDS:-0..4}

if ! cargo "+$toolchain" miri --version >/dev/null 2>&1; then
    echo "Miri is not installed for $toolchain: installing it" >&2
    rustup toolchain install "$toolchain" --profile minimal --component miri,rust-src || {
        echo "error: cannot install Miri for $toolchain; the Miri passes did NOT run" >&2
        exit 1
    }
fi
cargo "+$toolchain" miri setup >/dev/null

run() {
    local name=$1 flags=$2
    shift 2
    echo "=== Miri: $name (MIRIFLAGS=\"$flags\") ===" >&2
    local started=$SECONDS
    MIRIFLAGS="$flags" cargo "+$toolchain" miri test --no-fail-fast "$@"
    echo "=== Miri: $name: passed in $((SECONDS - started)) s ===" >&2
}

# The core and component test binaries: every raw-pointer protocol of the crate, without the long property, cap,
# stress and process runs.
core_and_components=(--lib --test budget --test adversarial --test intern --test cache --test once --test tree
    --test api_soundness)

i686() {
    cargo "+$toolchain" miri setup --target i686-unknown-linux-gnu >/dev/null
    run "32-bit (i686), strict provenance, core and components" "-Zmiri-strict-provenance" \
        --target i686-unknown-linux-gnu "${core_and_components[@]}"
}

case "${1:-}" in
    i686)
        i686
        exit 0
        ;;
esac

run "strict provenance, whole suite" "-Zmiri-strict-provenance"
if [ "${1:-}" = quick ]; then
    exit 0
fi
run "tree borrows, core and components" "-Zmiri-strict-provenance -Zmiri-tree-borrows" "${core_and_components[@]}"

# The threaded tests, by name, under more seeds.
threaded_budget="concurrent_leaks values_cross_threads threads_that_exit two_threads leaking_from_a_thread_local"
threaded_adversarial="two_threads_race figures_read_during thread_local_destructors panicking_initialisers"
run "many seeds ($seeds), threaded tests of tests/budget.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test budget -- $threaded_budget
run "many seeds ($seeds), threaded tests of tests/adversarial.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test adversarial -- $threaded_adversarial

# The components' threaded tests: those that race threads on one interner, cell, cache or tree. Left out: tests that
# only hand a finished value to another thread, which race nothing.
threaded_intern="threads_interning_the_same_new_values threads_on_disjoint_and_shared_values"
threaded_once="one_value_is_published_under_contention callers_wait_for_a_running_initialiser \
a_panicking_initialiser_charges_nothing set_stores_once get_races_initialisation \
leak_once_evaluates_each_call_site_once_across_threads a_sync_value_that_is_not_send"
threaded_cache="under_contention_each_initialiser_runs_once a_slow_initialiser_does_not_hold_up \
a_panicking_initialiser_caches_nothing a_failing_initialiser_caches_nothing threads_waiting_for_a_key_the_budget_refuses"
threaded_tree="the_report_adds_up_while_other_threads_allocate the_registry_sees_every_budget"
run "many seeds ($seeds), threaded tests of tests/intern.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test intern -- $threaded_intern
run "many seeds ($seeds), threaded tests of tests/once.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test once -- $threaded_once
run "many seeds ($seeds), threaded tests of tests/cache.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test cache -- $threaded_cache
run "many seeds ($seeds), threaded tests of tests/tree.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test tree -- $threaded_tree

i686
