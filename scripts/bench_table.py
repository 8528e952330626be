#!/usr/bin/env python3
"""Print the medians criterion saved under target/criterion as Markdown tables, one per benchmark group.

Each row gives the median time per element (operation, token, look-up) and its ratio to leak-budget's row of the same
kind in that group (the row whose name starts with "leak-budget" and has the same ", 2 threads" suffix, if any).
Usage: python3 scripts/bench_table.py [--dir CRITERION-DIR] [GROUP-SUBSTRING...]
(the directory defaults to target/criterion; give a copy saved after a run to table that run)
"""
import json
import pathlib
import sys

DEFAULT_ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def medians(root):
    """{(group, function): median ns per element} for every benchmark criterion saved under `root`."""
    found = {}
    for bench in sorted(root.glob("*/*/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        elements = (meta.get("throughput") or {}).get("Elements", 1)
        found[(meta["group_id"], meta["function_id"])] = estimates["median"]["point_estimate"] / elements
    return found


def kind(name):
    return "2 threads" if "2 threads" in name else "1 thread"


def main():
    args = sys.argv[1:]
    root = DEFAULT_ROOT
    if args[:1] == ["--dir"]:
        root, args = pathlib.Path(args[1]), args[2:]
    filters = args
    groups = {}
    for (group, function), per_element in medians(root).items():
        groups.setdefault(group, []).append((function, per_element))
    for group, rows in groups.items():
        if filters and not any(f in group for f in filters):
            continue
        reference = {kind(n): t for n, t in rows if n.startswith("leak-budget")}
        print(f"\n**{group}**\n")
        print("| contender | median ns per element | ratio to leak-budget |")
        print("|---|---:|---:|")
        for name, per_element in sorted(rows, key=lambda r: (kind(r[0]), not r[0].startswith("leak-budget"), r[1])):
            ref = reference.get(kind(name))
            ratio = f"{per_element / ref:.2f}" if ref else ""
            print(f"| {name} | {per_element:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
