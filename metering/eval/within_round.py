#!/usr/bin/env python3
"""within_round.py - how much of a workload's CV is software, not hardware?

Joins `tally-eval units --rows` (per-row work per CU and per peak FP16, each
over its workload's geometric mean) to the MLPerf round of each row in
mlperf_inference_sources.csv (same row order) and prints, per workload, the
CV over all rows, the CV within each round that has at least two rows, and
the same device's per-device throughput in different rounds. A diagnosis
only: nothing here feeds an efficiency or a default.

usage: python3 metering/eval/within_round.py [path/to/tally-eval]
"""
import collections
import csv
import json
import statistics
import subprocess
import sys

EVAL = sys.argv[1] if len(sys.argv) > 1 else "build/bin/tally-eval"
HALVES = ["metering/eval/mlperf_calib.csv", "metering/eval/mlperf_heldout.csv"]
SOURCES = "metering/eval/mlperf_inference_sources.csv"


def cv(values):
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else float("nan")


def load_rows():
    rows = []
    for path in HALVES:
        out = subprocess.check_output([EVAL, "units", "--csv", path, "--rows"])
        rows += json.loads(out)["per_row"]
    with open(SOURCES, newline="") as f:
        sources = list(csv.DictReader(f))
    if len(rows) != len(sources):
        sys.exit("within_round: %d rows scored, %d sourced" % (len(rows), len(sources)))
    for row, src in zip(rows, sources):
        if (row["workload"], row["device"]) != (src["workload"], src["device"]):
            sys.exit("within_round: row order differs from the sources at %s" % src["workload"])
        row["round"] = src["mlperf_round"]
    return rows


def report(workload, rows):
    print(workload)
    print("  all rounds   n=%2d  tally %.3f  naive %.3f" % (
        len(rows), cv([r["tally_ratio"] for r in rows]), cv([r["naive_ratio"] for r in rows])))
    by_round = collections.defaultdict(list)
    for r in rows:
        by_round[r["round"]].append(r)
    for rnd, rs in sorted(by_round.items()):
        if len(rs) > 1:
            print("  %-10s   n=%2d  tally %.3f  naive %.3f  (%s)" % (
                rnd, len(rs), cv([r["tally_ratio"] for r in rs]), cv([r["naive_ratio"] for r in rs]),
                ", ".join(sorted({r["device"] for r in rs}))))
    by_device = collections.defaultdict(list)
    for r in rows:
        by_device[r["device"]].append(r)
    for dev, rs in by_device.items():
        if len({r["round"] for r in rs}) > 1:
            print("  same device, other rounds: %s %s" % (
                dev, " ".join("%s=%.4g" % (r["round"], r["per_device"]) for r in rs)))


def main():
    by_workload = collections.defaultdict(list)
    for r in load_rows():
        by_workload[r["workload"]].append(r)
    for workload, rows in by_workload.items():
        report(workload, rows)


if __name__ == "__main__":
    main()
