"""Search efficiency: how fast each sampler grows the accuracy/sparsity front.

Two modes. ``--replay TABLE`` serves trials from the recorded-curve table (full fidelity, every
sampler, 10-20 seeds in minutes; ``benchmarks/replay_search.py``), and ends with the verdict line
``auto/random epochs-to-target ratio R (median over N seeds), p=P``. Without it, it trains:

Runs the same reduced-fidelity MNIST-1D study (``studies/mnist1d_quick.yaml``'s search space:
l2 weight, distillation on/off with T and alpha, IMP rate; ``--epochs`` per level instead of 20)
once per sampler and sampler seed, each in its own SQLite file and run directory, through the
project's own study code (``Objective`` + ``work``: what ``sdd-opt study run`` does). The training
seed is the same in every study, so the samplers search one and the same objective; only the
sampler and its seed differ. The paper's points are not enqueued (they would help every sampler).

Fidelity knobs: ``--epochs`` per level (default 8), ``--target-sparsity`` (mnist1d_quick's 0.98) and
``--collapse-floor`` (mnist1d_quick's 0.5: a trial stops pruning once its val acc falls below it; at 8
epochs a dense net only reaches ~0.64, so many curves stop early and cheaply; ``none`` runs every
curve to the target). Reduced fidelity compares samplers on one cheap objective; it says nothing
about the antidote itself (docs/performance.md, section 5).

The studies run ``--jobs`` at a time in spawned processes, ``--threads`` torch threads each
(default 1, with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` to match, as ``study run --jobs`` does),
each in ``--storage-dir``/<sampler>-<seed>/ (``study.db`` and its runs; a temporary folder by
default; an existing one is resumed). Printed:

1. final hypervolume (HV) of each study, per seed and the median;
2. HV after k complete trials (median over seeds);
3. HV within an epoch budget (the epochs the trials trained, summed in trial order; below);
4. trials each sampler needs to reach random search's final HV: against the random study of the
   same seed, and against the median of random's final HVs.

HV is ``sdd_opt.study.pareto.hypervolume_history`` of each study: the project's one search measure
(the front of every level of the feasible trials, selected on validation accuracy, measured with
test accuracy over decades of weights removed; reference: the collapse floor and the dense model):
what ``sdd-opt report``, ``study status`` and the dashboard show. The epochs of
table 3 are what the search paid: each trial's ``epochs_trained`` (levels reused from an earlier
identical trial are free) plus the dense teacher's epochs when the trial trained one (the cache
serves later distillation trials of the same study). ``--out-csv`` writes one row per trial.

    python -m benchmarks.search_efficiency                                   # ~35-45 min on 2 idle cores
    python -m benchmarks.search_efficiency --samplers nsga2,random --seeds 0,1 --n-trials 16
    python -m benchmarks.search_efficiency --storage-dir storage/search-eff --out-csv search_eff.csv
    python -m benchmarks.search_efficiency --tiny                            # seconds (tests)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

from benchmarks import common

STUDY_FILE = "studies/mnist1d_quick.yaml"  # relative to the repository root, wherever this runs from
_STUDY_PATH = Path(__file__).resolve().parents[1] / STUDY_FILE
SAMPLERS = ("nsga2", "tpe", "random", "gp")
REPLAY_CONTENDERS = ("auto", "random", "random+sh", "tpe", "gp", "nsga2")
TINY_SET = ["data.name=synthetic1d", "model.width=8", "train.batch_size=64", "train.epochs=1",
            "prune.target_sparsity=null", "prune.levels=3"]


# -- pure helpers (unit-tested) -----------------------------------------------------------------

def trials_to_reach(history: Sequence[float], target: float, tol: float = 1e-12) -> Optional[int]:
    """1-based number of trials after which ``history`` first reaches ``target``; None if never."""
    for k, hv in enumerate(history):
        if hv >= target - tol:
            return k + 1
    return None


def hv_at_budget(history: Sequence[float], spent: Sequence[float], budget: float) -> float:
    """HV of the trials finished within ``budget`` epochs (0 before the first one)."""
    best = 0.0
    for hv, e in zip(history, spent):
        if e <= budget:
            best = hv
    return best


def cumulative(xs: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for x in xs:
        total += x
        out.append(total)
    return out


def _median(xs: Sequence[Optional[float]]) -> Optional[float]:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _count(x: float) -> object:
    """Counts print as integers (a median of two counts may be a half)."""
    return int(x) if float(x).is_integer() else float(x)


def _fmt_reach(k: Optional[int]) -> str:
    return "not reached" if k is None else str(k)


# -- one study ----------------------------------------------------------------------------------

def study_data(sampler: str, seed: int, args) -> dict:
    """The study file of one (sampler, seed) run: mnist1d_quick's space at reduced fidelity."""
    import yaml

    data = yaml.safe_load(_STUDY_PATH.read_text())
    data["name"] = f"search-efficiency-{sampler}-{seed}"
    data["sampler"] = {"name": sampler, "seed": seed}
    if sampler == "nsga2":
        data["sampler"]["population_size"] = args.population
    if sampler in ("tpe", "gp"):
        data["sampler"]["n_startup_trials"] = args.startup
    data["budget"] = {"n_trials": args.n_trials}
    if args.collapse_floor is not None:
        data["collapse_floor"] = None if args.collapse_floor == "none" else args.collapse_floor
    if args.tiny:  # random-label synthetic data sits below mnist1d_quick's collapse floor from level 0
        data["collapse_floor"] = None
    return data


def build_spec(sampler: str, seed: int, args):
    """The parsed study of one (sampler, seed) run (raises UserError on a bad override)."""
    from sdd_opt.study.spec import parse_study

    sets = [f"data.data_dir={args.data_dir}", f"train.epochs={args.epochs}"]
    if args.target_sparsity is not None:
        sets.append(f"prune.target_sparsity={args.target_sparsity}")
    sets += TINY_SET if args.tiny else []
    return parse_study(study_data(sampler, seed, args), str(_STUDY_PATH), sets, base_dir=_STUDY_PATH.parent)


def run_one(job: tuple) -> dict:
    """Run one study in this (pool) process; return its trials in order."""
    sampler, seed, args, workdir = job
    import optuna
    import torch
    from optuna.trial import TrialState

    from sdd_opt.study.objective import Objective
    from sdd_opt.study.pareto import hypervolume_history
    from sdd_opt.study.record import TrialRecord
    from sdd_opt.study.runner import create_or_resume, work
    from sdd_opt.study.storage import StorageSettings, open_storage

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    spec = build_spec(sampler, seed, args)
    home = Path(workdir) / f"{sampler}-{seed}"
    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home / 'study.db'}"
    storage = open_storage(url, StorageSettings(heartbeat_interval=None, log=lambda m: None))
    study = create_or_resume(spec, storage, url)
    objective = Objective(spec, home / "artifacts", device=args.device, threads=args.threads,
                          log=lambda m: None)
    t0 = time.perf_counter()
    work(study, objective, n_trials=args.n_trials, log=lambda m: None)
    wall = time.perf_counter() - t0
    names = spec.metric_names
    ia, isp = names.index("val_acc"), names.index("sparsity")
    done = sorted((t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE),
                  key=lambda t: t.number)
    # The project's own search measure (feasible trials only), in the same trial order as `done`.
    hist = hypervolume_history(study, spec)
    history = [float(h) if h is not None and h == h else 0.0 for h in hist["hypervolume"]] if len(hist) else []
    assert len(history) == len(done)
    if hasattr(storage, "engine"):  # --jobs 1 runs every study in this process: close each SQLite file
        storage.engine.dispose()
    return {"sampler": sampler, "seed": seed, "wall": wall, "history": history,
            "points": [(t.values[ia], t.values[isp]) for t in done],
            "trials": [{"trial": t.number, "val_acc": t.values[ia], "sparsity": t.values[isp],
                        "feasible": all(c <= 0 for c in t.user_attrs.get("constraints", [])),
                        "curve_epochs": float(TrialRecord.from_trial(t).curve_epochs or 0.0),
                        "seconds": float(t.user_attrs.get("seconds", float("nan")))} for t in done],
            "epochs": [TrialRecord.from_trial(t).paid_epochs for t in done],
            "failed": sum(t.state == TrialState.FAIL for t in study.get_trials(deepcopy=False))}


# -- report -------------------------------------------------------------------------------------

def checkpoints(n: int) -> list[int]:
    """Round trial counts for table 2 (5, 10, 15, 20, 24 for 24 trials), ending at ``n``."""
    if n < 1:
        return []
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 10 ** 9) if n / s <= 6)
    ks = list(range(step, n + 1, step))
    return ks if ks and ks[-1] == n else ks + [n]


def report(results: list[dict], samplers: list[str], seeds: list[int], args) -> dict:
    by = {(r["sampler"], r["seed"]): r for r in results}
    for r in results:
        r["spent"] = cumulative(r["epochs"])
        r["final"] = r["history"][-1] if r["history"] else 0.0

    rows = []
    for s in samplers:
        finals = [by[(s, sd)]["final"] for sd in seeds]
        rows.append([s, *finals, statistics.median(finals),
                     _count(statistics.median(len(by[(s, sd)]["points"]) for sd in seeds)),
                     _count(statistics.median(by[(s, sd)]["spent"][-1] if by[(s, sd)]["spent"] else 0 for sd in seeds)),
                     statistics.median(by[(s, sd)]["wall"] for sd in seeds)])
    print("### 1. final hypervolume (sdd_opt.study.pareto.hypervolume: the validation-selected front of all levels "
          "of the feasible trials, test accuracy x decades of weights removed)")
    print()
    print(common.table(["sampler", *[f"seed {sd}" for sd in seeds], "median", "complete trials",
                        "epochs trained (median)", "study wall s (median)"], rows))
    print()

    n = max(len(r["points"]) for r in results)
    ks = checkpoints(n)
    rows = [[s, *[_median([by[(s, sd)]["history"][k - 1] if len(by[(s, sd)]["history"]) >= k else None
                           for sd in seeds]) for k in ks]] for s in samplers]
    print("### 2. hypervolume after k complete trials (median over seeds)")
    print()
    print(common.table(["sampler", *[f"k={k}" for k in ks]], rows))
    print()

    most = max((r["spent"][-1] for r in results if r["spent"]), default=0.0)
    budgets = sorted({round(most * f) for f in (0.1, 0.25, 0.5, 0.75, 1.0)})
    rows = [[s, *[statistics.median(hv_at_budget(by[(s, sd)]["history"], by[(s, sd)]["spent"], b) for sd in seeds)
                  for b in budgets]] for s in samplers]
    print("### 3. hypervolume within an epoch budget (median over seeds; epochs = epochs_trained + teacher "
          "trainings, summed in trial order)")
    print()
    print(common.table(["sampler", *[f"{b} ep" for b in budgets]], rows))
    print()

    reach = {}
    if "random" in samplers:
        rand_med = statistics.median(by[("random", sd)]["final"] for sd in seeds)
        rows = []
        for s in samplers:
            same = [trials_to_reach(by[(s, sd)]["history"], by[("random", sd)]["final"]) for sd in seeds]
            med = [trials_to_reach(by[(s, sd)]["history"], rand_med) for sd in seeds]
            reach[s] = {"same_seed": same, "median_target": med}
            rows.append([s, " / ".join(_fmt_reach(k) for k in same),
                         _fmt_reach(_median(same)) if all(k is not None for k in same) else
                         f"{_fmt_reach(_median(same))} ({sum(k is None for k in same)} not reached)",
                         " / ".join(_fmt_reach(k) for k in med),
                         _count(statistics.median(len(by[(s, sd)]["points"]) for sd in seeds))])
        print(f"### 4. trials to reach random search's final hypervolume "
              f"(same seed's random study; and random's median final HV {rand_med:.4f})")
        print()
        print(common.table(["sampler", "trials, per seed (vs same-seed random)", "median",
                            "trials, per seed (vs random's median)", "trials run (median)"], rows))
        print()
    return {"results": results, "reach": reach}


# -- main ---------------------------------------------------------------------------------------

def _floor(text: str) -> object:
    """--collapse-floor: an accuracy, or 'none' to switch the early stop off."""
    if text.strip().lower() in ("none", "null", "off"):
        return "none"  # None means "not given": keep mnist1d_quick's floor
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an accuracy in [0, 1] or 'none', got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected an accuracy in [0, 1] or 'none', got {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search_efficiency", description=__doc__.split("\n\n")[0])
    p.add_argument("--replay", default=None, metavar="TABLE",
                   help="replay trials from a recorded-curve table (benchmarks/data/mnist1d_curves.csv) instead of "
                        "training: every sampler and many seeds in minutes (see benchmarks/replay_search.py)")
    p.add_argument("--study", default=None, help="with --replay: the study file (default studies/mnist1d_search.yaml)")
    p.add_argument("--rung-report", action="store_true",
                   help="with --replay: print the rank correlation of the halving score at each rung with each "
                        "curve's final value (how the rungs of successive_halving were chosen), then exit")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --replay: override a key of the study's base config (repeatable)")
    p.add_argument("--samplers", default=None,
                   help="comma list of nsga2,tpe,random,gp (default nsga2,tpe,random); with --replay: contenders "
                        "among auto,random,random+sh,tpe,gp,nsga2, each also with -cold (without the file's initial "
                        "trials; "
                        "default auto,random)")
    p.add_argument("--seeds", default="0,1,2", help="sampler seeds: a list (0,1,2; the default) or a range (0-9)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="complete trials per study (default 24: 9 studies fit ~45 min on 2 cores; --tiny: 3)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per pruning level (default 8; mnist1d_quick: 20)")
    p.add_argument("--target-sparsity", type=float, default=None, help="override mnist1d_quick's 0.98")
    p.add_argument("--collapse-floor", type=_floor, default=None, metavar="ACC|none",
                   help="stop a trial's pruning once val acc < ACC; 'none': never (default: mnist1d_quick's 0.5, which "
                        "cuts 8-epoch curves early: a dense 8-epoch net reaches ~0.64 val acc, 0.77 at 20 epochs)")
    p.add_argument("--population", type=int, default=6, help="NSGA-II population (default 6, as mnist1d_quick)")
    p.add_argument("--startup", type=int, default=8, help="TPE/GP random start-up trials (default 8)")
    p.add_argument("--jobs", type=int, default=2, help="studies run at once, one torch thread each (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per study (default 1)")
    p.add_argument("--device", default="cpu", help="training device of every study (default cpu)")
    p.add_argument("--data-dir", default="storage/data", help="dataset cache (default: storage/data)")
    p.add_argument("--storage-dir", "--workdir", dest="workdir", default=None,
                   help="keep the studies here, one <sampler>-<seed>/study.db (SQLite) and its runs each; an existing "
                        "one is resumed (default: a temporary folder, deleted at the end)")
    p.add_argument("--out-csv", default=None, help="also write one row per trial (HV and epochs so far) to this CSV")
    p.add_argument("--tiny", action="store_true",
                   help="synthetic data, width-8 model, 1 epoch, 3 pruning levels, 3 trials (seconds; tests)")
    args = p.parse_args(argv)
    from benchmarks.replay_search import COLD, parse_seeds

    if args.n_trials is None:
        args.n_trials = 80 if args.replay else 3 if args.tiny else 24
    allowed = REPLAY_CONTENDERS if args.replay else SAMPLERS
    default = "auto,random" if args.replay else "nsga2,tpe,random"
    args.sampler_list = [s.strip() for s in (args.samplers or default).split(",") if s.strip()]
    args.contenders = args.sampler_list
    bad = [s for s in args.sampler_list if s not in allowed and not (args.replay and s.endswith(COLD)
                                                                     and s[:-len(COLD)] in allowed)]
    if bad or not args.sampler_list:
        p.error(f"--samplers: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    try:
        args.seed_list = parse_seeds(args.seeds)
    except ValueError as exc:
        p.error(f"--seeds: {exc}")
    if min(args.n_trials, args.epochs, args.jobs, args.threads) < 1:
        p.error("--n-trials, --epochs, --jobs and --threads must be at least 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.replay:
        from benchmarks import replay_search

        return {"verdict": replay_search.main(args)}
    import torch

    from sdd_opt.errors import UserError

    try:  # check every study before any training starts: a bad option is one line, not a worker traceback
        for sampler in args.sampler_list:
            build_spec(sampler, args.seed_list[0], args)
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not args.tiny:  # generate / cache MNIST-1D once, before the workers race for it
        common.load_bench_data("mnist1d", args.data_dir, torch.device("cpu"))
    jobs = [(s, sd) for sd in args.seed_list for s in args.sampler_list]
    demo = study_data("random", 0, args)
    target = args.target_sparsity
    if target is None:
        target = demo.get("set", {}).get("prune.target_sparsity")
    print(f"## search efficiency: {STUDY_FILE} space, "
          f"{'tiny synthetic' if args.tiny else f'MNIST-1D, {args.epochs} epochs per level'}"
          f"{'' if args.tiny else f', target sparsity {target}'}, "
          f"collapse floor {demo.get('collapse_floor')}, {args.n_trials} trials per study, samplers "
          f"{', '.join(args.sampler_list)}, seeds {', '.join(map(str, args.seed_list))} (training seed fixed)")
    print(f"machine: {common.machine(torch.device(args.device), args.threads)}; {args.jobs} studies at a time")
    print()
    sys.stdout.flush()
    t0 = time.perf_counter()
    results = []

    def done(r: dict) -> None:
        results.append(r)
        print(f"  done: {r['sampler']} seed {r['seed']}: {len(r['points'])} trials ({r['failed']} failed), "
              f"{r['wall']:.0f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="sdd-search-eff-") as tmp:
        workdir = args.workdir or tmp
        payload = [(s, sd, args, workdir) for s, sd in jobs]
        if args.jobs == 1:
            for j in payload:
                done(run_one(j))
        else:
            # Spawned workers import torch afresh: give their OpenMP/MKL pools --threads too (as study run --jobs).
            with _thread_env(args.threads):
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(min(args.jobs, len(payload)), maxtasksperchild=1) as pool:
                    for r in pool.imap_unordered(run_one, payload):
                        done(r)
    print()
    out = report(results, args.sampler_list, args.seed_list, args)
    out["wall"] = time.perf_counter() - t0
    if args.out_csv:
        write_csv(results, args.out_csv)
        print(f"per-trial rows: {args.out_csv}")
    secs = [t["seconds"] for r in results for t in r["trials"]]
    per_trial = sum(r["wall"] for r in results) / max(len(secs), 1)
    print(f"(search_efficiency: {out['wall']:.0f} s wall for {len(secs)} complete trials in {len(jobs)} studies, "
          f"{args.jobs} at a time; {per_trial:.1f} s of study wall per trial, median {common.median(secs):.1f} s "
          f"of training per trial)")
    return out


@contextmanager
def _thread_env(threads: int):
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: str(threads) for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def write_csv(results: list[dict], path: str) -> None:
    """One row per complete trial: its point, its cost, and the study's HV and epochs so far."""
    import csv

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cols = ["sampler", "seed", "k", "trial", "val_acc", "sparsity", "feasible", "curve_epochs", "epochs_trained",
            "epochs_so_far", "hypervolume", "seconds"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in sorted(results, key=lambda r: (r["sampler"], r["seed"])):
            for k, (t, e, so_far, hv) in enumerate(zip(r["trials"], r["epochs"], r["spent"], r["history"]), start=1):
                w.writerow([r["sampler"], r["seed"], k, t["trial"], t["val_acc"], t["sparsity"], t["feasible"],
                            t["curve_epochs"], e, so_far, hv, t["seconds"]])


if __name__ == "__main__":
    main()
