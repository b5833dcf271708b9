"""Search efficiency on the recorded-curve table: every sampler, many seeds, in minutes.

``python -m benchmarks.search_efficiency --replay benchmarks/data/mnist1d_curves.csv --seeds 0-9 --n-trials 80``

Each (sampler, seed) is one study of ``--study`` (default ``studies/mnist1d_search.yaml``) run
through the project's own worker loop with :class:`sdd_opt.study.replay.ReplayObjective` on an
in-memory storage: trials are sampled exactly as in a real study and served from the table (the
nearest grid point), charged the epochs the real trial would cost. Seed k uses sampler seed k and
the table's training seed ``k mod (seeds in the table)``.

Contenders: ``auto`` is the study file as it is (its sampler, objective, successive-halving
rule and initial trials); ``random`` is plain random search on the same space, without halving or
initial trials -- the baseline; ``random+sh`` is random search with the file's halving rule (what
halving alone buys); any other sampler name (tpe, gp, nsga2) is that sampler with the file's
objective, halving rule and initial trials. A ``-cold`` suffix (``auto-cold``, ``gp-cold``) drops
the file's initial trials: what the initial design buys.

Measured (the one measure of :mod:`sdd_opt.study.pareto`): the hypervolume of the front over all
levels of all trials, selected on validation accuracy and measured on test accuracy, over decades
of weights removed, reference point (collapse floor, dense). The target of a seed is 95 % of the
hypervolume of *every* curve of the table for its training seed. Epochs-to-target: the epochs the
study paid until its measure first reached the target; a study that never reaches it counts every
epoch it paid. The verdict compares auto with random by a one-sided Mann-Whitney U test over seeds.
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

from benchmarks import common

DEFAULT_STUDY = Path(__file__).resolve().parents[1] / "studies" / "mnist1d_search.yaml"
TARGET_FRACTION = 0.95
COLD = "-cold"


def parse_seeds(text: str) -> list[int]:
    """'0-9' (a range, inclusive) or '0,3,5' (a list), or a mix: '0-2,7'."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep and lo.strip().lstrip("+").isdigit() and hi.strip().isdigit():
            a, b = int(lo), int(hi)
            if b < a:
                raise ValueError(f"range {part!r} runs backwards")
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    if not out or len(set(out)) != len(out):
        raise ValueError(f"expected distinct integers or ranges such as 0-9, got {text!r}")
    return out


def study_data(study_path: Path, contender: str, seed: int) -> dict:
    import yaml

    data = yaml.safe_load(study_path.read_text())
    data["name"] = f"replay-{contender}-{seed}"
    sampler = dict(data.get("sampler") or {})
    if contender.endswith(COLD):  # the contender without the file's initial trials
        contender = contender[:-len(COLD)]
        data.pop("initial_trials", None)
    if contender in ("random", "random+sh"):
        data.pop("initial_trials", None)
        sampler = {"name": "random"}
        if contender == "random":
            data.pop("successive_halving", None)
    elif contender != "auto":
        sampler = {"name": contender}
    sampler["seed"] = seed
    data["sampler"] = sampler
    data.pop("budget", None)
    return data


def build_spec(study_path: Path, contender: str, seed: int, table, sets: Sequence[str] = ()):
    from sdd_opt.study.spec import parse_study

    train_seed = table.seeds[seed % len(table.seeds)]
    return parse_study(study_data(study_path, contender, seed), str(study_path),
                       [f"seed={train_seed}", *sets], base_dir=study_path.parent)


def table_target(table, spec) -> float:
    """95 % of the measure over every curve of the table for the spec's training seed."""
    from sdd_opt.study.measure import measure_of

    m = measure_of(spec)
    pts = [p for key, rows in table.curves.items() if key[-1] == spec.base.seed for p in m.curve_points(rows)]
    return TARGET_FRACTION * m.hypervolume(pts)


PAPER_RATE, PAPER_MIN_SPARSITY = 0.2, 0.9


def hand_grid_epochs(spec) -> int:
    """What docs/reproduction.md's hand grid (studies/mnist1d_remedies.yaml) trains: 4 trials x 3 seeds x
    (dense + 20 levels) x 40 epochs, plus one distillation teacher per seed."""
    e = spec.base.train.epochs
    return 4 * 3 * 21 * e + 3 * e


def paper_points(table, spec) -> list[tuple[float, float]]:
    """(decades, test_acc) of the paper configs' levels at >= 90 % sparsity, for the spec's seed."""
    from sdd_opt.config import set_dotted
    from sdd_opt.study.measure import decades
    from sdd_opt.study.paper import POINTS

    out = []
    for values in POINTS.values():  # the paper's three configs (docs/reproduction.md), as grid points
        data = spec.base.describe()
        for k, v in {**values, "prune.rate": PAPER_RATE}.items():
            set_dotted(data, k, v)
        from sdd_opt.config import build_config

        point, _ = table.snap(build_config(data, source="paper"), {k for k, p in spec.search_space.items() if p.log})
        out += [(decades(r["sparsity"]), r["test_acc"]) for r in table.curve(point, spec.base.seed)
                if r["sparsity"] >= PAPER_MIN_SPARSITY]
    return out


def dominates_all(front: list[tuple[float, float, float]], targets: list[tuple[float, float]]) -> bool:
    """Every target (decades, test acc) is strictly dominated by a front point (val, decades, test)."""
    return all(any(z >= tz and t >= tt and (z > tz or t > tt) for _, z, t in front) for tz, tt in targets)


def run_one(job) -> dict:
    """One replayed study; returns its measure and epochs after each complete trial."""
    contender, seed, study_path, table_path, n_trials, sets = job
    import optuna

    from sdd_opt.study.measure import measure_of
    from sdd_opt.study.pareto import hypervolume_history, trial_points
    from sdd_opt.study.replay import CurveTable, ReplayObjective
    from sdd_opt.study.runner import create_or_resume, work

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = CurveTable.load(table_path)
    spec = build_spec(Path(study_path), contender, seed, table, sets)
    study = create_or_resume(spec, optuna.storages.InMemoryStorage())
    t0 = time.perf_counter()
    work(study, ReplayObjective(spec, table, log=lambda m: None), n_trials=n_trials, log=lambda m: None)
    hist = hypervolume_history(study, spec)
    paper, front, beat = paper_points(table, spec), [], None
    m = measure_of(spec)
    done = sorted(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number)
    for k, t in enumerate(done):
        front = m.front(front + trial_points(t, m))
        if beat is None and dominates_all(front, paper):
            beat = k
    return {"contender": contender, "seed": seed, "wall": time.perf_counter() - t0,
            "paper_epochs": float(hist["epochs"][beat]) if beat is not None else None,
            "hand_grid": hand_grid_epochs(spec),
            "hv": [float(h) if h == h and h is not None else 0.0 for h in hist["hypervolume"]],
            "epochs": [float(e) for e in hist["epochs"]], "target": table_target(table, spec),
            "stopped": sum(bool(t.user_attrs.get("stopped_early")) for t in study.get_trials(deepcopy=False))}


def epochs_to_target(r: dict, fraction: float = TARGET_FRACTION) -> tuple[float, Optional[int]]:
    """(epochs paid when the measure first reached ``fraction`` of the table's HV, trials then);
    never: (all epochs paid, None)."""
    target = r["target"] / TARGET_FRACTION * fraction
    for k, (hv, e) in enumerate(zip(r["hv"], r["epochs"]), start=1):
        if hv >= target - 1e-12:
            return e, k
    return (r["epochs"][-1] if r["epochs"] else 0.0), None


def mann_whitney_less(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value that ``a`` tends to be smaller than ``b``."""
    from scipy.stats import mannwhitneyu

    if len(set(a) | set(b)) == 1:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="less").pvalue)


def report(results: list[dict], contenders: list[str], seeds: list[int], n_trials: int) -> str:
    by = {(r["contender"], r["seed"]): r for r in results}
    reach = {c: [epochs_to_target(by[(c, s)]) for s in seeds] for c in contenders}
    rows = []
    for c in contenders:
        eps = [e for e, _ in reach[c]]
        trials = [k for _, k in reach[c] if k is not None]
        finals = [by[(c, s)]["hv"][-1] / by[(c, s)]["target"] * TARGET_FRACTION for s in seeds]
        rows.append([c, statistics.median(eps), min(eps), max(eps),
                     statistics.median(trials) if trials else "-", sum(k is None for _, k in reach[c]),
                     statistics.median(finals), statistics.median(by[(c, s)]["epochs"][-1] for s in seeds),
                     statistics.median(by[(c, s)]["stopped"] for s in seeds)])
    print(f"### epochs and trials to reach {TARGET_FRACTION:.0%} of the table's hypervolume "
          f"({len(seeds)} seeds, {n_trials} trials per study)")
    print()
    print(common.table(["contender", "epochs (median)", "min", "max", "trials (median, reached)", "not reached",
                        "final HV / table HV (median)", "epochs paid (median)", "trials stopped by halving"], rows))
    print()
    print(f"### the paper's three configs: epochs until the study's front (validation-selected, test accuracy) "
          f"strictly dominates every level of theirs at >= {PAPER_MIN_SPARSITY:.0%} sparsity; the hand grid of "
          f"docs/reproduction.md trains {results[0]['hand_grid']} epochs")
    print()
    rows = []
    for c in contenders:
        eps = [by[(c, s)]["paper_epochs"] for s in seeds]
        got = [e for e in eps if e is not None]
        rows.append([c, f"{len(got)}/{len(seeds)}", statistics.median(got) if got else "-",
                     sum(e < results[0]["hand_grid"] for e in got)])
    print(common.table(["contender", "seeds that dominate", "epochs (median of those)",
                        "seeds below the hand grid's epochs"], rows))
    print()
    print("### stricter targets: median epochs to reach a fraction of the table's hypervolume (not reached: "
          "every epoch paid), and how many seeds never did")
    print()
    fr = (0.97, 0.98, 0.99)
    rows = [[c, *[f"{statistics.median(epochs_to_target(by[(c, s)], f)[0] for s in seeds):.0f} "
                  f"({sum(epochs_to_target(by[(c, s)], f)[1] is None for s in seeds)})" for f in fr]]
            for c in contenders]
    if "auto" in contenders and "random" in contenders:
        def cmp(f):
            a = [epochs_to_target(by[("auto", s)], f)[0] for s in seeds]
            r = [epochs_to_target(by[("random", s)], f)[0] for s in seeds]
            return f"{statistics.median(a) / statistics.median(r):.3f} (p={mann_whitney_less(a, r):.4f})"
        rows.append(["auto/random", *[cmp(f) for f in fr]])
    print(common.table(["contender", *[f"{f:.0%}: epochs (not reached)" for f in fr]], rows))
    print()
    for c in contenders:
        print(f"{c}: epochs-to-target per seed: " + ", ".join(f"{e:.0f}" + ("" if k else "*") for e, k in reach[c]))
    print("(* never reached within the budget: counts every epoch the study paid)")
    print("seeds that never reached the target: " + ", ".join(f"{c} {sum(k is None for _, k in reach[c])}"
                                                            for c in contenders))
    if "auto" not in contenders or "random" not in contenders:
        return ""
    a, r = [e for e, _ in reach["auto"]], [e for e, _ in reach["random"]]
    ratio = statistics.median(a) / statistics.median(r) if statistics.median(r) else float("nan")
    line = (f"auto/random epochs-to-target ratio {ratio:.3f} (median over {len(seeds)} seeds), "
            f"p={mann_whitney_less(a, r):.4f}")
    print(line)
    return line


RUNGS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def rung_correlations(table, spec) -> list[list]:
    """Spearman rank correlation, over the table's curves of each training seed, between the halving
    rule's score at a rung and (a) the curve's final test hypervolume, (b) its final validation
    hypervolume (what curve_hv reports), (c) its contribution to the table's front (HV lost without it)."""
    from scipy.stats import spearmanr

    from sdd_opt.study.halving import rung_score
    from sdd_opt.study.measure import measure_of

    m = measure_of(spec)
    out = []
    for seed in table.seeds:
        curves = [rows for key, rows in table.curves.items() if key[-1] == seed]
        pts = [m.curve_points(r) for r in curves]
        total = m.hypervolume([p for c in pts for p in c])
        final_test = [m.hypervolume(c) for c in pts]
        final_val = [m.curve_hypervolume(r) for r in curves]
        contrib = [total - m.hypervolume([p for j, c in enumerate(pts) if j != i for p in c]) for i in range(len(pts))]
        for rung in RUNGS:
            score = [rung_score(r, rung, m) for r in curves]
            out.append([seed, f"{rung:.0%}",
                        *(float(spearmanr(score, y)[0]) for y in (final_test, final_val, contrib))])
    return out


def main(args) -> str:
    """Called by ``benchmarks.search_efficiency`` when ``--replay`` is given."""
    import multiprocessing

    from sdd_opt.errors import UserError
    from sdd_opt.study.replay import CurveTable

    study_path = Path(args.study) if args.study else DEFAULT_STUDY
    try:
        table = CurveTable.load(args.replay)
        for c in args.contenders:
            build_spec(study_path, c, args.seed_list[0], table, args.set)
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.rung_report:
        print("### rank correlation (Spearman) of the halving score at a rung with the curve's final value")
        print()
        print(common.table(["training seed", "rung (sparsity)", "final test HV", "final val HV (curve_hv)",
                            "contribution to the table's front"],
                           rung_correlations(table, build_spec(study_path, "auto", 0, table, args.set))))
        return ""
    print(f"## replayed search efficiency: {study_path.name} on {args.replay} ({len(table.points)} grid points, "
          f"training seeds {', '.join(map(str, table.seeds))}); contenders {', '.join(args.contenders)}; "
          f"seeds {args.seeds}; {args.n_trials} trials per study; {args.jobs} process(es)", flush=True)
    jobs = [(c, s, str(study_path), args.replay, args.n_trials, tuple(args.set)) for s in args.seed_list
            for c in args.contenders]
    t0 = time.perf_counter()
    if args.jobs == 1:
        results = [run_one(j) for j in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = list(pool.imap_unordered(run_one, jobs))
    print(f"({len(jobs)} studies in {time.perf_counter() - t0:.0f} s)")
    print()
    return report(results, args.contenders, args.seed_list, args.n_trials)
