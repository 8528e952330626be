#!/usr/bin/env python3
"""Compare two checkouts of leak-budget on the criterion benches, run alternately in the same session.

For each of RUNS rounds, runs every bench in BENCHES, filtered to FILTER (leak-budget's own rows by default), in the
BEFORE checkout and then in the AFTER checkout (alternating which goes first), reads each benchmark's median per
element from the checkout's target/criterion, and prints a Markdown table: per workload, the median over the rounds of
each checkout's medians, and their ratio (after / before). Build both first (`cargo bench -p leak-budget-benches
--no-run` in each); the corpus comes from LEAK_BUDGET_CORPUS if set, as for the benches themselves.

Usage: python3 scripts/compare_builds.py BEFORE_DIR AFTER_DIR [--runs 5] [--benches leak,intern,cache]
       [--filter leak-budget]
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("before")
parser.add_argument("after")
parser.add_argument("--runs", type=int, default=5)
parser.add_argument("--benches", default="leak,intern,cache")
parser.add_argument("--filter", default="leak-budget")
args = parser.parse_args()


def medians(checkout):
    """Median ns per element of every benchmark criterion saved last in `checkout`."""
    found = {}
    for bench in (pathlib.Path(checkout) / "target" / "criterion").glob("*/*/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        elements = (meta.get("throughput") or {}).get("Elements", 1)
        found[f"{meta['group_id']} / {meta['function_id']}"] = estimates["median"]["point_estimate"] / elements
    return found


def run(checkout, bench):
    """Runs one bench of `checkout`, filtered; returns the medians of the benchmarks it ran."""
    criterion = pathlib.Path(checkout) / "target" / "criterion"
    for stale in criterion.glob("*/*/new/benchmark.json"):
        stale.unlink()
    subprocess.run(
        ["cargo", "bench", "-q", "-p", "leak-budget-benches", "--bench", bench, "--", args.filter, "--noplot"],
        cwd=checkout, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return medians(checkout)


results = {"before": {}, "after": {}}
for round_index in range(args.runs):
    order = ["before", "after"] if round_index % 2 == 0 else ["after", "before"]
    for bench in args.benches.split(","):
        for side in order:
            for name, value in run(getattr(args, side), bench).items():
                results[side].setdefault(name, []).append(value)
    print(f"round {round_index + 1} of {args.runs} done", file=sys.stderr)

print("| workload | before, ns per element | after | after / before |")
print("|---|---|---|---|")
worst = 0.0
for name in sorted(results["before"]):
    before = statistics.median(results["before"][name])
    after_values = results["after"].get(name)
    if not after_values:
        continue
    after = statistics.median(after_values)
    ratio = after / before
    worst = max(worst, ratio)
    print(f"| {name} | {before:.2f} | {after:.2f} | {ratio:.3f} |")
print(f"\nworst after / before: {worst:.3f} ({args.runs} rounds)")
