#!/usr/bin/env bash
# Miri over the test suite, as CI runs it, with the leak checker on (memory reachable from the static registry of budget
# accounts is not a leak; anything else is). Installs the components it needs, and fails loudly if it cannot.
#
#   scripts/miri.sh          # the four passes below
#   scripts/miri.sh quick    # pass 1 only
#   scripts/miri.sh i686     # pass 4 only
#
# 1. Every test binary, unit tests and doctests, with -Zmiri-strict-provenance (Stacked Borrows, the default model).
# 2. Tree Borrows (-Zmiri-tree-borrows, with strict provenance) on the unit tests and the test modules whose code paths
#    cover every raw-pointer protocol of the crate: the core (budget, adversarial), the components (intern, cache, once,
#    tree) and the API-soundness cases. Left out: the property, cap, stress and process tests, which run the same
#    library code as these, only longer (they are in pass 1).
# 3. The tests that race threads, under MIRI_SEEDS more scheduler seeds (-Zmiri-many-seeds; default 0..4).
# 4. 32-bit: the unit tests and the core and component test modules on i686-unknown-linux-gnu, strict provenance, so
#    size arithmetic is checked where `usize` has 32 bits.
#
# The ordinary integration tests are one binary, tests/it, with a module per concept: passes 2 to 4 select its tests
# with libtest filters on module paths (`--test it -- budget:: intern::`), in a cargo invocation of their own, since
# the filters would also apply to the unit tests (whose paths include `intern::`).
#
# Iteration counts are scaled down under cfg(miri) in the tests themselves (see `scaled` in tests/support); the only
# tests Miri skips are marked `cfg_attr(miri, ignore = "...")` with their reason (a 1 GiB allocation, which Miri backs
# with host memory), and the resident-memory cases of tests/cap/resident.rs report themselves skipped (no /proc under
# Miri).
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

# The core and component test modules of tests/it: every raw-pointer protocol of the crate, without the long property,
# cap, stress and process runs. The unit tests (`--lib`) go with them, in a cargo invocation of their own.
core_and_components=(budget:: adversarial:: intern:: cache:: once:: tree:: api_soundness::)

i686() {
    cargo "+$toolchain" miri setup --target i686-unknown-linux-gnu >/dev/null
    run "32-bit (i686), strict provenance, unit tests" "-Zmiri-strict-provenance" \
        --target i686-unknown-linux-gnu --lib
    run "32-bit (i686), strict provenance, core and components" "-Zmiri-strict-provenance" \
        --target i686-unknown-linux-gnu --test it -- "${core_and_components[@]}"
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
run "tree borrows, unit tests" "-Zmiri-strict-provenance -Zmiri-tree-borrows" --lib
run "tree borrows, core and components" "-Zmiri-strict-provenance -Zmiri-tree-borrows" \
    --test it -- "${core_and_components[@]}"

# The threaded tests, by path (module, then the start of the test's name), under more seeds.
threaded_budget=(budget::concurrent_leaks budget::values_cross_threads budget::threads_that_exit budget::two_threads
    budget::leaking_from_a_thread_local)
threaded_adversarial=(adversarial::two_threads_race adversarial::figures_read_during
    adversarial::thread_local_destructors adversarial::panicking_initialisers)
run "many seeds ($seeds), threaded tests of tests/it/budget.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test it -- "${threaded_budget[@]}"
run "many seeds ($seeds), threaded tests of tests/it/adversarial.rs" \
    "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" --test it -- "${threaded_adversarial[@]}"

# The components' threaded tests: those that race threads on one interner, cell, cache or tree. Left out: tests that
# only hand a finished value to another thread, which race nothing.
threaded_intern=(intern::threads_interning_the_same_new_values intern::threads_on_disjoint_and_shared_values)
threaded_once=(once::one_value_is_published_under_contention once::callers_wait_for_a_running_initialiser
    once::a_panicking_initialiser_charges_nothing once::set_stores_once once::get_races_initialisation
    once::leak_once_evaluates_each_call_site_once_across_threads once::a_sync_value_that_is_not_send)
threaded_cache=(cache::under_contention_each_initialiser_runs_once cache::a_slow_initialiser_does_not_hold_up
    cache::a_panicking_initialiser_caches_nothing cache::a_failing_initialiser_caches_nothing
    cache::threads_waiting_for_a_key_the_budget_refuses)
threaded_tree=(tree::the_report_adds_up_while_other_threads_allocate tree::the_registry_sees_every_budget)
run "many seeds ($seeds), threaded tests of tests/it/intern.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test it -- "${threaded_intern[@]}"
run "many seeds ($seeds), threaded tests of tests/it/once.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test it -- "${threaded_once[@]}"
run "many seeds ($seeds), threaded tests of tests/it/cache.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test it -- "${threaded_cache[@]}"
run "many seeds ($seeds), threaded tests of tests/it/tree.rs" "-Zmiri-strict-provenance -Zmiri-many-seeds=$seeds" \
    --test it -- "${threaded_tree[@]}"

i686
