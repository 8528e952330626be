#!/usr/bin/env python3
"""Check the speed targets of docs/benchmarks.md against criterion's results, one run at a time.

Each argument is a criterion output directory (`target/criterion`, or a copy of it saved after a run); without one,
`target/criterion`. For every run, prints each target's ratio, computed within that run (leak-budget's median over
the anchor's), and whether it is met; then, over all runs, how many runs met each target.

    cargo bench -p leak-budget-benches --bench intern && cargo bench -p leak-budget-benches --bench leak
    cp -r target/criterion /tmp/run1          # ... and so on for each run
    python3 scripts/bench_targets.py /tmp/run1 /tmp/run2 /tmp/run3 /tmp/run4 /tmp/run5
"""
import pathlib
import sys

from bench_table import DEFAULT_ROOT, medians

LB = "leak-budget Interner<str>"
SI = "string-interner StringInterner"
USTR = "ustr"


def targets(m):
    """(name, value, bound, met) for every target whose rows this run has; `value <= bound` unless bound < 0,
    which means `value >= -bound`."""
    out = []

    def ratio(name, group, mine, anchor, bound):
        a, b = m.get((group, mine)), m.get((group, anchor))
        if a is not None and b is not None:
            out.append((name, a / b, bound, a / b <= bound))

    hit = "intern hit path (all present), 1 thread"
    ratio("1. hit path / string-interner", hit, LB, SI, 1.0)
    ratio("1. hit path / ustr", hit, LB, USTR, 0.55)
    build = "intern build, 1 thread"
    ratio("2. build, 1 thread / string-interner", build, LB, SI, 1.0)
    ratio("2. build, 1 thread / ustr", build, LB, USTR, 0.65)
    ratio("2. build, 2 threads same stream / ustr", "intern build, 2 threads, same stream", LB, USTR, 0.6)
    one, halves = m.get((build, LB)), m.get(("intern build, 2 threads, disjoint halves", LB))
    if one is not None and halves is not None:
        out.append(("2. disjoint halves, speed-up over 1 thread", one / halves, -1.6, one / halves >= 1.6))
    for count in ("100000", "1000000", "10000000"):
        group = f"intern misses at scale, {count} distinct keys, 1 thread"
        ratio(f"3. misses at {int(count):.0e} / string-interner", group, LB, SI, 1.0)
        ratio(f"3. misses at {int(count):.0e} / ustr", group, LB, USTR, 1.0)
    values = "leak 24-byte values"
    ratio("4. 24-byte values / bumpalo", values, "leak-budget LeakBudget::leak", "bumpalo Bump::alloc", 0.65)
    one, two = m.get((values, "leak-budget LeakBudget::leak")), m.get((values, "leak-budget LeakBudget::leak, 2 threads"))
    if one is not None and two is not None:
        out.append(("4. values, 2 threads, speed-up over 1 thread", one / two, -1.7, one / two >= 1.7))
    ratio(
        "4. strings / bumpalo",
        "leak identifier strings",
        "leak-budget LeakBudget::leak_str",
        "bumpalo Bump::alloc_str",
        0.9,
    )
    return out


def main():
    roots = [pathlib.Path(arg) for arg in sys.argv[1:]] or [DEFAULT_ROOT]
    runs = [targets(medians(root)) for root in roots]
    names = []
    for run in runs:
        for name, *_ in run:
            if name not in names:
                names.append(name)
    print("| target | bound | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | met in |")
    print("|---|---:|" + "---:|" * len(runs) + "---:|")
    for name in names:
        cells, met, bound = [], 0, None
        for run in runs:
            row = next((r for r in run if r[0] == name), None)
            if row is None:
                cells.append("")
                continue
            _, value, bound, ok = row
            met += ok
            cells.append(f"{value:.2f}" + ("" if ok else " ✗"))
        shown = f">= {-bound}" if bound < 0 else f"<= {bound}"
        print(f"| {name} | {shown} | " + " | ".join(cells) + f" | {met} of {sum(1 for c in cells if c)} |")


if __name__ == "__main__":
    main()
