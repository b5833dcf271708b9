"""Compute the recorded-curve table: full-fidelity IMP curves on a grid over the search space.

The table (``benchmarks/data/mnist1d_curves.csv``) is a *tabular benchmark* in the sense of
HPOBench or syne-tune's blackbox repository: every curve is trained once, at the fidelity where
sparse double descent exists (docs/reproduction.md: 40 epochs per level, rewind to init, 20%
symmetric noise), and search strategies are then compared by replaying trials from it in
minutes instead of hours. The grid covers the space of ``studies/mnist1d_search.yaml``.

Each (config, seed) group is an ordinary ``sdd-opt train`` run of ``studies/mnist1d_baseline.yaml``
with the overrides in its row, so any curve re-runs to the same numbers (one torch thread)::

    sdd-opt train --config studies/mnist1d_baseline.yaml --set prune.target_sparsity=0.98 \
        --set train.threads=1 --set train.weight_decay=0.001 --set prune.rate=0.3 --set seed=1

Regenerate (resumable: finished curves are kept, an interrupted one resumes at its last level)::

    python -m benchmarks.curve_table --workers 2            # ~2 h on 2 idle cores
    python -m benchmarks.curve_table --list                 # the grid, one line per curve

Run it from a ``git archive`` snapshot of the repository if you keep editing the tree meanwhile.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from benchmarks.pool import run_jobs
from sdd_opt.study.replay import LEVEL_COLUMNS  # the table format, read by CurveTable

BASE = "studies/mnist1d_baseline.yaml"
# What every curve of the table shares (beside the base file): the search space's longest target
# sparsity (shorter targets are prefixes of the same curve) and one torch thread (bit-exact re-runs).
FIXED = {"prune.target_sparsity": 0.98, "train.threads": 1}
KEYS = ("train.weight_decay", "distill.enabled", "distill.temperature", "distill.alpha",
        "distill.teacher.weight_decay", "prune.rate")
SEEDS = (0, 1)

# The grid. l2: "none" (0) and a log range over the search space's 1e-4..1e-2; distillation (the
# student without l2, as in the paper) over T, alpha and the teacher's l2; every remedy at three
# pruning rates spanning the space's 0.2..0.4.
L2_VALUES = (0.0, 1e-4, 1e-3, 5e-3, 1e-2)
TEMPERATURES = (3.0, 10.0)
ALPHAS = (0.5, 0.9)
TEACHER_L2 = (1e-3, 5e-3)
RATES = (0.2, 0.3, 0.4)


def remedies() -> Iterator[dict[str, Any]]:
    for wd in L2_VALUES:
        yield {"train.weight_decay": wd, "distill.enabled": False}
    for t, a, twd in itertools.product(TEMPERATURES, ALPHAS, TEACHER_L2):
        yield {"train.weight_decay": 0.0, "distill.enabled": True, "distill.temperature": t,
               "distill.alpha": a, "distill.teacher.weight_decay": twd}


def grid(seeds=SEEDS) -> list[dict[str, Any]]:
    """Every (config, seed) of the table, seed-major so that a partial table covers the whole grid."""
    out = []
    for seed in seeds:
        for remedy in remedies():
            for rate in RATES:
                out.append({**remedy, "prune.rate": rate, "seed": seed})
    return out


def overrides(point: dict[str, Any]) -> list[str]:
    items = {**FIXED, **{k: v for k, v in point.items()}}
    return [f"{k}={json.dumps(v) if isinstance(v, bool) else v}" for k, v in items.items()]


def command(point: dict[str, Any]) -> str:
    return f"sdd-opt train --config {BASE} " + " ".join(f"--set {o}" for o in overrides(point))


def run_dir(root: Path, point: dict[str, Any]) -> Path:
    from sdd_opt.config import load_config
    from sdd_opt.rundir import result_hash

    return root / "runs" / result_hash(load_config(BASE, overrides(point)))


def _is_done(path: Path) -> bool:
    if not (path / "metrics.json").exists():
        return False
    m = json.loads((path / "metrics.json").read_text())
    return m.get("levels_done") == m.get("levels_planned") or bool(m.get("stopped_early"))


def _work(job: tuple[dict[str, Any], str]) -> tuple[dict[str, Any], float]:
    point, root = job
    import torch

    from sdd_opt.config import load_config
    from sdd_opt.imp import run_curve

    torch.set_num_threads(1)
    cfg = load_config(BASE, overrides(point) + [f"distill.teacher.cache_dir={Path(root) / 'teachers'}",
                                                 f"data.data_dir={Path(root) / 'data'}"])
    out = run_dir(Path(root), point)
    t0 = time.perf_counter()
    run_curve(cfg, out, resume=out.exists(), keep_checkpoints="last", progress=False,
              log=lambda m: print(f"[{out.name}] {m}", flush=True))
    return point, time.perf_counter() - t0


def _head(point: dict[str, Any]) -> list[str]:
    """The searched keys of one grid point as CSV cells ('' where a key does not apply)."""
    return ["" if point.get(k) is None else (str(point[k]).lower() if isinstance(point[k], bool) else repr(point[k]))
            for k in KEYS]


def read_table(path: Path) -> dict[tuple[str, ...], list[list[str]]]:
    """Rows of an existing table grouped by (searched keys..., seed): curves kept without their run dirs."""
    groups: dict[tuple[str, ...], list[list[str]]] = {}
    if not path.exists():
        return groups
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != [*KEYS, "seed", *LEVEL_COLUMNS]:
            raise SystemExit(f"error: {path}: not a curve table of this grid (header {header})")
        for row in reader:
            groups.setdefault(tuple(row[: len(KEYS) + 1]), []).append(row)
    return groups


def _key(point: dict[str, Any]) -> tuple[str, ...]:
    return (*_head(point), str(point["seed"]))


def write_table(root: Path, points: list[dict[str, Any]], path: Path) -> int:
    """Rewrite the CSV (atomically) from every finished run, keeping curves the table already holds
    (so a committed table resumes on a machine without the run directories); returns the curve count."""
    from sdd_opt.rundir import read_curve

    kept = read_table(path)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*KEYS, "seed", *LEVEL_COLUMNS])
    n = 0
    for point in points:
        d = run_dir(root, point)
        if _is_done(d):
            n += 1
            for row in read_curve(d / "curve.csv"):
                writer.writerow([*_head(point), point["seed"], row["level"], f"{row['sparsity']:.6f}",
                                 *(f"{row[c]:.4f}" for c in ("train_acc", "val_acc", "test_acc")), row["epochs"]])
        elif _key(point) in kept:
            n += 1
            writer.writerows(kept[_key(point)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.curve_table", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="parallel curves, one torch thread each (default 2)")
    p.add_argument("--root", default="storage/curve-table", help="run directories, teachers and data (default "
                                                                 "storage/curve-table)")
    p.add_argument("--out", default="benchmarks/data/mnist1d_curves.csv", help="the table (default "
                                                                               "benchmarks/data/mnist1d_curves.csv)")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="training seeds, e.g. 0,1 (default 0,1)")
    p.add_argument("--limit", type=int, default=None, help="compute at most this many missing curves (then stop)")
    p.add_argument("--list", action="store_true", help="print the grid and each curve's command, then exit")
    args = p.parse_args(argv)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        p.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if args.workers < 1:
        p.error("--workers: must be at least 1")
    points = grid(seeds)
    if args.list:
        for point in points:
            print(command(point))
        return 0
    root = Path(args.root)
    in_table = read_table(Path(args.out))
    todo = [pt for pt in points if _key(pt) not in in_table and not _is_done(run_dir(root, pt))]
    if args.limit is not None:
        todo = todo[: args.limit]
    print(f"{len(points)} curves in the grid, {len(points) - len(todo)} done, computing {len(todo)} "
          f"with {args.workers} worker(s)", flush=True)
    t0, done = time.perf_counter(), 0

    def report(result) -> None:
        nonlocal done
        point, secs = result
        done += 1
        n = write_table(root, points, Path(args.out))
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (len(todo) - done)
        print(f"curve {done}/{len(todo)} done in {secs:.0f}s ({n}/{len(points)} in the table; "
              f"elapsed {elapsed / 60:.1f} min, eta {eta / 60:.1f} min): {command(point)}", flush=True)

    if run_jobs(_work, [(pt, str(root)) for pt in todo], args.workers, report):
        return 130
    n = write_table(root, points, Path(args.out))
    print(f"wrote {args.out}: {n} of the grid's {len(points)} curves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
