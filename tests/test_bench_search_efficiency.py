"""benchmarks/search_efficiency.py: its HV bookkeeping on hand-made points, then the benchmark at --tiny size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# benchmarks/ sits beside sdd_opt/ and is not installed: a bare `pytest` needs the repository root on the path.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import search_efficiency as se  # noqa: E402
from benchmarks.common import parse_tables  # noqa: E402


def test_trials_to_reach_and_epoch_budgets():
    hist = [0.1, 0.3, 0.3, 0.5]
    assert se.trials_to_reach(hist, 0.3) == 2
    assert se.trials_to_reach(hist, 0.5) == 4
    assert se.trials_to_reach(hist, 0.51) is None
    assert se.trials_to_reach([], 0.0) is None
    spent = se.cumulative([10, 5, 5, 20])
    assert spent == [10, 15, 20, 40]
    assert se.hv_at_budget(hist, spent, 9) == 0.0
    assert se.hv_at_budget(hist, spent, 15) == 0.3
    assert se.hv_at_budget(hist, spent, 39.9) == 0.3
    assert se.hv_at_budget(hist, spent, 40) == 0.5


def test_checkpoints_are_round_and_end_at_the_last_trial():
    assert se.checkpoints(24) == [5, 10, 15, 20, 24]
    assert se.checkpoints(30) == [5, 10, 15, 20, 25, 30]
    assert se.checkpoints(3) == [1, 2, 3]
    assert se.checkpoints(0) == []


def test_study_data_varies_only_the_sampler_and_the_fidelity_knobs():
    a = se.study_data("nsga2", 1, se.parse_args([]))
    b = se.study_data("random", 2, se.parse_args(["--collapse-floor", "none"]))
    assert a["sampler"] == {"name": "nsga2", "seed": 1, "population_size": 6}
    assert b["sampler"] == {"name": "random", "seed": 2}
    assert a["search_space"] == b["search_space"] and a["base"] == b["base"]  # one objective for every sampler
    assert a["budget"] == {"n_trials": 24}
    assert a["collapse_floor"] == 0.5 and b["collapse_floor"] is None
    assert se.study_data("tpe", 0, se.parse_args(["--collapse-floor", "0.3"]))["collapse_floor"] == 0.3
    assert se.study_data("tpe", 0, se.parse_args(["--startup", "5"]))["sampler"]["n_startup_trials"] == 5


def test_tiny_run_prints_consistent_tables(tmp_path, capsys):
    import csv

    import optuna

    from sdd_opt.study.pareto import hypervolume
    from sdd_opt.study.runner import load_stored

    n = 3
    out = se.main(["--tiny", "--jobs", "1", "--seeds", "0,1", "--samplers", "nsga2,random",
                   "--data-dir", str(tmp_path / "data"), "--storage-dir", str(tmp_path / "work"),
                   "--out-csv", str(tmp_path / "trials.csv")])
    text = capsys.readouterr().out
    assert text.startswith("## search efficiency") and "machine: " in text and "s wall" in text
    assert "validation-selected front of all levels" in text
    tables = parse_tables(text)
    assert len(tables) == 4
    finals, by_k, by_epochs, reach = tables
    assert [r["sampler"] for r in finals] == ["nsga2", "random"]
    assert len(out["results"]) == 4
    for res in out["results"]:
        assert len(res["points"]) == n == len(res["history"]) == len(res["epochs"])  # --tiny defaults to 3 trials
        assert all(b >= a for a, b in zip(res["history"], res["history"][1:]))  # HV never shrinks
        assert all(e > 0 for e in res["epochs"])  # nothing to reuse in a fresh study with 3 distinct trials
        assert res["final"] > 0
        # The history is the project's measure of each prefix of the trials the study's SQLite file holds.
        key = f"{res['sampler']}-{res['seed']}"
        study, spec = load_stored(f"search-efficiency-{key}", f"sqlite:///{tmp_path / 'work' / key / 'study.db'}")
        stored = sorted(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number)
        assert len(stored) == n
        assert res["history"] == pytest.approx([hypervolume(study, spec, stored[:k]) or 0.0 for k in range(1, n + 1)])
    # Table 1: the median column is the median of the per-seed columns.
    for r in finals:
        assert float(r["median"]) == pytest.approx((float(r["seed 0"]) + float(r["seed 1"])) / 2, abs=1e-3)
    assert list(by_k[0]) == ["sampler", "k=1", "k=2", "k=3"]
    for r in by_k + by_epochs:  # the median HV grows with trials and with the epoch budget
        values = [float(v) for k, v in r.items() if k != "sampler"]
        assert values == sorted(values)
    # Random reaches its own final HV at the latest on its last trial.
    rand = next(r for r in reach if r["sampler"] == "random")
    assert all(1 <= int(k) <= n for k in rand["trials, per seed (vs same-seed random)"].split(" / "))
    assert all(r["trials run (median)"] == str(n) for r in reach)
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert len(rows) == 4 * n
    last = {(r["sampler"], r["seed"]): r for r in rows}
    for res in out["results"]:
        row = last[(res["sampler"], str(res["seed"]))]
        assert row["k"] == str(n) and float(row["hypervolume"]) == pytest.approx(res["final"])
        assert float(row["epochs_so_far"]) == pytest.approx(sum(res["epochs"]))


def test_tiny_run_in_a_process_pool(tmp_path, capsys, monkeypatch):
    """--jobs 2: the studies run in spawned processes with 1-thread OpenMP/MKL pools; the parent's env is restored."""
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = se.main(["--tiny", "--jobs", "2", "--n-trials", "2", "--seeds", "3,4", "--samplers", "random",
                   "--data-dir", str(tmp_path / "data")])
    text = capsys.readouterr().out
    assert text.count("  done: random seed ") == 2
    assert sorted(r["seed"] for r in out["results"]) == [3, 4]
    assert all(len(r["history"]) == 2 and r["history"][1] >= r["history"][0] for r in out["results"])
    assert "OMP_NUM_THREADS" not in os.environ


@pytest.mark.parametrize("argv, name", [(["--samplers", "bogus"], "--samplers"), (["--seeds", "0,0"], "--seeds"),
                                        (["--collapse-floor", "1.5"], "--collapse-floor"), (["--jobs", "0"], "--jobs")])
def test_bad_options_stop_with_a_message(argv, name, capsys):
    with pytest.raises(SystemExit):
        se.main(argv)
    assert name in capsys.readouterr().err


def test_a_bad_study_override_stops_before_any_study_runs(tmp_path):
    with pytest.raises(SystemExit) as exc:
        se.main(["--target-sparsity", "1.5", "--seeds", "0", "--samplers", "random", "--jobs", "1",
                 "--data-dir", str(tmp_path / "data"), "--storage-dir", str(tmp_path / "work")])
    msg = str(exc.value.code)
    assert msg.startswith("error: ") and "prune.target_sparsity" in msg and "\n" not in msg
    assert not (tmp_path / "work").exists() and not (tmp_path / "data").exists()  # nothing trained or generated


# -- replay mode ----------------------------------------------------------------------------------

TABLE = str(Path(se.__file__).parent / "data" / "mnist1d_curves.csv")


def test_seed_ranges_and_lists():
    from benchmarks.replay_search import parse_seeds

    assert parse_seeds("0-9") == list(range(10)) and parse_seeds("0,3,5") == [0, 3, 5]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad in ("", "3-1", "a", "1,1", "0-2,2"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_replay_ends_with_the_verdict_line(capsys):
    import re
    import statistics

    out = se.main(["--replay", TABLE, "--seeds", "0-3", "--n-trials", "6", "--jobs", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    m = re.fullmatch(r"auto/random epochs-to-target ratio (\S+) \(median over 4 seeds\), p=(\S+)", lines[-1])
    assert m and out["verdict"] == lines[-1]
    assert lines[-2].startswith("seeds that never reached the target: auto ") and ", random " in lines[-2]
    per_seed = {}
    for line in lines:
        if ": epochs-to-target per seed: " in line:
            name, _, values = line.partition(": epochs-to-target per seed: ")
            per_seed[name] = [float(v.rstrip("*")) for v in values.split(", ")]
    assert len(per_seed["auto"]) == len(per_seed["random"]) == 4
    ratio = statistics.median(per_seed["auto"]) / statistics.median(per_seed["random"])
    assert float(m.group(1)) == pytest.approx(ratio, abs=1e-3) and 0.0 < float(m.group(2)) <= 1.0


def test_replay_rung_report(capsys):
    se.main(["--replay", TABLE, "--rung-report"])
    tables = parse_tables(capsys.readouterr().out)
    assert len(tables[0]) == 2 * 6  # two training seeds x six rungs
    assert all(-1.0 <= float(r["final test HV"]) <= 1.0 for r in tables[0])


@pytest.mark.parametrize("argv, msg", [
    (["--replay", TABLE, "--samplers", "auto,bogus"], "--samplers"),
    (["--replay", TABLE, "--seeds", "5-1"], "--seeds"),
])
def test_bad_replay_options(argv, msg, capsys):
    with pytest.raises(SystemExit):
        se.main(argv)
    assert msg in capsys.readouterr().err


def test_a_missing_table_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="cannot read the curve table"):
        se.main(["--replay", str(tmp_path / "nope.csv")])
