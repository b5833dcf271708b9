"""Initial trials: points of the space tried first, their centre rule, their checks, enqueued once."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from sdd_opt.errors import UserError
from sdd_opt.study.initial import centre, initial_params, point_params
from sdd_opt.study.paper import paper_trials
from sdd_opt.study.runner import create_or_resume
from sdd_opt.study.space import suggest_config
from sdd_opt.study.spec import Param, load_study_spec, parse_study
from sdd_opt.testing import tiny_study

ROOT = Path(__file__).resolve().parents[2]
FLAT = {  # the default study's kind of space: "none" inside the l2 range, distillation keys always drawn
    "distill.enabled": {"type": "categorical", "choices": [False, True]},
    "train.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "zero_below": 3e-5,
                           "when": {"distill.enabled": False}, "sample_always": True},
    "distill.alpha": {"type": "float", "low": 0.1, "high": 1.0, "when": {"distill.enabled": True}, "sample_always": True},
    "distill.temperature": {"type": "float", "low": 1.0, "high": 20.0, "when": {"distill.enabled": True}},
    "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "step": 0.1},
}


def _spec(tmp_path, points, space=None):
    return parse_study(tiny_study(tmp_path, search_space=space or FLAT, initial_trials=points), "s.yaml")


def test_centre_is_geometric_for_log_ranges_and_on_the_step_grid():
    assert centre(Param(type="float", low=1e-4, high=1e-2, log=True)) == pytest.approx(1e-3)
    assert centre(Param(type="float", low=0.2, high=0.5, step=0.1)) == pytest.approx(0.3)  # 0.35 -> the grid
    assert centre(Param(type="int", low=1, high=4)) == 2 and isinstance(centre(Param(type="int", low=1, high=4)), int)
    cat = Param(type="categorical", choices=["a", "b"])
    assert centre(cat, "b") == "b" and centre(cat, "z") == "a"


def test_unnamed_keys_take_the_centre_and_inactive_ones_are_left_to_their_when(tmp_path):
    spec = _spec(tmp_path, [{"distill.enabled": True, "prune.rate": 0.2}, {"distill.enabled": False, "train.weight_decay": 0}])
    kd, none = initial_params(spec)
    assert kd["distill.enabled"] is True and kd["prune.rate"] == pytest.approx(0.2)
    assert kd["distill.alpha"] == pytest.approx(0.55) and kd["distill.temperature"] == pytest.approx(10.5)
    assert kd["train.weight_decay"] == pytest.approx(math.sqrt(1e-5 * 1e-2))  # drawn always, not applied
    # l2 "none" is the range's low end (below zero_below: read as 0); T is not drawn without distillation
    assert none["train.weight_decay"] == 1e-5 and "distill.temperature" not in none
    assert none["prune.rate"] == pytest.approx(0.3)


def test_zero_true_spaces_spell_none_with_the_off_switch(tmp_path):
    spec = _spec(tmp_path, [{"train.weight_decay": 0}, {"train.weight_decay": 1e-3}],
                 space=tiny_study(tmp_path)["search_space"])
    off, on = initial_params(spec)
    assert off["train.weight_decay.off"] is True and "train.weight_decay" not in off
    assert on["train.weight_decay.off"] is False and on["train.weight_decay"] == 1e-3


@pytest.mark.parametrize("point, words", [
    ({"model.width": 8}, ["initial_trials[0]", "model.width", "not a searched key"]),
    ({"prune.rate": 0.9}, ["initial_trials[0]", "prune.rate", "outside the searched range"]),
    ({"prune.rate": 0.25}, ["prune.rate", "step 0.1"]),
    ({"distill.enabled": "yes"}, ["distill.enabled", "not one of the choices"]),
    ({"distill.enabled": False, "distill.temperature": 3.0}, ["distill.temperature", "applies only when"]),
    ({"distill.alpha": "high"}, ["distill.alpha", "expected a number"]),
])
def test_a_bad_point_is_refused_when_the_file_is_read(tmp_path, point, words):
    with pytest.raises(UserError) as err:
        _spec(tmp_path, [point])
    assert all(w in str(err.value) for w in words), str(err.value)


def test_enqueued_once_at_creation_and_not_again_on_resume(tmp_path):
    spec = _spec(tmp_path, [{"distill.enabled": True, "prune.rate": 0.4}])
    storage = optuna.storages.InMemoryStorage()
    study = create_or_resume(spec, storage)
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1
    create_or_resume(spec, storage)
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1
    cfg = suggest_config(study.ask(), spec)  # the first trial asked for is the initial point
    assert cfg.distill.enabled is True and cfg.prune.rate == pytest.approx(0.4)
    assert cfg.distill.alpha == pytest.approx(0.55) and cfg.distill.temperature == pytest.approx(10.5)
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_the_default_study_starts_with_distillation_at_the_centre():
    spec = load_study_spec(ROOT / "studies" / "mnist1d_search.yaml")
    (point,) = initial_params(spec)
    assert point["distill.enabled"] is True and point["prune.rate"] == pytest.approx(0.2)
    assert point["distill.temperature"] == pytest.approx(10.5) and point["distill.alpha"] == pytest.approx(0.55)


def test_paper_points_spell_no_l2_inside_a_zero_below_range(tmp_path):
    """Before the shared conversion, "no remedy" on such a space left l2 to the sampler."""
    none, l2, kd = paper_trials(_spec(tmp_path, []))
    assert none["distill.enabled"] is False and none["train.weight_decay"] == 1e-5      # read as 0
    assert l2["train.weight_decay"] == 5e-3 and kd["distill.enabled"] is True
    assert kd["distill.alpha"] == 0.8 and kd["distill.temperature"] == 10.0


def test_paper_points_leave_what_the_space_cannot_take_to_the_sampler(tmp_path):
    space = dict(FLAT, **{"distill.alpha": {"type": "float", "low": 0.1, "high": 0.5}})
    kd = paper_trials(_spec(tmp_path, [], space=space))[2]
    assert "distill.alpha" not in kd and kd["distill.temperature"] == 10.0
    with pytest.raises(UserError, match="outside the searched range"):
        point_params(_spec(tmp_path, [], space=space), {"distill.alpha": 0.8}, "here")
