"""Precision and torch.compile on the CPU: step time, whole-curve cost, and whether the curve changes.

(Written for the CPU defaults; ``--device cuda`` runs the same on a GPU, where ``bf16`` is what
``precision: auto`` picks.)

Part 1, step time: the MNIST-1D CNN training step (``train_model``, width 64, batch 128) in eager
fp32, ``torch.compile``, bf16 autocast and both, alternating in one process. The first call of
each is timed apart: for the compiled ones it holds the compilation (the warm-up).

Part 2, curves: short IMP curves (``run_curve``: ``--epochs`` epochs per level, ``--levels``
levels at ``--rate``) for every ``--curve-variants`` entry with each seed of ``--seeds``, the
variants alternating seed by seed. Reports each variant's whole-curve wall time (compile
warm-up included: the first curve of a compiled variant in this process pays it), how many graphs
torch.compile traced per level (does it re-trace at every level?), and compares the test-accuracy
curve with fp32: ``max |Δ mean|`` over levels (means over seeds) against the fp32 seed-to-seed
standard deviation. Verdict "within seed noise" when the largest shift is no larger than the
largest seed spread.

    python -m benchmarks.precision --reps 5 --epochs 20 --levels 8 --rate 0.4 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import common

STEP_VARIANTS = "fp32,fp32+compile,bf16,bf16+compile"
CURVE_VARIANTS = "fp32,bf16,fp32+compile,bf16+compile"


def _split(v: str) -> tuple[str, bool]:
    prec, plus, comp = v.strip().partition("+")
    if prec not in ("fp32", "bf16", "fp16") or (plus and comp != "compile"):
        raise SystemExit(f"error: cannot read variant {v!r} (expected fp32, bf16, fp32+compile, bf16+compile)")
    return prec, bool(plus)


def _graphs() -> int:
    try:
        from torch._dynamo.utils import counters
    except Exception:  # pragma: no cover - torch without dynamo
        return 0
    return int(counters["stats"]["unique_graphs"])


def run_config(args, seed: int, variant: str, epochs: int):
    from sdd_opt.config import load_config

    prec, comp = _split(variant)
    return load_config(None, [
        f"seed={seed}", f"data.name={args.data}", f"data.data_dir={args.data_dir}",
        f"data.train_size={args.train_size or 'null'}",
        f"model.width={args.width}", f"train.batch_size={args.batch_size}", f"train.epochs={epochs}",
        f"train.precision={prec}", f"train.compile={str(comp).lower()}", f"train.threads={args.threads}",
        f"train.device={args.device}", f"prune.levels={args.levels}", f"prune.rate={args.rate}",
    ])


def step_times(args, device: torch.device) -> tuple[list[list], list[str]]:
    from sdd_opt.data import load_data
    from sdd_opt.models import build_model
    from sdd_opt.train import steps_per_epoch, train_model

    variants = [v.strip() for v in args.step_variants.split(",") if v.strip()]
    cfg0 = run_config(args, args.seed, "fp32", args.step_epochs)
    data = load_data(cfg0.data, cfg0.seed).to(device)
    steps = args.step_epochs * steps_per_epoch(len(data.x_train), cfg0.train.batch_size)
    torch.manual_seed(args.seed)
    init = build_model(cfg0.model, data.input_shape, data.num_classes).to(device)
    init_state = common.state_copy(init)
    runners, first, graphs = {}, {}, {}
    for v in variants:
        torch.manual_seed(args.seed)
        model = build_model(cfg0.model, data.input_shape, data.num_classes).to(device)
        tcfg = run_config(args, args.seed, v, args.step_epochs).train

        def run(model=model, tcfg=tcfg):
            model.load_state_dict(init_state)
            train_model(model, data, tcfg, seed=args.seed)

        g0 = _graphs()
        first[v] = common.timed(run, device)
        graphs[v] = _graphs() - g0
        runners[v] = run
    g0 = _graphs()
    times = common.alternate(runners, args.reps, device)
    retraced = _graphs() - g0
    base = times[variants[0]]
    rows = []
    for v in variants:
        ms = [t / steps * 1e3 for t in times[v]]
        med = common.median(times[v])
        rows.append([v, common.median(ms), min(ms), common.median_ratio(base, times[v]), first[v],
                     max(first[v] - med, 0.0), graphs[v]])
    headers = ["variant", "ms/step (median)", "ms/step (min)", f"speed-up vs {variants[0]}", "first call s",
               "warm-up s (first - median)", "graphs traced"]
    print(f"### step time: {cfg0.model.name} (width {args.width}) on {args.data}, batch {args.batch_size}, "
          f"{steps} steps per timed call ({args.step_epochs} epoch), {args.reps} reps, alternating")
    print()
    print(common.table(headers, rows))
    print(f"\ngraphs traced during the timed reps (after warm-up): {retraced}")
    return rows, headers


def curves(args) -> dict:
    from sdd_opt.imp import run_curve

    variants = [v.strip() for v in args.curve_variants.split(",") if v.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    res = {v: {"acc": [], "sparsity": None, "seconds": [], "graphs": [], "level_s": []} for v in variants}
    with tempfile.TemporaryDirectory(prefix="sdd-precision-") as tmp:
        for i, seed in enumerate(seeds):
            k = i % len(variants)
            for v in variants[k:] + variants[:k]:
                cfg = run_config(args, seed, v, args.epochs)
                per_level = []
                last = [_graphs()]

                def on_level(row, per_level=per_level, last=last):
                    now = _graphs()
                    per_level.append(now - last[0])
                    last[0] = now

                g0 = _graphs()
                t0 = time.perf_counter()
                out = run_curve(cfg, Path(tmp) / f"{v}-{seed}", on_level=on_level, keep_checkpoints="last",
                                progress=False, log=lambda *_: None)
                r = res[v]
                r["seconds"].append(time.perf_counter() - t0)
                r["graphs"].append((_graphs() - g0, per_level))
                r["acc"].append([row["test_acc"] for row in out.rows])
                r["level_s"].append([row["seconds"] for row in out.rows])
                r["sparsity"] = [row["sparsity"] for row in out.rows]
    return {"variants": variants, "seeds": seeds, "res": res}


def _mean_std(cols: list[list[float]]) -> tuple[list[float], list[float]]:
    levels = list(zip(*cols))
    means = [statistics.fmean(a) for a in levels]
    stds = [statistics.stdev(a) if len(a) > 1 else float("nan") for a in levels]
    return means, stds


def report_curves(c: dict, args) -> tuple[list[list], list[str]]:
    variants, seeds, res = c["variants"], c["seeds"], c["res"]
    ref = variants[0]
    ref_mean, ref_std = _mean_std(res[ref]["acc"])
    max_std = max((s for s in ref_std if not math.isnan(s)), default=float("nan"))
    rows = []
    for v in variants:
        r = res[v]
        mean, _ = _mean_std(r["acc"])
        deltas = [abs(a - b) for a, b in zip(mean, ref_mean)]
        max_d = max(deltas)
        over = sum(d > s for d, s in zip(deltas, ref_std) if not math.isnan(s))
        if v == ref:
            verdict = "reference"
        elif math.isnan(max_std):
            verdict = "n/a (1 seed)"
        else:
            verdict = "within seed noise" if max_d <= max_std else "OUTSIDE seed noise"
        total_graphs, per_level = r["graphs"][0]
        later = [g for g, _ in r["graphs"][1:]]
        level_s = [statistics.median(ls[1:]) if len(ls) > 1 else float("nan") for ls in r["level_s"]]
        rows.append([v, common.median(r["seconds"]), r["seconds"][0],
                     common.median_ratio(res[ref]["seconds"], r["seconds"]),
                     statistics.median(ls[0] for ls in r["level_s"]), common.median(level_s),
                     f"{total_graphs} ({'/'.join(map(str, per_level))})", "/".join(map(str, later)) or "-",
                     max_d, statistics.fmean(deltas), f"{over}/{len(deltas)}", verdict])
    headers = ["variant", "curve s (median)", "first curve s", f"speed-up vs {ref}", "level 0 s", "later level s",
               "graphs traced, 1st curve (per level)", "graphs, later curves", "max abs Δ mean acc", "mean abs Δ mean "
                                                                                                     "acc",
               "levels with abs Δ > seed std", "verdict"]
    print(f"\n### curves: {args.epochs} epochs x {args.levels + 1} trainings (rate {args.rate}, up to "
          f"{res[ref]['sparsity'][-1]:.1%} sparsity), seeds {','.join(map(str, seeds))}, test accuracy on the clean "
          "test set")
    print(f"fp32 seed-to-seed std of test accuracy: max {max_std:.4f}, median "
          f"{common.median(s for s in ref_std if not math.isnan(s)):.4f} over levels")
    print()
    print(common.table(headers, rows))
    others = variants[1:]
    lv_headers = (["level", "sparsity"] + [f"{v} mean" for v in variants] + [f"{ref} std"]
                  + [f"{v} - {ref} per seed" for v in others])
    lv_rows = []
    means = {v: _mean_std(res[v]["acc"])[0] for v in variants}
    for i, sp in enumerate(res[ref]["sparsity"]):
        paired = ["/".join(f"{a[i] - b[i]:+.3f}" for a, b in zip(res[v]["acc"], res[ref]["acc"])) for v in others]
        lv_rows.append([i, sp] + [means[v][i] for v in variants] + [ref_std[i]] + paired)
    print("\nper level (test accuracy, mean over seeds; paired differences seed by seed, seeds "
          f"{','.join(map(str, seeds))}):\n")
    print(common.table(lv_headers, lv_rows))
    return rows, headers


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="mnist1d")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--step-variants", default=STEP_VARIANTS)
    p.add_argument("--step-epochs", type=int, default=1, help="epochs per timed call in part 1 (default: 1)")
    p.add_argument("--curve-variants", default=CURVE_VARIANTS, help="'' skips part 2; the first is the reference")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20, help="epochs per level in part 2 (default: 20)")
    p.add_argument("--levels", type=int, default=8, help="pruning levels in part 2 (default: 8)")
    p.add_argument("--rate", type=float, default=0.4, help="pruning rate in part 2 (default: 0.4)")
    common.add_common_args(p, reps=5)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = common.setup(args)
    print(f"## precision and compile on {args.data}/cnn1d")
    print(f"machine: {common.machine(device, args.threads)}")
    try:
        import torch._C as _C  # noqa: F401

        isa = torch.backends.cpu.get_cpu_capability()
    except Exception:
        isa = "unknown"
    print(f"CPU capability used by torch: {isa}; bf16 matmul/conv via oneDNN: {torch.backends.mkldnn.is_available()}")
    print()
    out: dict = {}
    if args.step_variants.strip():
        out["steps"] = step_times(args, device)
    if args.curve_variants.strip():
        c = curves(args)
        out["curves"] = report_curves(c, args)
        out["raw"] = c
    sys.stdout.flush()
    return out


if __name__ == "__main__":
    main()
