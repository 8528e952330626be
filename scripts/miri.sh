#!/usr/bin/env bash
# Miri over the test suite, as CI runs it, with the leak checker on (memory reachable from the static registry of budget
# accounts is not a leak; anything else is). Installs the component if it is missing, and fails loudly if it cannot.
#
#   scripts/miri.sh          # the three passes below
#   scripts/miri.sh quick    # pass 1 only
#
# 1. Every test binary, unit tests and doctests, with -Zmiri-strict-provenance (Stacked Borrows, the default model).
# 2. Every test binary again under Tree Borrows (-Zmiri-tree-borrows), also with strict provenance.
# 3. The tests that race threads, under MIRI_SEEDS more scheduler seeds (-Zmiri-many-seeds; default 0..8): those of
#    tests/budget.rs, tests/adversarial.rs, tests/intern.rs, tests/once.rs, tests/cache.rs and tests/tree.rs.
#
# Iteration counts are scaled down under cfg(miri) in the tests themselves (see each file's `scaled`); the only tests
# Miri skips are marked `cfg_attr(miri, ignore = "...")` with their reason (a 1 GiB allocation, which Miri backs with
# host memory), and the resident-memory cases of tests/cap.rs report themselves skipped (no /proc under Miri).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=${MIRI_TOOLCHAIN:-nightly}
seeds=${MIRI_SEEDS:-0..8}

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

run "strict provenance, whole suite" "-Zmiri-strict-provenance"
if [ "${1:-}" = quick ]; then
    exit 0
fi
run "tree borrows, test binaries" "-Zmiri-strict-provenance -Zmiri-tree-borrows" --tests

# The threaded tests, by name, under more seeds.
threaded_budget="concurrent_leaks values_cross_threads threads_that_exit two_threads leaking_from_a_thread_local"
threaded_adversarial="two_threads_race figures_read_during thread_local_destructors panicking_initialisers"
run "many seeds ($seeds), threaded tests of tests/budget.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test budget -- $threaded_budget
run "many seeds ($seeds), threaded tests of tests/adversarial.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test adversarial -- $threaded_adversarial

# The components' threaded tests: those that race threads on one interner, cell, cache or tree. Left out: tests that
# only hand a finished value to another thread, which race nothing. Seeds 0..8 take 74 s (intern), 15 s (once),
# 16 s (cache) and 17 s (tree) on 2 cores, so every file gets all of MIRI_SEEDS.
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
