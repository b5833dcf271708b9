"""Fewer epochs for the same answer? What the study's cost controls save, and what cheaper curves cost in fidelity.

Part A, epoch savings of a study. Runs a small study (by default ``studies/mnist1d_quick.yaml`` as
it is: 20 epochs per level, target sparsity 0.98, ``collapse_floor`` 0.5, 14 trials, the paper's
three points enqueued first) on a fresh SQLite file and a fresh teacher cache, in this process,
and counts for every trial the epochs actually trained against what they would have been

* without the **collapse early stop** (every planned level trained: ``prune.n_levels + 1``),
* without the **teacher cache** (every distillation run training its own dense teacher),
* without **run reuse** (a trial whose config repeats an earlier one trains it again instead of
  resuming its run directory),

and the three together. The epochs are counted where they are spent (each ``run_curve`` call:
levels found finished on disk vs levels trained, the teacher trained or loaded from the cache);
skipped levels are costed from the config (``train.epochs`` per level, less the rewind point).
``--storage URL --study NAME`` reads an existing study instead: then the trained levels come from
the trials' ``curve_seed<k>`` attributes and the teacher and reuse accounting is inferred from
the configs (the first run of a teacher key trains it, a run directory seen before is reused),
which the output says.

Part B, fidelity vs cost of one curve. Runs the MNIST-1D baseline (``studies/mnist1d_baseline.yaml``:
20% symmetric label noise, 20% pruned per level, 21 trainings) with every combination of
``--epochs-list`` (epochs per level) and ``--retrain-list`` (rewind / finetune / scratch) for each
seed of ``--seeds``, the variants alternating seed by seed so that a shared machine slows them
alike, and compares the seed-mean test-accuracy curve with the reference variant (``--reference``,
40 epochs with rewinding: the curve of docs/results.md): SDD metrics (``sdd_opt.curve.sdd_metrics``),
the max / mean absolute difference per level against the reference, and whether that difference is
within the reference's seed-to-seed spread.

    python -m benchmarks.fidelity --parts A --threads 1     # the quick study (mnist1d_quick) (~15-20 min)
    python -m benchmarks.fidelity --parts A --threads 1 --set prune.target_sparsity=0.995
    python -m benchmarks.fidelity --parts A --storage sqlite:///storage/sdd_opt.db --study mnist1d-search
    python -m benchmarks.fidelity --parts B --threads 1 --seeds 0,1            # 9 variants x 2 seeds (~45 min)
    python -m benchmarks.fidelity --parts B --threads 1 --grid axes --seeds 0,1,2
    python -m benchmarks.fidelity --tiny --threads 1                            # seconds (tests/test_bench_fidelity.py)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from benchmarks import common

RETRAINS = ("rewind", "finetune", "lr_rewind", "scratch")

# Defaults of the full size and of --tiny; a flag given on the command line wins over both.
FULL = {
    "study_file": "studies/mnist1d_quick.yaml", "n_trials": None, "collapse_floor": None,
    "config": "studies/mnist1d_baseline.yaml", "epochs_list": "10,20,40", "retrain_list": "rewind,finetune,scratch",
    "reference": "40:rewind", "seeds": "0,1", "levels": None, "target_sparsity": None,
}
TINY = {
    "study_file": "studies/mnist1d_quick.yaml", "n_trials": 5, "collapse_floor": 0.3,
    "config": "studies/mnist1d_baseline.yaml", "epochs_list": "1,2", "retrain_list": "rewind,finetune",
    "reference": "2:rewind", "seeds": "0,1", "levels": 2, "target_sparsity": None,
}
SKIPPED_HOW = ("skipped levels: (prune.n_levels + 1 - levels done) x epochs of a pruned level "
               "(measured, else from the config)")
# Tiny problem: the synthetic 1D set (generated in --data-dir), a narrow CNN, small batches.
TINY_SET = ["data.name=synthetic1d", "model.width=8", "train.batch_size=64"]
TINY_STUDY_SET = ["train.epochs=2", "prune.target_sparsity=null", "prune.levels=3"]


# ================================================================================================
# Part A: accounting (pure functions of what each run did)
# ================================================================================================

@dataclass
class RunRecord:
    """One seed's curve inside one trial, as far as cost is concerned."""

    trial: int
    seed: int
    remedy: str
    run_dir: str
    levels_planned: int                    # prune.n_levels + 1 trainings (dense first)
    level_epochs: list[int]                # epochs of every level the trial's curve holds
    pruned_level_epochs: int               # what one more (skipped) pruning level would have cost
    dense_epochs: int                      # what the dense level costs (level 0)
    reused_levels: int = 0                 # leading levels found finished on disk, not trained by this trial
    teacher: str = "none"                  # none | trained | cached | given (checkpoint / earlier run)
    teacher_epochs: int = 0                # epochs one training of this run's teacher takes
    stopped_early: bool = False
    level_seconds: list[float] = field(default_factory=list)


@dataclass
class Cost:
    """Epochs of one record: spent, and what each cost control saved."""

    trained: int          # level epochs trained by this run
    teacher: int          # teacher epochs trained by this run
    reused: int           # level epochs taken from a finished run directory (run reuse / resume)
    skipped: int          # level epochs the collapse early stop skipped (counted once per run directory)
    cache_saved: int      # teacher epochs the cache saved
    all_off: int          # epochs with none of the three cost controls
    seconds: float        # seconds of the trained levels

    @property
    def spent(self) -> int:
        return self.trained + self.teacher


def pruned_level_epochs(cfg, rows: Sequence[dict] = ()) -> int:
    """Epochs of one pruning level: the measured one when the curve has one, else from the config.

    Rewinding (weights or learning rate) to epoch k trains ``epochs - k`` epochs per pruned level; fine-tuning and
    re-initializing train the whole schedule again. (An iteration rewind point needs the data
    size; without a measured level it is costed as a whole schedule.)
    """
    pruned = [r["epochs"] for r in rows[1:]]
    if pruned:
        return int(pruned[-1])
    p, epochs = cfg.prune, cfg.train.epochs
    if p.retrain in ("rewind", "lr_rewind") and p.rewind_unit == "epoch":
        return epochs - p.rewind_to
    return epochs


def teacher_epochs(cfg) -> int:
    """Epochs of one training of the run's dense teacher (0 without distillation)."""
    from sdd_opt.distill import teacher_config

    return teacher_config(cfg).train.epochs if cfg.distill.enabled else 0


def teacher_kind(source: str) -> str:
    """Classify ``RunResult.teacher`` (``sdd_opt.distill.get_teacher``'s description)."""
    from sdd_opt.distill import teacher_origin

    return teacher_origin(source)


def account(records: Sequence[RunRecord]) -> list[Cost]:
    """The cost of every record, in order: a run directory's first record owns its skipped levels."""
    out, seen = [], set()
    for r in records:
        done = len(r.level_epochs)
        reused_n = min(max(r.reused_levels, 0), done)
        trained = sum(r.level_epochs[reused_n:])
        reused = sum(r.level_epochs[:reused_n])
        missing = max(r.levels_planned - done, 0)  # only the early stop leaves planned levels out of a finished run
        first = r.run_dir not in seen
        seen.add(r.run_dir)
        # Without early stop the run directory's first trial trains the missing levels; later ones reuse them.
        skipped = missing * r.pruned_level_epochs if first else 0
        teacher = r.teacher_epochs if r.teacher == "trained" else 0
        cache_saved = r.teacher_epochs if r.teacher == "cached" else 0
        full_curve = (r.dense_epochs + (r.levels_planned - 1) * r.pruned_level_epochs) if r.levels_planned else 0
        all_off = full_curve + (r.teacher_epochs if r.teacher in ("trained", "cached") else 0)
        seconds = sum(r.level_seconds[reused_n:]) if r.level_seconds else float("nan")
        out.append(Cost(trained, teacher, reused, skipped, cache_saved, all_off, seconds))
    return out


def percent(saved: float, total: float) -> float:
    """``saved`` as a percentage of ``total`` (the cost without the control); 0 when nothing was to be spent."""
    return 100.0 * saved / total if total > 0 else 0.0


def savings(costs: Sequence[Cost]) -> dict[str, dict[str, float]]:
    """Totals: for each cost control, epochs spent, epochs without it, saved and % saved."""
    spent = sum(c.spent for c in costs)
    parts = {
        "collapse early stop": sum(c.skipped for c in costs),
        "teacher cache": sum(c.cache_saved for c in costs),
        "run reuse": sum(c.reused for c in costs),
    }
    out = {}
    for name, saved in parts.items():
        out[name] = {"spent": spent, "without": spent + saved, "saved": saved, "pct": percent(saved, spent + saved)}
    without = max(sum(c.all_off for c in costs), spent)
    out["all three"] = {"spent": spent, "without": without, "saved": without - spent,
                        "pct": percent(without - spent, without)}
    return out


def seconds_per_epoch(costs: Sequence[Cost]) -> float:
    """Measured seconds per trained level epoch (evaluation included), for costing saved epochs."""
    pairs = [(c.seconds, c.trained) for c in costs if not math.isnan(c.seconds) and c.trained]
    epochs = sum(e for _, e in pairs)
    return sum(s for s, _ in pairs) / epochs if epochs else float("nan")


# ================================================================================================
# Part A: collecting the records (running a study, or reading one)
# ================================================================================================

class _Recording:
    """The objective with its ``run_curve`` wrapped, to see every call's work and the trial it ran for."""

    def __init__(self, objective_cls, *args, **kw):
        self.calls: list[dict] = []
        self.trial: Optional[int] = None
        self.objective = objective_cls(*args, run_curve=self._run_curve, **kw)

    def _run_curve(self, cfg, out_dir, **kw):
        from sdd_opt.imp import run_curve
        from sdd_opt.rundir import read_curve

        before = len(read_curve(Path(out_dir) / "curve.csv"))
        t0 = time.perf_counter()
        res = run_curve(cfg, out_dir, **kw)
        self.calls.append({"trial": self.trial, "cfg": cfg, "run_dir": str(out_dir), "before": before,
                           "res": res, "seconds": time.perf_counter() - t0})
        return res

    def __call__(self, trial, budget=None):
        self.trial = trial.number
        return self.objective(trial, budget=budget)


def _study_spec(args, overrides: list[str], cache_dir: Path):
    import yaml

    from sdd_opt.study.spec import parse_study

    path = Path(args.study_file)
    data = yaml.safe_load(path.read_text())
    data["name"] = f"fidelity-{data.get('name', 'study')}"
    if args.collapse_floor is not None:
        data["collapse_floor"] = args.collapse_floor
    # A fresh teacher cache: the savings are counted from an empty one, as a new study starts.
    return parse_study(data, str(path), overrides + [f"distill.teacher.cache_dir={cache_dir}"], base_dir=path.parent)


def run_study(args, workdir: Path) -> tuple[list[RunRecord], dict]:
    """Run the (reduced) study in this process and record what every ``run_curve`` call did."""
    from optuna.trial import TrialState

    from sdd_opt.study.objective import Objective, remedy_of
    from sdd_opt.study.paper import enqueue_paper_trials
    from sdd_opt.study.runner import create_or_resume, work
    from sdd_opt.study.storage import StorageSettings, open_storage

    overrides = [f"data.data_dir={args.data_dir}"] + args.base_set + args.study_set
    spec = _study_spec(args, overrides, workdir / "teachers")
    url = f"sqlite:///{workdir / 'fidelity.db'}"
    storage = open_storage(url, StorageSettings(heartbeat_interval=None, log=lambda m: None))
    study = create_or_resume(spec, storage, url)
    if not args.no_paper:
        enqueue_paper_trials(study, spec, log=lambda m: None)
    n_trials = args.n_trials or spec.file.budget.n_trials or 10

    def log(msg: str) -> None:
        if args.verbose or msg.startswith(("trial ", "collapse early stop")):
            print(f"  {msg}", flush=True)

    recording = _Recording(Objective, spec, workdir / "artifacts", device=args.device, threads=args.threads, log=log)
    t0 = time.perf_counter()
    res = work(study, recording, n_trials=n_trials, log=log)
    wall = time.perf_counter() - t0
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    records = []
    for c in recording.calls:
        t = by_number[c["trial"]]
        cfg, out = c["cfg"], c["res"]
        records.append(RunRecord(
            trial=t.number, seed=cfg.seed, remedy=remedy_of(cfg), run_dir=c["run_dir"],
            levels_planned=cfg.prune.n_levels + 1, level_epochs=[int(r["epochs"]) for r in out.rows],
            pruned_level_epochs=pruned_level_epochs(cfg, out.rows), dense_epochs=cfg.train.epochs,
            reused_levels=c["before"], teacher=teacher_kind(out.teacher), teacher_epochs=teacher_epochs(cfg),
            stopped_early=out.stopped_early, level_seconds=[float(r["seconds"]) for r in out.rows]))
    states = [t.state for t in study.get_trials(deepcopy=False)]
    info = {
        "mode": "run", "spec": spec, "wall": wall, "complete": states.count(TrialState.COMPLETE),
        "failed": states.count(TrialState.FAIL), "stop": res.stop,
        "how": ["levels trained / reused: counted at each run_curve call (curve rows found on disk before it vs after)",
                "teacher: RunResult.teacher of each call (trained, or loaded from the cache)",
                SKIPPED_HOW],
    }
    return records, info


def read_study(args) -> tuple[list[RunRecord], dict]:
    """Records of the COMPLETE trials of a stored study, from their attributes (teacher use and reuse inferred)."""
    from optuna.trial import TrialState

    from sdd_opt.config import build_config
    from sdd_opt.distill import teacher_key
    from sdd_opt.study.objective import remedy_of
    from sdd_opt.study.record import TrialRecord
    from sdd_opt.study.runner import load_stored
    from sdd_opt.study.storage import StorageSettings, open_storage

    storage = open_storage(args.storage, StorageSettings(heartbeat_interval=None, log=lambda m: None))
    study, spec = load_stored(args.study, storage)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    records, teachers, dirs, measured = [], set(), {}, 0
    for t in complete:
        rec = TrialRecord.from_trial(t)
        recorded = {c["seed"]: c for c in rec.cost}  # trials of sdd-opt >= session 2 record it
        cfg0 = build_config(rec.config, source=f"trial {t.number}")
        run_dirs = rec.run_dirs
        for i, seed in enumerate(rec.seeds or [cfg0.seed]):
            cfg = cfg0.model_copy(deep=True)
            cfg.seed = seed
            rows = rec.seed_curves.get(seed) or (rec.curve if i == 0 else None) or []
            run_dir = run_dirs[i] if i < len(run_dirs) else f"trial{t.number}-seed{seed}"
            kind = "none"
            if cfg.distill.enabled:
                tc = cfg.distill.teacher
                if tc.checkpoint or tc.run:
                    kind = "given"
                else:
                    key = teacher_key(cfg)
                    kind = "cached" if key in teachers else "trained"
                    teachers.add(key)
            reused = dirs.get(run_dir, 0)
            dirs[run_dir] = max(reused, len(rows))
            if seed in recorded:  # measured by the objective: use it instead of the inference
                kind, reused = recorded[seed]["teacher"], recorded[seed]["levels_reused"]
                measured += 1
            records.append(RunRecord(
                trial=t.number, seed=seed, remedy=rec.remedy or remedy_of(cfg), run_dir=run_dir,
                levels_planned=cfg.prune.n_levels + 1, level_epochs=[int(r["epochs"]) for r in rows],
                pruned_level_epochs=pruned_level_epochs(cfg, rows), dense_epochs=cfg.train.epochs,
                reused_levels=reused, teacher=kind, teacher_epochs=teacher_epochs(cfg),
                stopped_early=bool(rec.stopped_early),
                level_seconds=[float(r.get("seconds", math.nan)) for r in rows]))
    states = [t.state for t in trials]
    if records and measured == len(records):
        how = ["levels: the trials' curve_seed<k> attributes (COMPLETE trials only; failed trials' epochs are not "
               "counted)",
               "teacher and run reuse: recorded by each trial (its 'cost' attribute)", SKIPPED_HOW]
    else:
        how = None
    info = {
        "mode": "read", "spec": spec, "wall": float("nan"), "complete": len(complete),
        "failed": states.count(TrialState.FAIL), "stop": "",
        "how": ["levels: the trials' curve_seed<k> attributes (COMPLETE trials only; failed trials' epochs are not "
                "counted)",
                "teacher: INFERRED from the configs (trials record no teacher source): the first run of each teacher "
                "key trains it, later ones load it, assuming the cache was empty when the study started",
                "run reuse: INFERRED: a run directory already used by an earlier trial is resumed, not retrained",
                SKIPPED_HOW] if how is None else how,
    }
    return records, info


def report_savings(records: list[RunRecord], info: dict, args) -> dict:
    spec = info["spec"]
    costs = account(records)
    sums = savings(costs)
    spe = seconds_per_epoch(costs)
    by_trial: dict[int, list[tuple[RunRecord, Cost]]] = {}
    for r, c in zip(records, costs):
        by_trial.setdefault(r.trial, []).append((r, c))
    rows = []
    for n, items in sorted(by_trial.items()):
        rs, cs = [r for r, _ in items], [c for _, c in items]
        rows.append([n, rs[0].remedy, ",".join(str(r.seed) for r in rs),
                     "/".join(f"{len(r.level_epochs)}/{r.levels_planned}" for r in rs),
                     "yes" if any(r.stopped_early for r in rs) else "no",
                     "/".join(r.teacher for r in rs), sum(c.trained for c in cs), sum(c.teacher for c in cs),
                     sum(c.spent for c in cs), sum(c.skipped for c in cs), sum(c.cache_saved for c in cs),
                     sum(c.reused for c in cs), sum(c.all_off for c in cs)])
    rows.append(["all", "", "", "", f"{sum(any(r.stopped_early for r, _ in it) for it in by_trial.values())} trials",
                 f"{sum(r.teacher == 'trained' for r in records)} trained",
                 sum(c.trained for c in costs), sum(c.teacher for c in costs), sum(c.spent for c in costs),
                 sum(c.skipped for c in costs), sum(c.cache_saved for c in costs), sum(c.reused for c in costs),
                 sum(c.all_off for c in costs)])
    headers = ["trial", "remedy", "seeds", "levels done/planned", "stopped early", "teacher", "level epochs trained",
               "teacher epochs trained", "epochs spent", "epochs skipped (early stop)", "teacher epochs saved (cache)",
               "epochs reused (run reuse)", "epochs with no cost control"]
    floor = spec.base.prune.collapse_floor
    source = f"study {args.study!r} in {args.storage}" if info["mode"] == "read" else \
        f"{args.study_file} run here ({len(by_trial)} trials, {info['wall']:.0f} s)"
    print(f"### epoch savings: {source}")
    print(f"collapse_floor {floor}; {spec.file.repeats} seed(s) per trial; {info['complete']} complete, "
          f"{info['failed']} failed trials; train.epochs {spec.base.train.epochs} in the base config")
    print()
    print(common.table(headers, rows))
    srows = []
    labels = {"collapse early stop": f"collapse early stop (collapse_floor {floor})", "teacher cache": "teacher cache",
              "run reuse": "run reuse (repeated configs, resumed trials)", "all three": "all three"}
    for name, s in sums.items():
        srows.append([labels[name], int(s["spent"]), int(s["without"]), int(s["saved"]), s["pct"], s["saved"] * spe])
    sheaders = ["cost control", "epochs spent", "epochs without it", "epochs saved", "% saved", "≈ s saved"]
    print(f"\n### what each cost control saved (epochs; seconds at the measured {spe:.3f} s per level epoch)\n")
    print(common.table(sheaders, srows))
    print("\nhow the numbers were obtained:")
    for line in info["how"]:
        print(f"* {line}")
    if floor is None:
        print("* the study has no collapse_floor: the early stop never fires (pass --collapse-floor F)")
    sys.stdout.flush()
    return {"trials": (headers, rows), "savings": (sheaders, srows), "sums": sums, "records": records}


def part_a(args) -> dict:
    if args.storage or args.study:
        if not (args.storage and args.study):
            raise SystemExit("error: --storage and --study go together (read an existing study)")
        records, info = read_study(args)
        return report_savings(records, info, args)
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        records, info = run_study(args, workdir)
        out = report_savings(records, info, args)
        print(f"\nthe study is kept: --storage sqlite:///{workdir / 'fidelity.db'} --study {info['spec'].name}")
        return out
    with tempfile.TemporaryDirectory(prefix="sdd-fidelity-") as tmp:
        records, info = run_study(args, Path(tmp))
        return report_savings(records, info, args)


# ================================================================================================
# Part B: fidelity vs cost of one curve
# ================================================================================================

def parse_variant(text: str) -> tuple[int, str]:
    """``"40:rewind"`` -> (40, "rewind")."""
    e, _, r = text.strip().partition(":")
    try:
        epochs = int(e)
    except ValueError:
        raise SystemExit(f"error: cannot read variant {text!r} (expected EPOCHS:RETRAIN, e.g. 40:rewind)") from None
    if epochs < 1 or r not in RETRAINS:
        raise SystemExit(f"error: cannot read variant {text!r} (epochs >= 1, retrain one of {', '.join(RETRAINS)})")
    return epochs, r


def variants(epochs_list: Sequence[int], retrain_list: Sequence[str], grid: str,
             reference: tuple[int, str]) -> list[tuple[int, str]]:
    """The variants to run, the reference first. ``cross``: every pair; ``axes``: one factor at a time."""
    for e in epochs_list:
        if e < 1:
            raise SystemExit(f"error: --epochs-list: epochs per level must be at least 1, got {e}")
    for r in retrain_list:
        if r not in RETRAINS:
            raise SystemExit(f"error: --retrain-list: unknown {r!r} (choose from {', '.join(RETRAINS)})")
    ref_e, ref_r = reference
    if grid == "cross":
        pairs = [(e, r) for r in retrain_list for e in epochs_list]
    else:
        pairs = [(e, ref_r) for e in epochs_list] + [(ref_e, r) for r in retrain_list]
    out = [reference]
    for p in pairs:
        if p not in out:
            out.append(p)
    return out


def seed_mean(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Per-level mean and sample std over seeds (levels every seed reached; std NaN with one seed)."""
    n = min(len(c) for c in curves)
    cols = [[c[i] for c in curves] for i in range(n)]
    return ([statistics.fmean(a) for a in cols],
            [statistics.stdev(a) if len(a) > 1 else float("nan") for a in cols])


def curve_diff(acc: Sequence[float], ref: Sequence[float]) -> tuple[float, float]:
    """(max, mean) absolute difference per level over the levels both curves have."""
    n = min(len(acc), len(ref))
    if n == 0:
        raise ValueError("curve_diff needs two non-empty curves")
    d = [abs(a - b) for a, b in zip(acc[:n], ref[:n])]
    return max(d), statistics.fmean(d)


def verdict(max_diff: float, ref_std: Sequence[float], is_ref: bool) -> str:
    """Is the largest shift against the reference inside the reference's largest seed spread?"""
    if is_ref:
        return "reference"
    stds = [s for s in ref_std if not math.isnan(s)]
    if not stds:
        return "n/a (1 seed)"
    return "within seed noise" if max_diff <= max(stds) else "OUTSIDE seed noise"


def _label(v: tuple[int, str]) -> str:
    return f"{v[0]} ep {v[1]}"


def curve_config(args, seed: int, epochs: int, retrain: str):
    from sdd_opt.config import load_config

    overrides = [f"seed={seed}", f"data.data_dir={args.data_dir}", f"train.threads={args.threads}",
                 f"train.device={args.device}"] + args.base_set
    if args.levels is not None:
        overrides += [f"prune.levels={args.levels}", "prune.target_sparsity=null"]
    if args.target_sparsity is not None:
        overrides.append(f"prune.target_sparsity={args.target_sparsity}")
    if args.rate is not None:
        overrides.append(f"prune.rate={args.rate}")
    overrides += [f"train.epochs={epochs}", f"prune.retrain={retrain}"]
    return load_config(args.config, overrides)


def run_curves(args, vs: list[tuple[int, str]], seeds: list[int]) -> dict:
    """Every variant for every seed, alternating the order seed by seed."""
    from sdd_opt.imp import run_curve

    res = {v: {"acc": [], "sparsity": None, "seconds": [], "epochs": [], "cfg": None} for v in vs}
    with tempfile.TemporaryDirectory(prefix="sdd-fidelity-b-") as tmp:
        for i, seed in enumerate(seeds):
            k = i % len(vs)
            for v in vs[k:] + vs[:k]:
                cfg = curve_config(args, seed, *v)
                t0 = time.perf_counter()
                out = run_curve(cfg, Path(tmp) / f"{v[0]}-{v[1]}-{seed}", keep_checkpoints="last", progress=False,
                                log=(lambda m: print(f"    {m}", flush=True)) if args.verbose else (lambda m: None))
                dt = time.perf_counter() - t0
                r = res[v]
                r["seconds"].append(dt)
                r["acc"].append([row["test_acc"] for row in out.rows])
                r["epochs"].append(sum(int(row["epochs"]) for row in out.rows))
                r["sparsity"] = r["sparsity"] or [row["sparsity"] for row in out.rows]
                r["cfg"] = cfg
                print(f"  {_label(v)}, seed {seed}: {len(out.rows)} levels, {r['epochs'][-1]} epochs, {dt:.1f} s",
                      flush=True)
    return res


def report_fidelity(res: dict, vs: list[tuple[int, str]], seeds: list[int], args) -> dict:
    from sdd_opt.curve import sdd_metrics

    ref = vs[0]
    ref_mean, ref_std = seed_mean(res[ref]["acc"])
    ref_epochs = common.median(res[ref]["epochs"])
    stds = [s for s in ref_std if not math.isnan(s)]
    means, metrics, rows = {}, {}, []
    for v in vs:
        r = res[v]
        mean, _ = seed_mean(r["acc"])
        means[v] = mean
        a = r["cfg"].analysis
        m = sdd_metrics(r["sparsity"][:len(mean)], mean, a.sdd_threshold, a.epsilon)
        metrics[v] = m
        max_d, mean_d = curve_diff(mean, ref_mean)
        epochs = common.median(r["epochs"])
        rows.append([_label(v), v[0], v[1], int(epochs), epochs / ref_epochs, common.median(r["seconds"]),
                     m.dense_acc, m.dip_acc, m.dip_sparsity, m.peak_acc, m.peak_sparsity, m.sdd_gap,
                     "yes" if m.sdd_present else "no", m.best_acc, m.best_sparsity,
                     m.best_sparsity - metrics[ref].best_sparsity, max_d, mean_d, verdict(max_d, ref_std, v == ref)])
    headers = ["variant", "epochs/level", "retrain", "epochs spent", "cost vs ref", "curve s (median)", "dense acc",
               "dip acc", "dip sparsity", "peak acc", "peak sparsity", "sdd_gap", "sdd_present", "best acc",
               "best sparsity", "Δ best sparsity vs ref", "max abs Δ acc vs ref", "mean abs Δ acc vs ref", "verdict"]
    cfg = res[ref]["cfg"]
    print(f"\n### fidelity vs cost: {cfg.data.name} ({cfg.data.noise:.0%} {cfg.data.noise_kind} noise), "
          f"{cfg.model.name} "
          f"width {cfg.model.width}, rate {cfg.prune.rate}, {cfg.prune.n_levels + 1} trainings (up to "
          f"{res[ref]['sparsity'][-1]:.1%} sparsity), seeds {','.join(map(str, seeds))}; reference {_label(ref)}")
    print("test accuracy (clean test set), mean over seeds; SDD metrics of the mean curve; per-curve epochs and "
          "wall seconds (median over seeds)")
    if stds:
        print(f"reference seed-to-seed std of test accuracy: max {max(stds):.4f}, "
              f"median {common.median(stds):.4f} over levels")
    print()
    print(common.table(headers, rows))
    lv_headers = ["level", "sparsity"] + [_label(v) for v in vs] + [f"{_label(ref)} std"]
    n = min(len(m) for m in means.values())
    lv_rows = [[i, res[ref]["sparsity"][i]] + [means[v][i] for v in vs] + [ref_std[i]] for i in range(n)]
    print("\nper level (test accuracy, mean over seeds):\n")
    print(common.table(lv_headers, lv_rows))
    sys.stdout.flush()
    return {"variants": (headers, rows), "levels": (lv_headers, lv_rows), "metrics": metrics}


def part_b(args) -> dict:
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    if not seeds:
        raise SystemExit("error: --seeds needs at least one seed")
    epochs_list = [int(e) for e in str(args.epochs_list).split(",") if e.strip()]
    retrain_list = [r.strip() for r in str(args.retrain_list).split(",") if r.strip()]
    vs = variants(epochs_list, retrain_list, args.grid, parse_variant(args.reference))
    total = sum(e for e, _ in vs) * len(seeds)
    print(f"\n{len(vs)} variants x {len(seeds)} seed(s): {total} epochs per level in all "
          f"(x the number of levels)", flush=True)
    res = run_curves(args, vs, seeds)
    return report_fidelity(res, vs, seeds, args)


# ================================================================================================

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="A,B",
                   help="A (epoch savings of a study), B (fidelity vs cost of a curve); default A,B")
    p.add_argument("--tiny", action="store_true", help="seconds: synthetic data, tiny model and epochs (for the tests)")
    p.add_argument("--set", dest="base_set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a run-config key in both parts (repeatable)")
    p.add_argument("--verbose", action="store_true", help="print every level")
    a = p.add_argument_group("part A (epoch savings)")
    a.add_argument("--study-file", default=None, help=f"study to run (default: {FULL['study_file']})")
    a.add_argument("--n-trials", type=int, default=None, help="complete trials (default: the study's budget)")
    a.add_argument("--collapse-floor", type=float, default=None, help="replace the study's collapse_floor")
    a.add_argument("--no-paper", action="store_true", help="do not enqueue the paper's three points first")
    a.add_argument("--workdir", default=None, help="keep the study's database and artifacts here (default: a temp dir)")
    a.add_argument("--storage", default=None, metavar="URL", help="read an existing study from this storage instead")
    a.add_argument("--study", default=None, metavar="NAME", help="... with this name")
    b = p.add_argument_group("part B (fidelity vs cost)")
    b.add_argument("--config", default=None, help=f"run config of the curve (default: {FULL['config']})")
    b.add_argument("--epochs-list", default=None, help=f"epochs per level (default: {FULL['epochs_list']})")
    b.add_argument("--retrain-list", default=None, help=f"retrain modes (default: {FULL['retrain_list']})")
    b.add_argument("--grid", choices=["cross", "axes"], default="cross",
                   help="cross: every epochs x retrain pair (default); axes: one factor at a time around the reference")
    b.add_argument("--reference", default=None, help=f"EPOCHS:RETRAIN of the reference (default: {FULL['reference']})")
    b.add_argument("--seeds", default=None, help=f"seeds of each variant (default: {FULL['seeds']})")
    b.add_argument("--levels", type=int, default=None, help="pruning levels (default: the config's, 20)")
    b.add_argument("--target-sparsity", type=float, default=None, help="levels = fewest reaching this sparsity")
    b.add_argument("--rate", type=float, default=None, help="pruning rate (default: the config's, 0.2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:K (default: cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2; use 1 on a shared machine)")
    p.add_argument("--data-dir", default="storage/data", help="dataset cache (default: storage/data)")
    args = p.parse_args(argv)
    defaults = TINY if args.tiny else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.study_set = list(TINY_STUDY_SET) if args.tiny else []
    if args.tiny:
        args.base_set = TINY_SET + args.base_set
    args.parts = {s.strip().upper() for s in args.parts.split(",") if s.strip()}
    if not args.parts or args.parts - {"A", "B"}:
        p.error("--parts: A, B or A,B")
    return args


def main(argv=None) -> dict:
    import warnings

    warnings.filterwarnings("ignore", message=r".*experimental.*")
    args = parse_args(argv)
    device = common.setup(args)
    print(f"## fidelity: fewer epochs for the same answer{' (tiny)' if args.tiny else ''}")
    print(f"machine: {common.machine(device, args.threads)}")
    print(flush=True)
    out: dict = {}
    t0 = time.perf_counter()
    from sdd_opt.errors import UserError

    try:  # a bad --set / --study-file / --config is the user's mistake: one line, no traceback
        if "A" in args.parts:
            out["A"] = part_a(args)
        if "B" in args.parts:
            out["B"] = part_b(args)
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"\n(fidelity: {time.perf_counter() - t0:.0f} s)")
    sys.stdout.flush()
    return out


if __name__ == "__main__":
    main()
