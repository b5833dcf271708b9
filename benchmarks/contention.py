"""Benchmark: does `sdd-opt train` keep a fair share of the CPU beside another CPU-bound process?

The same ``sdd-opt train`` (MNIST-1D CNN, ``--epochs`` per level, dense + ``--levels`` levels) runs
idle, then beside ``--hogs`` CPU-bound processes (a Python busy loop each), for each thread layout
in ``--variants``; the table gives the per-level seconds (median over the levels, read from the
run's curve.csv) and their ratio. With ``--hogs 1`` on 2 cores a fair share is half the machine,
so a ratio of about 2 is fair for a training that used both cores and about 1 for one that used one;
the target is <= 2.5x for the default layout::

    python -m benchmarks.contention                      # default: 1 thread, 2 threads, 2 threads + PASSIVE
    python -m benchmarks.contention --epochs 5 --levels 2 --variants 1,2

A variant is ``THREADS`` or ``THREADS:passive`` (OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep
instead of spinning). ``default`` is whatever ``sdd-opt train`` does without ``train.threads``.
Each training runs in its own process, as a user's would; measure on an otherwise idle machine
(the header prints the load average at start).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import load_average, table

BASE = "studies/mnist1d_baseline.yaml"
TARGET = 2.5
HOG = "while True: pass"


def _variant(spec: str) -> tuple[str, dict[str, str], list[str]]:
    """(label, extra environment, --set overrides) of ``default``, ``N`` or ``N:passive``."""
    if spec == "default":
        return "default (train.threads unset)", {}, []
    threads, _, policy = spec.partition(":")
    if not threads.isdigit() or int(threads) < 1 or policy not in ("", "passive"):
        raise SystemExit(f"error: --variants: {spec!r} is not default, N or N:passive")
    env = {"OMP_WAIT_POLICY": "PASSIVE"} if policy else {}
    label = f"{threads} thread{'s' if int(threads) > 1 else ''}" + (" + OMP_WAIT_POLICY=PASSIVE" if policy else "")
    return label, env, [f"train.threads={threads}"]


def train_seconds(out: Path, sets: list[str], env: dict[str, str], args) -> list[float]:
    """Run one ``sdd-opt train`` in a fresh process; the seconds of each level."""
    from sdd_opt.rundir import read_curve

    cmd = [sys.executable, "-m", "sdd_opt", "train", "--config", BASE, "--out", str(out), "--quiet",
           "--set", f"train.epochs={args.epochs}", "--set", f"prune.levels={args.levels}",
           "--set", f"data.data_dir={args.data_dir}", *[a for s in sets + args.set for a in ("--set", s)]]
    full_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    full_env.update(env)
    subprocess.run(cmd, check=True, env=full_env, stdout=subprocess.DEVNULL)
    return [float(r["seconds"]) for r in read_curve(out / "curve.csv")]


def measure(args) -> list[list[object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, spec in enumerate(args.variants.split(",")):
            label, env, sets = _variant(spec.strip())
            idle = train_seconds(Path(tmp) / f"idle{k}", sets, env, args)
            hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
            try:
                time.sleep(0.5)
                busy = train_seconds(Path(tmp) / f"busy{k}", sets, env, args)
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
            i, b = statistics.median(idle), statistics.median(busy)
            rows.append([label, i, b, b / i, " ".join(f"{s:.1f}" for s in busy)])
            print(f"# {label}: idle {i:.2f} s/level, busy {b:.2f} s/level, {b / i:.2f}x", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="default,2,2:passive", help="comma-separated: default, N, N:passive")
    p.add_argument("--epochs", type=int, default=10, help="epochs per level (default 10)")
    p.add_argument("--levels", type=int, default=3, help="pruning levels after the dense training (default 3)")
    p.add_argument("--hogs", type=int, default=1, help="CPU-bound processes beside the training (default 1)")
    p.add_argument("--data-dir", default="storage/data")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more overrides of the run config")
    args = p.parse_args(argv)
    print(f"## contention: sdd-opt train ({BASE}, {args.epochs} epochs x dense + {args.levels} levels), idle and "
          f"beside {args.hogs} CPU-bound process(es)")
    print(f"machine: {os.cpu_count()} cores; {load_average()} at start\n")
    rows = measure(args)
    print(table(["variant", "idle s/level", "busy s/level", "ratio", "busy levels s"], rows))
    default = rows[0]
    verdict = "MET" if default[3] <= TARGET else "NOT MET"
    print(f"\ntarget: <= {TARGET}x for {default[0]}: {default[3]:.2f}x -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
