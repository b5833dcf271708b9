"""Shared pieces of the benchmarks: timing that alternates the contenders, tables, data and models.

Every benchmark measures all its contenders in ONE process and interleaves them (rep 1: A B C,
rep 2: B C A, ...), so a machine shared with other work slows all of them alike and the ratios
stay fair even when the absolute times drift. Ratios are medians of the per-rep ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable, Iterable, Optional, Sequence

import torch


def add_common_args(p: argparse.ArgumentParser, *, reps: int = 5) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:K (default: cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--reps", type=int, default=reps, help=f"timed repetitions of each contender (default: {reps})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default="storage/data", help="dataset cache (default: storage/data)")


def setup(args: argparse.Namespace) -> torch.device:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("error: --device cuda requested but CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True
    return device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds taken by ``fn()``, with the device drained before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def alternate(runners: dict[str, Callable[[], object]], reps: int, device: torch.device) -> dict[str, list[float]]:
    """Time every runner ``reps`` times, rotating the order each rep; returns name -> seconds per rep."""
    names = list(runners)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(timed(runners[name], device))
    return out


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over reps of ``num[r] / den[r]`` (paired: both measured in the same rep)."""
    return median(a / b for a, b in zip(num, den))


def machine(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"CPU {cpu}, {os.cpu_count()} cores, {threads} torch threads (torch {torch.__version__}); "
            f"{load_average()} at start")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes straight into docs/performance.md)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        if c != c:
            return "-"
        if abs(c) >= 100:
            return f"{c:.1f}"
        if abs(c) >= 1:
            return f"{c:.3f}"
        return f"{c:.4f}"
    return str(c)


def int_list(text: object) -> list[int]:
    """``"1,2,4"`` (or one number) as ``[1, 2, 4]``: the worker counts of the scaling benchmarks."""
    return [int(w) for w in str(text).split(",") if w.strip()]


def parse_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``text``, each as a list of row dicts (used by the tests)."""
    split = lambda ln: [c.strip() for c in ln.strip().strip("|").split("|")]  # noqa: E731
    tables, block = [], []
    for ln in text.splitlines() + [""]:
        if ln.strip().startswith("|"):
            block.append(ln)
            continue
        if len(block) >= 2:
            headers = split(block[0])
            tables.append([dict(zip(headers, split(r))) for r in block[2:] if len(split(r)) == len(headers)])
        block = []
    return tables


def load_average() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def load_bench_data(name: str, data_dir: str, device: torch.device, *, seed: int = 0,
                    train_size: Optional[int] = None, augment: Optional[bool] = None):
    """The sdd-opt Dataset with no validation hold-out (every training sample is trained on)."""
    from sdd_opt.config import DataConfig
    from sdd_opt.data import load_data

    cfg = DataConfig(name=name, data_dir=data_dir, val_fraction=0.0, train_size=train_size, augment=augment)
    return load_data(cfg, seed).to(device)


def build(model: str, width: int, data, device: torch.device, seed: int = 0) -> torch.nn.Module:
    from sdd_opt.config import ModelConfig
    from sdd_opt.models import build_model

    torch.manual_seed(seed)
    return build_model(ModelConfig(name=model, width=width), data.input_shape, data.num_classes).to(device)


def level_masks(model: torch.nn.Module, density: float):
    """Global magnitude masks at ``density`` (what IMP would use at the matching level)."""
    from sdd_opt.prune import full_masks, magnitude_prune

    return magnitude_prune(model, full_masks(model), density, "global")


def state_copy(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
