"""Retraining modes on the demo's MNIST-1D setting: weight rewinding, fine-tuning, learning-rate rewinding.

He et al. (ICML 2022) compare weight rewinding, fine-tuning, learning-rate rewinding (Renda et al.,
ICLR 2020) and training from scratch. This trains one pruning curve per (mode, seed) with the base
config of ``studies/mnist1d_demo.yaml`` (MNIST-1D, 20 % symmetric noise, 40 epochs per level, rate 0.4,
7 levels to 97.2 %, collapse floor 0.5), then writes every curve to a CSV and a Markdown summary:
per mode and seed the dense / dip / peak test accuracy, whether sparse double descent appears (test
``sdd_gap`` >= 0.05, the demo's check) and the best test accuracy at >= 90 % sparsity; per mode the
mean and spread over seeds, and the mean curve.

A mode is ``rewind``, ``finetune``, ``lr_rewind`` or ``scratch``, optionally ``@K``: ``prune.rewind_to``
K epochs (``lr_rewind@12``: keep the pruned weights, replay the one-cycle schedule from epoch 12, its
peak, to the end). Plain ``lr_rewind`` rewinds to the base's point, epoch 0, and so trains exactly
what ``finetune`` does (sdd-opt's ``finetune`` replays the whole schedule; tests/test_lr_rewind.py pins
that the two curves are identical), which is why the default compares ``lr_rewind@12``.

    python -m benchmarks.retrain_modes --workers 9 --device cuda      # full fidelity: 9 curves at once
    python -m benchmarks.retrain_modes --workers 2                    # the same on 2 CPU cores (hours)
    python -m benchmarks.retrain_modes --tiny                         # seconds: the pipeline only

Each curve is an ordinary run directory under ``--root`` (resumable: run the same command again).
Several worker processes share one GPU; each uses one torch thread.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

DEMO = Path(__file__).resolve().parents[1] / "studies" / "mnist1d_demo.yaml"
MODES = ("rewind", "finetune", "lr_rewind@12")
TINY_MODES = ("rewind", "finetune", "lr_rewind@1")  # --tiny trains 2 epochs per level
SEEDS = (0, 1, 2)
HIGH_SPARSITY = 0.9  # as the demo's checks (sdd_opt.study.demo)
SDD_GAP = 0.05
CURVE_COLUMNS = ("mode", "retrain", "rewind_to", "seed", "level", "sparsity", "train_acc", "val_acc", "test_acc",
                 "epochs", "seconds")
# --tiny: the pipeline in seconds (synthetic data, a narrow CNN, 2 epochs, 2 levels); not a measurement.
TINY = ["data.name=synthetic1d", "model.width=8", "train.epochs=2", "prune.target_sparsity=null", "prune.levels=2",
        "prune.collapse_floor=null"]


def parse_mode(mode: str) -> tuple[str, int | None]:
    """``lr_rewind@12`` -> ("lr_rewind", 12); ``finetune`` -> ("finetune", None)."""
    from typing import get_args

    from sdd_opt.config import PruneConfig

    name, _, point = mode.partition("@")
    known = get_args(PruneConfig.model_fields["retrain"].annotation)
    if name not in known:
        raise ValueError(f"unknown retrain mode {name!r}; choose one of {', '.join(known)}")
    if not point:
        return name, None
    if not point.isdigit():
        raise ValueError(f"{mode!r}: the rewind point after @ is a number of epochs")
    return name, int(point)


def overrides(mode: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides of one curve on top of the demo's base config."""
    retrain, point = parse_mode(mode)
    sets = [f"prune.retrain={retrain}", f"seed={seed}", "train.threads=1", f"train.device={args.device}",
            f"data.data_dir={Path(args.root) / 'data'}"]
    if point is not None:
        sets.append(f"prune.rewind_to={point}")
    if args.tiny:
        sets += TINY
    if args.epochs is not None:
        sets.append(f"train.epochs={args.epochs}")
    if args.levels is not None:
        sets += ["prune.target_sparsity=null", f"prune.levels={args.levels}"]
    return sets


def config(mode: str, seed: int, args: argparse.Namespace):
    from sdd_opt.config import apply_overrides, build_config
    from sdd_opt.study.spec import load_study_spec

    base = load_study_spec(DEMO).base.describe()  # the demo's set: and its collapse floor applied
    return build_config(apply_overrides(base, overrides(mode, seed, args)), source=f"{mode} seed {seed}")


def run_dir(root: Path, mode: str, seed: int) -> Path:
    return root / "runs" / f"{mode.replace('@', '-at-')}-seed{seed}"


def _work(job: tuple[str, int, argparse.Namespace]) -> tuple[str, int, float]:
    """One curve (in a worker process): resumes its run directory when there is one."""
    mode, seed, args = job
    import torch

    from sdd_opt.imp import run_curve

    torch.set_num_threads(1)
    cfg = config(mode, seed, args)
    out = run_dir(Path(args.root), mode, seed)
    t0 = time.perf_counter()
    run_curve(cfg, out, resume=out.exists(), keep_checkpoints="last", progress=False,
              log=lambda m: print(f"[{mode} seed {seed}] {m}", flush=True))
    return mode, seed, time.perf_counter() - t0


def load_curves(root: Path, modes: list[str], seeds: list[int]) -> dict[tuple[str, int], list[dict]]:
    from sdd_opt.rundir import read_curve

    return {(m, s): read_curve(run_dir(root, m, s) / "curve.csv") for m in modes for s in seeds}


def write_csv(curves: dict[tuple[str, int], list[dict]], path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CURVE_COLUMNS)
    for (mode, seed), rows in curves.items():
        retrain, point = parse_mode(mode)
        for r in rows:
            w.writerow([mode, retrain, 0 if point is None else point, seed, r["level"], f"{r['sparsity']:.6f}",
                        *(f"{r[c]:.4f}" for c in ("train_acc", "val_acc", "test_acc")), r["epochs"],
                        f"{r['seconds']:.1f}"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())


def curve_summary(rows: list[dict]) -> dict[str, Any]:
    """SDD metrics of one curve's test accuracy and its best test accuracy at >= 90 % sparsity."""
    from sdd_opt.curve import sdd_metrics

    m = sdd_metrics([r["sparsity"] for r in rows], [r["test_acc"] for r in rows])
    high = [r for r in rows if r["sparsity"] >= HIGH_SPARSITY]
    best = max(high, key=lambda r: (r["test_acc"], r["sparsity"])) if high else None
    return {"dense": m.dense_acc, "dip": m.dip_acc, "dip_sparsity": m.dip_sparsity, "peak": m.peak_acc,
            "peak_sparsity": m.peak_sparsity, "gap": m.sdd_gap, "sdd": m.sdd_gap >= SDD_GAP,
            "high": best["test_acc"] if best else float("nan"), "high_sparsity": best["sparsity"] if best else None,
            "epochs": sum(r["epochs"] for r in rows), "levels": len(rows)}


def _pm(xs: list[float]) -> str:
    xs = [x for x in xs if x == x]
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def _at(acc: float, sparsity: float | None) -> str:
    return "-" if sparsity is None or acc != acc else f"{acc:.3f} @ {100 * sparsity:.1f}%"


def summary(curves: dict[tuple[str, int], list[dict]], modes: list[str], seeds: list[int], header: str) -> str:
    """The Markdown summary: per curve, per mode (mean ± std over seeds), and the mean curves."""
    from benchmarks.common import table

    done = {k: curve_summary(v) for k, v in curves.items() if v}
    per_curve = [[m, s, f"{d['dense']:.3f}", _at(d["dip"], d["dip_sparsity"]), _at(d["peak"], d["peak_sparsity"]),
                  f"{d['gap']:.3f}", "yes" if d["sdd"] else "no", _at(d["high"], d["high_sparsity"]), d["epochs"]]
                 for (m, s), d in done.items()]
    per_mode = []
    for m in modes:
        ds = [done[(m, s)] for s in seeds if (m, s) in done]
        if ds:
            per_mode.append([m, len(ds), _pm([d["dense"] for d in ds]), _pm([d["gap"] for d in ds]),
                             f"{sum(d['sdd'] for d in ds)}/{len(ds)}", _pm([d["high"] for d in ds])])
    out = [header, "",
           table(["mode", "seed", "dense", "dip (test)", "peak (test)", "test sdd_gap", f"SDD (gap >= {SDD_GAP})",
                  f"best test at >= {HIGH_SPARSITY:.0%}", "epochs"], per_curve), "",
           table(["mode", "seeds", "dense test", "test sdd_gap", "SDD seeds", f"best test at >= {HIGH_SPARSITY:.0%}"],
                 per_mode), "", _mean_curves(curves, modes, seeds)]
    missing = [f"{m} seed {s}" for (m, s), v in curves.items() if not v]
    if missing:
        out += ["", f"not finished: {', '.join(missing)}"]
    return "\n".join(out) + "\n"


def _mean_curves(curves: dict[tuple[str, int], list[dict]], modes: list[str], seeds: list[int]) -> str:
    """Test accuracy per level, mean ± std over the seeds that reached it."""
    from benchmarks.common import table

    n = max((len(v) for v in curves.values()), default=0)
    rows = []
    for level in range(n):
        sp = [curves[k][level]["sparsity"] for k in curves if len(curves[k]) > level]
        rows.append([level, f"{statistics.mean(sp):.3f}"] + [
            _pm([curves[(m, s)][level]["test_acc"] for s in seeds if len(curves[(m, s)]) > level]) for m in modes])
    return table(["level", "sparsity", *modes], rows)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retrain_modes", description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", default=None, help=f"retrain modes, MODE[@EPOCH] (default {','.join(MODES)}; "
                   f"with --tiny {','.join(TINY_MODES)})")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="training seeds (default 0,1,2)")
    p.add_argument("--workers", type=int, default=2, help="curves trained at once, one torch thread each (default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:K; workers share the GPU (default cpu)")
    p.add_argument("--root", default="storage/retrain-modes",
                   help="run directories and data (default storage/retrain-modes)")
    p.add_argument("--out", default=None, help="folder of curves.csv and summary.md (default: --root)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per level instead of the demo's 40 (reduced)")
    p.add_argument("--levels", type=int, default=None, help="pruning levels instead of the demo's 7 (reduced)")
    p.add_argument("--tiny", action="store_true", help="synthetic data, 2 epochs, 2 levels: the pipeline in seconds")
    args = p.parse_args(argv)
    if args.modes is None:
        args.modes = ",".join(TINY_MODES if args.tiny else MODES)
    try:
        args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
        for m in args.mode_list:
            parse_mode(m)
        args.seed_list = [int(s) for s in args.seeds.split(",")]
    except ValueError as exc:
        p.error(f"--modes/--seeds: {exc}")
    if args.workers < 1:
        p.error("--workers: must be at least 1")
    if args.device != "cpu" and not (args.device == "cuda" or args.device[5:].isdigit() and args.device[:5] == "cuda:"):
        p.error(f"--device: expected cpu, cuda or cuda:K, got {args.device!r}")
    return args


def _train_all(jobs: list[tuple[str, int, argparse.Namespace]], workers: int) -> int:
    """Train the curves, ``workers`` processes at once; returns 130 when interrupted, else 0."""
    from benchmarks.pool import run_jobs

    t0 = time.perf_counter()

    def report(result) -> None:
        mode, seed, secs = result
        print(f"curve {next(count)}/{len(jobs)} done: {mode} seed {seed} in {secs:.0f}s "
              f"(elapsed {(time.perf_counter() - t0) / 60:.1f} min)", flush=True)

    count = iter(range(1, len(jobs) + 1))
    return run_jobs(_work, jobs, workers, report)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    root, out = Path(args.root), Path(args.out or args.root)
    from sdd_opt.errors import UserError

    try:  # every config is checked before anything trains
        cfgs = {(m, s): config(m, s, args) for m in args.mode_list for s in args.seed_list}
        if args.device.startswith("cuda"):
            from sdd_opt.train import resolve_device

            resolve_device(args.device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    first = next(iter(cfgs.values()))
    what = (f"{first.data.name} noise {first.data.noise}, {first.train.epochs} epochs per level, rate "
            f"{first.prune.rate}, {first.prune.n_levels} levels")
    print(f"{len(cfgs)} curves ({', '.join(args.mode_list)} x seeds {args.seeds}), {what}, "
          f"{args.workers} worker(s) on {args.device}", flush=True)
    t0 = time.perf_counter()
    rc = _train_all([(m, s, args) for (m, s) in cfgs], args.workers)
    if rc:
        return rc
    curves = load_curves(root, args.mode_list, args.seed_list)
    write_csv(curves, out / "curves.csv")
    reduced = args.tiny or args.epochs is not None or args.levels is not None
    fidelity = "REDUCED fidelity (--tiny/--epochs/--levels): not a measurement" if reduced else \
        "full fidelity (the base config of studies/mnist1d_demo.yaml)"
    header = (f"Retraining modes: {what}; {fidelity}. Test accuracy; "
              f"{(time.perf_counter() - t0) / 60:.1f} min with {args.workers} worker(s) on {args.device}.")
    text = summary(curves, args.mode_list, args.seed_list, header)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {out / 'curves.csv'} and {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
