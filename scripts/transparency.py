#!/usr/bin/env python3
"""Is vmbench transparent? Interleaved pairs of one vmbench trial and the
same launch run bare, from the `reproduce` line vmbench records.

For a VM target, vmbench's `ready_ms` is set against the wall time of the
whole bare QEMU process (console drained from a pipe, as vmbench reads it);
for a container target, vmbench's `exit_ms` against the whole bare
`docker run`. Each pair runs its two sides back to back, in alternating
order (vmbench first in even pairs, bare first in odd ones), because batches
run one after the other drift by 10-30% on shared hosts while neighbouring
runs do not. The answer is the median of the per-pair ratios vmbench/bare
with a 95% percentile-bootstrap interval: below 1 means vmbench's number is
smaller than the bare launch's wall time, i.e. it adds nothing measurable.

    scripts/transparency.py --vmbench target/release/vmbench --pairs 10 \
        --scenario scenarios/boot.toml --target qemu-microvm --metric ready_ms
    scripts/transparency.py --vmbench target/release/vmbench --pairs 20 \
        --scenario scenarios/boot.toml --target docker --metric exit_ms

Every program is started from an argument vector, never through a shell.
The bare side runs on the CPUs vmbench pinned its targets to (run.json's
`scenario.cpuset`), so both sides are placed alike.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time


def vmbench_trial(vmbench, scenario, target, metric, workdir, i):
    """One vmbench run of one trial; returns the metric (ms) and run.json."""
    out = os.path.join(workdir, f"vmbench-{i}")
    argv = [vmbench, "run", scenario, "--only", target, "--reps", "1", "--warmup", "0", "--out", out]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with open(os.path.join(out, "samples.jsonl")) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(out, "run.json")) as f:
        record = json.load(f)
    good = [s for s in samples if s["ok"] and not s["warmup"] and metric in s["metrics"]]
    if done.returncode != 0 or not good:
        sys.exit(f"vmbench run {i} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return good[0]["metrics"][metric], record


def parse_cpus(text):
    cpus = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def bare_launch(argv, cpus):
    """Wall time (ms) of the whole bare launch, its output drained from a pipe."""
    def place():
        if cpus:
            os.sched_setaffinity(0, cpus)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=place)
    while proc.stdout.read(65536):
        pass
    proc.wait()
    return (time.monotonic() - start) * 1000.0, proc.returncode


def bootstrap_median(ratios, resamples=2000, seed=1):
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmbench", default="target/release/vmbench")
    ap.add_argument("--scenario", default="scenarios/boot.toml")
    ap.add_argument("--target", required=True)
    ap.add_argument("--metric", default="ready_ms", help="ready_ms for a VM, exit_ms for a container")
    ap.add_argument("--pairs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmbench-transparency-") as workdir:
        _, record = vmbench_trial(args.vmbench, args.scenario, args.target, args.metric, workdir, "probe")
        facts = next(t for t in record["targets"] if t["name"] == args.target)
        argv = facts["reproduce"]
        cpus = parse_cpus(record["scenario"]["cpuset"]) if record["scenario"].get("cpuset") else None
        print(f"bare side: {' '.join(argv)}")
        print(f"cpus: {record['scenario'].get('cpuset') or 'not pinned'}")
        rows = []
        for i in range(args.pairs):
            sides = ["vmbench", "bare"] if i % 2 == 0 else ["bare", "vmbench"]
            got = {}
            for side in sides:
                if side == "vmbench":
                    got[side], _ = vmbench_trial(args.vmbench, args.scenario, args.target, args.metric, workdir, i)
                else:
                    got[side], code = bare_launch(argv, cpus)
                    if code != 0:
                        sys.exit(f"the bare launch exited with {code}")
            rows.append((got["vmbench"], got["bare"]))
            print(f"pair {i + 1:2}: vmbench {args.metric} {got['vmbench']:9.2f} ms   bare {got['bare']:9.2f} ms   ratio {got['vmbench'] / got['bare']:.3f}")
    ratios = [v / b for v, b in rows]
    low, high = bootstrap_median(ratios)
    print(f"\nmedian vmbench {args.metric}: {statistics.median(v for v, _ in rows):.2f} ms; "
          f"median bare wall time: {statistics.median(b for _, b in rows):.2f} ms")
    print(f"median pairwise ratio vmbench/bare: {statistics.median(ratios):.3f} [95% bootstrap {low:.3f}, {high:.3f}] "
          f"over {len(ratios)} pairs (range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
