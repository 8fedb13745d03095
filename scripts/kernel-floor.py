#!/usr/bin/env python3
"""The floor under vmbench's kernel = "minimal" boot: the same kernel and the
same QEMU command line (vmbench's reproduce line for the target), booted with a
trivial static init that reboots at once (QEMU runs with -no-reboot, so it
exits), pinned to the CPUs vmbench pins QEMU to, timed as a whole process:
spawn to exit. Round by round, interleaved (ABBA) with a one-launch vmbench run
of the same target, since batches drift 10-30% on shared hosts.

    scripts/kernel-floor.py [--rounds 20] [--machine microvm] [--vmbench target/release/vmbench]

Prints each round, then the medians: the floor, vmbench's ready_ms (launch to
the agent's ready line) and exit_ms (launch to QEMU's exit, the figure that
covers what the floor covers), and their ratios to the floor. Needs gcc (for
the trivial init) and what vmbench's VM targets need.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TRIVIAL_INIT = r"""
#include <sys/reboot.h>
#include <unistd.h>
int main(void) { sync(); reboot(RB_AUTOBOOT); return 0; }
"""

SCENARIO = """name = "kernel-floor"
repetitions = 1
warmup = 0
timeout_s = 60

[[target]]
name = "minimal"
kind = "vm"
accel = "tcg"
machine = "{machine}"
kernel = "minimal"

[[workload]]
kind = "boot"
"""


def cpio_newc(entries):
    """A newc cpio archive of (name, mode, data, rdev_major, rdev_minor)."""
    out = bytearray()
    for ino, (name, mode, data, major, minor) in enumerate(entries + [("TRAILER!!!", 0, b"", 0, 0)], start=1):
        encoded = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(encoded), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out + b"\0" * (-len(out) % 512))


def trivial_initramfs(work):
    source = os.path.join(work, "init.c")
    binary = os.path.join(work, "init")
    with open(source, "w") as f:
        f.write(TRIVIAL_INIT)
    subprocess.run(["gcc", "-static", "-O2", "-o", binary, source], check=True)
    with open(binary, "rb") as f:
        init = f.read()
    archive = cpio_newc([
        ("dev", 0o040755, b"", 0, 0),
        ("dev/console", 0o020600, b"", 5, 1),
        ("init", 0o100755, init, 0, 0),
    ])
    path = os.path.join(work, "trivial.cpio")
    with open(path, "wb") as f:
        f.write(archive)
    return path


def vmbench_launch(vmbench, scenario, out):
    """One vmbench run of one launch: its record and its one sample."""
    subprocess.run([vmbench, "run", scenario, "--out", out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "run.json")) as f:
        record = json.load(f)
    with open(os.path.join(out, "samples.jsonl")) as f:
        sample = json.loads(f.readline())
    if not sample["ok"]:
        sys.exit(f"vmbench's launch failed: {sample.get('error')}")
    return record, sample


def floor_argv(reproduce, initrd):
    """vmbench's reproduce line with the trivial initramfs and without
    vmbench's own kernel parameters."""
    argv = list(reproduce)
    argv[argv.index("-initrd") + 1] = initrd
    append = argv.index("-append") + 1
    argv[append] = " ".join(t for t in argv[append].split() if not t.startswith("vmbench."))
    return argv


def floor_ms(argv, cpus):
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    return (time.perf_counter() - started) * 1e3


def cpus_of(record):
    text = record["targets"][0].get("cpuset") or ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    cpus = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--machine", default="microvm", choices=["microvm", "q35"])
    parser.add_argument("--vmbench", default="target/release/vmbench")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kernel-floor-") as work:
        scenario = os.path.join(work, "floor.toml")
        with open(scenario, "w") as f:
            f.write(SCENARIO.format(machine=args.machine))
        # A first launch builds the kernel if need be and gives the command line.
        record, _ = vmbench_launch(args.vmbench, scenario, os.path.join(work, "warm"))
        target = record["targets"][0]
        argv = floor_argv(target["reproduce"], trivial_initramfs(work))
        cpus = cpus_of(record)
        print(f"kernel {target['kernel']['path']} ({target['kernel']['source']}), machine {args.machine}, "
              f"QEMU pinned to CPUs {sorted(cpus)}")
        floors, ready, exits = [], [], []
        for n in range(args.rounds):
            order = ["floor", "vmbench"] if n % 4 in (0, 3) else ["vmbench", "floor"]
            for which in order:
                if which == "floor":
                    floors.append(floor_ms(argv, cpus))
                else:
                    _, sample = vmbench_launch(args.vmbench, scenario, os.path.join(work, f"run{n}"))
                    ready.append(sample["metrics"]["ready_ms"])
                    exits.append(sample["metrics"]["exit_ms"])
            print(f"round {n + 1:2}: floor {floors[-1]:7.1f} ms   vmbench ready {ready[-1]:7.1f} ms   "
                  f"exit {exits[-1]:7.1f} ms")
        floor = statistics.median(floors)
        print(f"medians over {args.rounds} rounds: floor {floor:.1f} ms, "
              f"vmbench ready_ms {statistics.median(ready):.1f} ({statistics.median(ready) / floor:.3f}x), "
              f"exit_ms {statistics.median(exits):.1f} ({statistics.median(exits) / floor:.3f}x)")


if __name__ == "__main__":
    main()
