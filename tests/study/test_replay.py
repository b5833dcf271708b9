"""Replay: the curve table, snapping to the nearest grid point, and the epochs a replayed trial is charged."""

from __future__ import annotations

import optuna
import pytest

from sdd_opt.errors import UserError
from sdd_opt.study.measure import measure_of
from sdd_opt.study.record import TrialRecord
from sdd_opt.study.replay import CurveTable, ReplayObjective, levels_for
from sdd_opt.study.runner import create_or_resume, work
from sdd_opt.study.spec import parse_study

HEADER = "train.weight_decay,distill.enabled,distill.teacher.weight_decay,prune.rate,seed,level,sparsity,train_acc,val_acc,test_acc,epochs"


def _curve(head: str, seed: int, rate: float, accs: list[float]) -> list[str]:
    return [f"{head},{rate},{seed},{k},{1 - (1 - rate) ** k:.6f},0.9,{a:.4f},{a - 0.01:.4f},10" for k, a in enumerate(accs)]


@pytest.fixture
def table_path(tmp_path):
    lines = [HEADER]
    for seed in (0, 1):
        lines += _curve("0.0,false,", seed, 0.5, [0.70, 0.68, 0.75, 0.60])          # no remedy
        lines += _curve("0.001,false,", seed, 0.5, [0.80, 0.80, 0.78, 0.50])        # l2
        lines += _curve("0.0,true,0.005", seed, 0.5, [0.85, 0.85, 0.84, 0.80])      # distillation
    path = tmp_path / "curves.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _spec(tmp_path, **changes):
    data = {"name": "replayed",
            "base": {"data": {"name": "synthetic1d", "noise": 0.2, "val_fraction": 0.1, "data_dir": str(tmp_path / "data")},
                     "model": {"name": "cnn1d", "width": 8}, "train": {"epochs": 10},
                     "prune": {"rate": 0.5, "target_sparsity": 0.875}},
            "search_space": {"distill.enabled": {"type": "categorical", "choices": [False, True]},
                             "train.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True,
                                                    "zero_below": 3e-5, "when": {"distill.enabled": False},
                                                    "sample_always": True}},
            "objectives": [{"metric": "curve_hv"}], "sampler": {"name": "random", "seed": 0}}
    data.update(changes)
    return parse_study(data, "test study")


def test_table_groups_curves_by_point_and_seed(table_path):
    t = CurveTable.load(table_path)
    assert t.keys == ("train.weight_decay", "distill.enabled", "distill.teacher.weight_decay", "prune.rate")
    assert t.seeds == (0, 1) and len(t.points) == 3
    rows = t.curve({"train.weight_decay": 0.0, "distill.enabled": True, "distill.teacher.weight_decay": 0.005,
                    "prune.rate": 0.5}, 1)
    assert [r["level"] for r in rows] == [0, 1, 2, 3] and rows[-1]["val_acc"] == 0.80 and rows[0]["epochs"] == 10


def test_snap_uses_log_distance_and_exact_distillation(table_path, tmp_path):
    t = CurveTable.load(table_path)
    base = _spec(tmp_path).base
    cfg = base.model_copy(deep=True)
    log = {"train.weight_decay"}
    cfg.train.weight_decay = 2e-4   # log10: -3.7, nearer to 1e-3 (-3) than to "none" (read as 1e-5: -5)
    point, dist = t.snap(cfg, log)
    assert point["train.weight_decay"] == 0.001 and point["distill.enabled"] is False and dist > 0
    assert t.snap(cfg, set())[0]["train.weight_decay"] == 0.0   # on a linear scale 2e-4 is nearer to 0
    cfg.train.weight_decay = 2e-5   # -4.7: nearer to none
    assert t.snap(cfg, log)[0]["train.weight_decay"] == 0.0
    cfg.distill.enabled = True      # distillation must match; the teacher l2 is read from the config
    point, _ = t.snap(cfg, log)
    assert point["distill.enabled"] is True and point["distill.teacher.weight_decay"] == 0.005


def test_levels_stop_at_the_configs_target(table_path, tmp_path):
    t = CurveTable.load(table_path)
    cfg = _spec(tmp_path).base
    rows = t.curve(t.snap(cfg)[0], 0)
    assert len(levels_for(rows, cfg)) == 4            # 0.875 at rate 0.5: 3 levels + dense
    cfg.prune.target_sparsity = 0.5
    assert len(levels_for(rows, cfg)) == 2


@pytest.mark.parametrize("text, why", [
    ("", "not a curve table"),
    ("a,b,c\n1,2,3\n", "not a curve table"),
    (HEADER + "\n0.0,false,,0.5,0,0,0.0,0.9,0.7\n", "cells"),
    (HEADER + "\n0.0,false,,0.5,0,zero,0.0,0.9,0.7,0.7,10\n", "not a curve table"),
    (HEADER + "\n", "no curves"),
])
def test_a_bad_table_is_one_clear_error(tmp_path, text, why):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=why):
        CurveTable.load(path)
    with pytest.raises(UserError, match="cannot read"):
        CurveTable.load(tmp_path / "missing.csv")


def _run(spec, table, n):
    study = create_or_resume(spec, optuna.storages.InMemoryStorage())
    work(study, ReplayObjective(spec, table, log=lambda m: None), n_trials=n, log=lambda m: None)
    return sorted(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number)


def test_replayed_trials_record_like_real_ones_and_pay_what_a_real_trial_would(table_path, tmp_path):
    spec = _spec(tmp_path)
    table = CurveTable.load(table_path)
    study = create_or_resume(spec, optuna.storages.InMemoryStorage())
    for params in ({"distill.enabled": True, "train.weight_decay": 1e-3},    # teacher trained: 4 levels + 10
                   {"distill.enabled": True, "train.weight_decay": 5e-3},    # same config (l2 does not apply): reused
                   {"distill.enabled": False, "train.weight_decay": 1e-5},   # below zero_below: no l2
                   {"distill.enabled": False, "train.weight_decay": 1e-5}):  # repeated: free
        study.enqueue_trial(params)
    work(study, ReplayObjective(spec, table, log=lambda m: None), n_trials=4, log=lambda m: None)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    recs = [TrialRecord.from_trial(t) for t in trials]
    assert [r.epochs_trained for r in recs] == [4 * 10 + 10, 0, 40, 0]
    assert [r.remedy for r in recs] == ["distill", "distill", "none", "none"]
    assert recs[0].config["distill"]["enabled"] is True and recs[2].config["train"]["weight_decay"] == 0.0
    assert [round(r["val_acc"], 4) for r in recs[0].curve] == [0.85, 0.85, 0.84, 0.80]
    assert [r["val_acc"] for r in recs[0].seed_curves[0]] == [0.85, 0.85, 0.84, 0.80]
    assert trials[0].user_attrs["replay"]["point"]["distill.enabled"] is True
    assert recs[0].selected_level == 2 and recs[0].val_acc == pytest.approx(0.84)  # 'within' 0.01 of dense
    assert trials[0].values[0] == pytest.approx(measure_of(spec).curve_hypervolume(recs[0].curve))
    assert trials[0].values[0] > trials[2].values[0]   # distillation's curve scores higher than no remedy's


def test_a_replayed_study_resumes_with_the_same_charges(table_path, tmp_path):
    spec = _spec(tmp_path)
    table = CurveTable.load(table_path)
    storage = optuna.storages.InMemoryStorage()
    study = create_or_resume(spec, storage)
    study.enqueue_trial({"distill.enabled": True, "train.weight_decay": 1e-3})
    work(study, ReplayObjective(spec, table, log=lambda m: None), n_trials=1, log=lambda m: None)
    study.enqueue_trial({"distill.enabled": True, "train.weight_decay": 1e-3})
    work(study, ReplayObjective(spec, table, log=lambda m: None), n_trials=2, log=lambda m: None)  # a new process
    assert [TrialRecord.from_trial(t).epochs_trained for t in study.get_trials()] == [50, 0]


def test_a_seed_the_table_lacks_fails_the_trial_with_the_reason(table_path, tmp_path):
    spec = _spec(tmp_path, set={"seed": 7})
    trials_spec = spec
    study = create_or_resume(trials_spec, optuna.storages.InMemoryStorage())
    with pytest.raises(UserError, match="seed 7"):
        study.optimize(ReplayObjective(spec, CurveTable.load(table_path), log=lambda m: None), n_trials=1)


def test_a_shorter_target_is_charged_nothing_after_a_longer_one_and_a_longer_only_its_new_levels(table_path, tmp_path):
    space = {"prune.target_sparsity": {"type": "categorical", "choices": [0.5, 0.75, 0.875]}}
    spec = _spec(tmp_path, search_space=space, initial_trials=[{"prune.target_sparsity": t} for t in (0.75, 0.5, 0.875)])
    study = create_or_resume(spec, optuna.storages.InMemoryStorage())
    work(study, ReplayObjective(spec, CurveTable.load(table_path), log=lambda m: None), n_trials=3, log=lambda m: None)
    recs = [TrialRecord.from_trial(t) for t in sorted(study.get_trials(), key=lambda t: t.number)]
    assert [len(r.curve) for r in recs] == [3, 2, 4]      # rate 0.5: 2, 1 and 3 levels after the dense one
    assert [r.epochs_trained for r in recs] == [30, 0, 10]  # as run_curve's shared prefixes: only new levels
