import optuna
import pytest

from sdd_opt.study.measure import hypervolume_2d
from sdd_opt.study.objective import Objective, constraint_values, mean_curve, remedy_of
from sdd_opt.study.paper import paper_trials
from sdd_opt.study.pareto import front_table, nondominated
from sdd_opt.study.runner import create_or_resume, work
from sdd_opt.study.spec import load_study_spec


def _row(level, sp, val, test=0.5):
    return {"level": level, "sparsity": sp, "train_acc": 0.9, "val_acc": val, "test_acc": test, "loss": 1.0,
            "epochs": 2, "seconds": 1.0}


def test_mean_curve_averages_seeds_and_keeps_the_spread():
    a = [_row(0, 0.0, 0.80), _row(1, 0.2, 0.70), _row(2, 0.36, 0.90)]
    b = [_row(0, 0.0, 0.60), _row(1, 0.2, 0.74)]  # stopped one level earlier
    m = mean_curve([a, b])
    assert len(m) == 2
    assert m[0]["val_acc"] == pytest.approx(0.70) and m[0]["val_acc_std"] == pytest.approx(0.1414, abs=1e-4)
    assert m[1]["epochs"] == 4


def test_pareto_helpers():
    pts = [(0.8, 0.5), (0.7, 0.9), (0.6, 0.4), (0.8, 0.5)]
    assert nondominated(pts, ["maximize", "maximize"]) == [0, 1, 3]
    assert nondominated(pts, ["maximize", "minimize"]) == [0, 2, 3]
    # two rectangles: 0.8*0.5 + 0.7*(0.9-0.5)
    assert hypervolume_2d([(0.8, 0.5), (0.7, 0.9)]) == pytest.approx(0.4 + 0.28)
    assert hypervolume_2d([]) == 0.0


def test_repeats_constraints_and_early_stop(study_file, sqlite_url, tmp_path):
    spec = load_study_spec(study_file(
        repeats=2, constraints=[{"metric": "sdd_gap", "max": -1.0}],  # impossible: every trial infeasible
        collapse_floor=0.99, budget={"n_trials": 2}, sampler={"name": "tpe", "seed": 0}))
    storage = optuna.storages.RDBStorage(sqlite_url)
    study = create_or_resume(spec, storage, sqlite_url)
    obj = Objective(spec, tmp_path / "art", log=lambda *_: None)
    res = work(study, obj, n_trials=2, log=lambda *_: None)
    assert res.completed == 2
    for t in study.trials:
        assert t.user_attrs["seeds"] == [0, 1]
        assert "curve_seed0" in t.user_attrs and "curve_seed1" in t.user_attrs
        assert t.user_attrs["stopped_early"] and "collapse_floor" in t.user_attrs["stop_reason"]
        assert len(t.user_attrs["curve"]) == 1  # collapsed at the dense level: no pruning spent
        assert all(c > 0 for c in t.user_attrs["constraints"])
        assert t.constraints and all(v > 0 for v in t.constraints.values())
    assert study.best_trials == [] and front_table(study, spec).empty  # infeasible trials are never on the front


def test_remedy_labels_and_constraint_sign(study_file):
    spec = load_study_spec(study_file(constraints=[{"metric": "sdd_gap", "max": 0.02}, {"metric": "val_acc", "min": 0.5}]))
    assert constraint_values(spec, {"sdd_gap": 0.05, "val_acc": 0.6, "sparsity": 0.9, "curve_epochs": 1}) == \
        pytest.approx([0.03, -0.1])
    cfg = spec.base.model_copy(deep=True)
    assert remedy_of(cfg) == "none"
    cfg.train.weight_decay = 1e-3
    assert remedy_of(cfg) == "l2"
    cfg.distill.enabled = True
    assert remedy_of(cfg) == "distill"


def test_paper_points_fill_unfixed_keys_from_the_base(study_file):
    spec = load_study_spec(study_file())
    none, l2, kd = paper_trials(spec)
    assert none["train.weight_decay.off"] is True and none["distill.enabled"] is False and "distill.alpha" not in none
    assert l2["train.weight_decay"] == 5e-3
    assert kd["distill.enabled"] is True and kd["distill.alpha"] == 0.8
    assert none["prune.rate"] == pytest.approx(0.3)  # the base's rate lies in the searched range


def test_trials_record_what_they_trained_reused_and_where_the_teacher_came_from(study_file, sqlite_url, tmp_path):
    space = {"distill.enabled": {"type": "categorical", "choices": [False, True]}}
    spec = load_study_spec(study_file(search_space=space, budget={"n_trials": 3}))
    study = create_or_resume(spec, optuna.storages.RDBStorage(sqlite_url), sqlite_url)
    for enabled in (True, True, False):  # the second repeats the first: same run directory, same teacher
        study.enqueue_trial({"distill.enabled": enabled})
    assert work(study, Objective(spec, tmp_path / "art", log=lambda *_: None), n_trials=3,
                log=lambda *_: None).completed == 3
    first, repeat, plain = [t.user_attrs for t in sorted(study.trials, key=lambda t: t.number)]
    levels = len(first["curve"])
    teacher_epochs = spec.base.train.epochs  # the teacher trains the student's schedule (distill.teacher.epochs unset)
    assert first["cost"] == [{"seed": 0, "levels_reused": 0, "levels_trained": levels,
                              "epochs_trained": first["curve_epochs"], "teacher": "trained",
                              "teacher_epochs": teacher_epochs}]
    assert first["epochs_trained"] == first["curve_epochs"] + teacher_epochs
    assert repeat["cost"][0]["levels_reused"] == levels and repeat["cost"][0]["levels_trained"] == 0
    assert repeat["epochs_trained"] == 0 < repeat["curve_epochs"]  # the curve counts the reused levels, trained does not
    assert plain["cost"][0]["teacher"] == "none" and plain["epochs_trained"] == plain["curve_epochs"] > 0
    assert repeat["cost"][0]["teacher_epochs"] == 0  # the cached teacher, if loaded at all, cost nothing


def test_trials_that_differ_only_in_their_target_share_levels_and_pay_only_new_ones(study_file, sqlite_url, tmp_path):
    space = {"prune.target_sparsity": {"type": "categorical", "choices": [0.5, 0.75, 0.875]}}
    spec = load_study_spec(study_file(search_space=space, budget={"n_trials": 3}, set={"prune.rate": 0.5},
                                      initial_trials=[{"prune.target_sparsity": t} for t in (0.75, 0.5, 0.875)]))
    study = create_or_resume(spec, optuna.storages.RDBStorage(sqlite_url), sqlite_url)
    assert work(study, Objective(spec, tmp_path / "art", log=lambda *_: None), n_trials=3,
                log=lambda *_: None).completed == 3
    mid, short, long = [t.user_attrs for t in sorted(study.trials, key=lambda t: t.number)]
    epochs = spec.base.train.epochs
    assert [len(a["curve"]) for a in (mid, short, long)] == [3, 2, 4]
    assert mid["epochs_trained"] == 3 * epochs
    assert short["epochs_trained"] == 0 and short["cost"][0]["levels_reused"] == 2    # served from the longer run
    assert long["epochs_trained"] == epochs and long["cost"][0]["levels_reused"] == 3  # continued from it
    assert [r["val_acc"] for r in short["curve"]] == [r["val_acc"] for r in mid["curve"][:2]]
    assert [r["val_acc"] for r in long["curve"][:3]] == [r["val_acc"] for r in mid["curve"]]


def test_a_trials_level_lines_carry_its_trial_number(study_file, sqlite_url, tmp_path):
    """Parallel workers' lines interleave: each level line says which trial (and seed) it belongs to."""
    spec = load_study_spec(study_file(repeats=2, budget={"n_trials": 2}))
    study = create_or_resume(spec, optuna.storages.RDBStorage(sqlite_url), sqlite_url)
    lines: list[str] = []
    work(study, Objective(spec, tmp_path / "art", log=lines.append), n_trials=2, log=lambda *_: None)
    level_lines = [line for line in lines if " level " in line and "/2 " in line]
    assert len(level_lines) == 2 * 2 * 3, lines  # 2 trials x 2 seeds x levels 0-2
    for n in (0, 1):
        for seed in (0, 1):
            mine = [line for line in level_lines if line.startswith(f"trial {n} seed {seed} level ")]
            assert [line.split()[5] for line in mine] == ["0/2", "1/2", "2/2"], lines
