"""benchmarks/fidelity.py: the epoch accounting on hand-made runs, then the whole benchmark at --tiny size."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

# benchmarks/ sits beside sdd_opt/ and is not installed: a bare `pytest` needs the repository root on the path.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import fidelity as fid  # noqa: E402
from benchmarks.common import parse_tables  # noqa: E402


def _rec(trial, run_dir, done, planned=4, epochs=2, **kw) -> fid.RunRecord:
    return fid.RunRecord(trial=trial, seed=0, remedy=kw.pop("remedy", "none"), run_dir=run_dir, levels_planned=planned,
                         level_epochs=[epochs] * done, pruned_level_epochs=epochs, dense_epochs=epochs,
                         stopped_early=done < planned, level_seconds=[1.0] * done, **kw)


# --- Part A accounting -----------------------------------------------------------------------------

def test_account_counts_early_stop_cache_and_reuse_separately():
    records = [
        _rec(0, "a", done=4),                                                  # full curve, nothing saved
        _rec(1, "b", done=1, remedy="distill", teacher="trained", teacher_epochs=5),  # collapsed at the dense level
        _rec(2, "c", done=2, remedy="distill", teacher="cached", teacher_epochs=5),   # stopped after level 1
        _rec(3, "b", done=1, reused_levels=1, remedy="distill", teacher="cached", teacher_epochs=5),  # repeats trial 1
        _rec(4, "d", done=4, remedy="distill", teacher="given", teacher_epochs=5),    # teacher from a checkpoint
    ]
    costs = fid.account(records)
    assert [c.trained for c in costs] == [8, 2, 4, 0, 8]
    assert [c.teacher for c in costs] == [0, 5, 0, 0, 0]
    assert [c.skipped for c in costs] == [0, 6, 4, 0, 0]  # trial 3's missing levels belong to run dir b's first trial
    assert [c.cache_saved for c in costs] == [0, 0, 5, 5, 0]
    assert [c.reused for c in costs] == [0, 0, 0, 2, 0]
    assert [c.all_off for c in costs] == [8, 13, 13, 13, 8]
    assert [c.seconds for c in costs] == [4.0, 1.0, 2.0, 0.0, 4.0]

    s = fid.savings(costs)
    spent = 8 + 7 + 4 + 0 + 8
    assert s["collapse early stop"] == {"spent": spent, "without": spent + 10, "saved": 10,
                                        "pct": pytest.approx(100 * 10 / (spent + 10))}
    assert s["teacher cache"]["saved"] == 10 and s["run reuse"]["saved"] == 2
    assert s["all three"]["without"] == 55 and s["all three"]["saved"] == 55 - spent
    for v in s.values():
        assert v["spent"] <= v["without"] and 0 <= v["pct"] <= 100
    assert fid.seconds_per_epoch(costs) == pytest.approx(11.0 / 22)


def test_nothing_to_save_is_zero_percent():
    assert fid.percent(0, 0) == 0.0
    s = fid.savings(fid.account([_rec(0, "a", done=4)]))
    assert all(v["saved"] == 0 and v["pct"] == 0.0 for v in s.values())
    assert math.isnan(fid.seconds_per_epoch([]))


def test_level_and_teacher_costs_from_the_config(tiny_cfg):
    cfg = tiny_cfg.model_copy(deep=True)
    cfg.train.epochs = 10
    assert fid.pruned_level_epochs(cfg) == 10
    cfg.prune.rewind_to = 3
    assert fid.pruned_level_epochs(cfg) == 7  # rewinding to epoch 3 retrains the last 7
    assert fid.pruned_level_epochs(cfg, [{"epochs": 10}, {"epochs": 6}]) == 6  # a measured level wins
    cfg.prune.retrain = "lr_rewind"
    assert fid.pruned_level_epochs(cfg) == 7  # so does replaying the learning rate from epoch 3
    cfg.prune.retrain = "finetune"
    assert fid.pruned_level_epochs(cfg) == 10
    assert fid.teacher_epochs(cfg) == 0
    cfg.distill.enabled = True
    assert fid.teacher_epochs(cfg) == 10
    cfg.distill.teacher.epochs = 4
    assert fid.teacher_epochs(cfg) == 4
    assert [fid.teacher_kind(s) for s in ("", "trained teacher /t/x.pt", "cached teacher /t/x.pt", "checkpoint a.pt",
                                          "run r level 0")] == ["none", "trained", "cached", "given", "given"]


# --- Part B helpers --------------------------------------------------------------------------------

def test_variants_put_the_reference_first():
    assert fid.variants([10, 40], ["rewind", "finetune"], "cross", (40, "rewind")) == \
        [(40, "rewind"), (10, "rewind"), (10, "finetune"), (40, "finetune")]
    assert fid.variants([10, 20, 40], ["rewind", "finetune", "scratch"], "axes", (40, "rewind")) == \
        [(40, "rewind"), (10, "rewind"), (20, "rewind"), (40, "finetune"), (40, "scratch")]
    assert fid.variants([10], ["finetune"], "cross", (40, "rewind")) == [(40, "rewind"), (10, "finetune")]
    assert fid.parse_variant(" 20:scratch ") == (20, "scratch")
    for bad in ("40", "x:rewind", "0:rewind", "40:prune"):
        with pytest.raises(SystemExit):
            fid.parse_variant(bad)
    with pytest.raises(SystemExit):
        fid.variants([10], ["rewinds"], "cross", (10, "rewind"))


def test_curve_comparison_helpers():
    mean, std = fid.seed_mean([[0.8, 0.6, 0.7], [0.6, 0.6]])
    assert mean == pytest.approx([0.7, 0.6]) and std == pytest.approx([0.1414, 0.0], abs=1e-4)
    assert math.isnan(fid.seed_mean([[0.5]])[1][0])
    assert fid.curve_diff([0.7, 0.6, 0.5], [0.7, 0.6, 0.5]) == (0.0, 0.0)
    assert fid.curve_diff([0.7, 0.5, 0.9], [0.6, 0.6]) == pytest.approx((0.1, 0.1))  # common levels only
    with pytest.raises(ValueError):
        fid.curve_diff([], [0.5])
    assert fid.verdict(0.0, [0.02], True) == "reference"
    assert fid.verdict(0.01, [0.02, float("nan")], False) == "within seed noise"
    assert fid.verdict(0.03, [0.02], False) == "OUTSIDE seed noise"
    assert fid.verdict(0.03, [float("nan")], False) == "n/a (1 seed)"


# --- the benchmark at --tiny size ------------------------------------------------------------------

def _num(v: str) -> float:
    return float(v.replace("%", ""))


def test_tiny_run_prints_consistent_tables_and_reads_the_study_back(tmp_path, capsys):
    work = tmp_path / "study"
    fid.main(["--tiny", "--threads", "1", "--data-dir", str(tmp_path / "data"), "--workdir", str(work)])
    out = capsys.readouterr().out
    assert "machine: CPU" in out and "### epoch savings" in out and "### fidelity vs cost" in out
    trials, saved, variants, levels = parse_tables(out)

    # Part A, per trial: spent <= the cost with no control; the "all" row is the column sums.
    *per_trial, total = trials
    assert total["trial"] == "all" and len(per_trial) == 5
    for r in per_trial:
        done, planned = map(int, r["levels done/planned"].split("/"))
        assert 1 <= done <= planned
        assert (r["stopped early"] == "yes") == (done < planned)
        assert int(r["epochs spent"]) == int(r["level epochs trained"]) + int(r["teacher epochs trained"])
        assert int(r["epochs spent"]) <= int(r["epochs with no cost control"])
    for col in ("level epochs trained", "teacher epochs trained", "epochs spent", "epochs skipped (early stop)",
                "teacher epochs saved (cache)", "epochs reused (run reuse)", "epochs with no cost control"):
        assert int(total[col]) == sum(int(r[col]) for r in per_trial), col

    # Part A, summary: one row per control, each consistent; the tiny floor (0.3) stops the distillation trials.
    by = {r["cost control"].split(" (")[0]: r for r in saved}
    assert set(by) == {"collapse early stop", "teacher cache", "run reuse", "all three"}
    for r in saved:
        spent, without, n = int(r["epochs spent"]), int(r["epochs without it"]), int(r["epochs saved"])
        assert spent == int(total["epochs spent"]) and spent <= without and n == without - spent
        assert 0 <= _num(r["% saved"]) <= 100
    assert int(by["collapse early stop"]["epochs saved"]) == int(total["epochs skipped (early stop)"]) > 0
    assert int(by["teacher cache"]["epochs saved"]) == int(total["teacher epochs saved (cache)"])
    if any("cached" in r["teacher"] for r in per_trial):
        assert int(by["teacher cache"]["epochs saved"]) > 0
    assert int(by["all three"]["epochs without it"]) == int(total["epochs with no cost control"])

    # Part B: the reference first and identical to itself; cost follows the epochs per level.
    names = [r["variant"] for r in variants]
    assert names == ["2 ep rewind", "1 ep rewind", "1 ep finetune", "2 ep finetune"]
    ref = variants[0]
    assert ref["verdict"] == "reference" and _num(ref["max abs Δ acc vs ref"]) == 0 == _num(ref["mean abs Δ acc vs ref"])
    assert _num(ref["cost vs ref"]) == 1.0 and _num(ref["Δ best sparsity vs ref"]) == 0
    for r in variants:
        assert int(r["epochs spent"]) == 3 * int(r["epochs/level"])  # 2 levels: 3 trainings
        assert _num(r["cost vs ref"]) == pytest.approx(int(r["epochs/level"]) / 2)
        assert 0 <= _num(r["mean abs Δ acc vs ref"]) <= _num(r["max abs Δ acc vs ref"]) <= 1
        assert r["sdd_present"] in ("yes", "no") and _num(r["curve s (median)"]) > 0
        assert r["verdict"] in ("reference", "within seed noise", "OUTSIDE seed noise")
    assert [int(r["level"]) for r in levels] == [0, 1, 2]
    assert levels[0]["2 ep rewind"] == ref["dense acc"]

    # Reading the kept study back gives the same savings, from what each trial recorded of its cost.
    fid.main(["--parts", "A", "--threads", "1", "--storage", f"sqlite:///{work / 'fidelity.db'}",
              "--study", "fidelity-mnist1d-quick"])
    out2 = capsys.readouterr().out
    assert "recorded by each trial" in out2 and "INFERRED" not in out2
    trials2, saved2 = parse_tables(out2)
    assert [r["epochs saved"] for r in saved2] == [r["epochs saved"] for r in saved]
    assert trials2[-1]["epochs spent"] == total["epochs spent"]


def test_bad_options_stop_with_a_message():
    with pytest.raises(SystemExit):
        fid.parse_args(["--parts", "C"])
    with pytest.raises(SystemExit):
        fid.main(["--parts", "A", "--storage", "sqlite:///x.db"])  # --study missing


@pytest.mark.parametrize("argv, words", [
    (["--parts", "A", "--set", "bogus.key=1"], "bogus"),          # a bad override: the study's own one-line error
    (["--parts", "B", "--epochs-list", "0"], "--epochs-list"),
])
def test_bad_values_stop_before_training_with_one_line(argv, words, tmp_path):
    with pytest.raises(SystemExit) as exc:
        fid.main([*argv, "--threads", "1", "--data-dir", str(tmp_path / "data")])
    msg = str(exc.value.code)
    assert msg.startswith("error: ") and words in msg and "\n" not in msg
