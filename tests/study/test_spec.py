import optuna
import pytest

from sdd_opt.config import get_dotted
from sdd_opt.errors import UserError
from sdd_opt.study.grid import grid_of
from sdd_opt.study.params import decode
from sdd_opt.study.space import suggest_config
from sdd_opt.study.spec import load_study_spec, parse_study

from .conftest import tiny_study


def test_spec_resolves_base_and_directions(tmp_path, study_file):
    spec = load_study_spec(study_file())
    assert spec.directions == ["maximize", "maximize"] and spec.metric_names == ["val_acc", "sparsity"]
    assert spec.sampler_name == "random" and spec.base.model.width == 8


def test_base_config_path_is_relative_to_the_study_file(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 3}\n")
    spec = parse_study({"name": "x", "base": "base.yaml"}, "s.yaml", base_dir=tmp_path)
    assert spec.base.train.epochs == 3


@pytest.mark.parametrize("space, needle", [
    ({"train.weight_decy": {"type": "float", "low": 0.1, "high": 0.2}}, "train.weight_decy: unknown config key"),
    ({"train.weight_decay": {"type": "float", "low": 0.2, "high": 0.1}}, "low (0.2) > high (0.1)"),
    ({"train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log range needs low > 0"),
    ({"prune.rate": {"type": "float", "low": 0.5, "high": 1.5}}, "prune.rate"),
    ({"distill.alpha": {"type": "float", "low": 0.1, "high": 0.2, "when": {"distill.foo": True}}}, "when"),
    ({"train.epochs": {"type": "int", "low": 1, "high": 3, "colour": 1}}, "unknown key"),
    ({"train": {"type": "int", "low": 1, "high": 3}}, "unknown config key"),
])
def test_bad_search_spaces_name_the_key(tmp_path, space, needle):
    with pytest.raises(UserError) as info:
        parse_study(tiny_study(tmp_path, search_space=space), "s.yaml")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_unknown_sampler_and_objective(tmp_path):
    with pytest.raises(UserError, match="sampler.name: unknown sampler 'cmaes'"):
        parse_study(tiny_study(tmp_path, sampler={"name": "cmaes"}), "s.yaml")
    with pytest.raises(UserError, match="unknown objective metric 'test_acc'"):
        parse_study(tiny_study(tmp_path, objectives=[{"metric": "test_acc"}]), "s.yaml")


def test_conditional_parameters_are_not_sampled_when_unused(tmp_path, study_file):
    spec = load_study_spec(study_file())
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=1))
    seen_alpha = {True: 0, False: 0}
    for _ in range(20):
        trial = study.ask()
        cfg = suggest_config(trial, spec)
        assert ("distill.alpha" in trial.params) == cfg.distill.enabled
        seen_alpha[cfg.distill.enabled] += 1
        if trial.params["train.weight_decay.off"]:
            assert cfg.train.weight_decay == 0.0 and "train.weight_decay" not in trial.params
        for key in spec.search_space:  # the codec reads every sampled value back from the params
            if key in trial.params or f"{key}.off" in trial.params:
                assert decode(trial.params, key) == get_dotted(cfg.describe(), key)
        study.tell(trial, [0.5, 0.5])
    assert seen_alpha[True] and seen_alpha[False]


def test_grid_needs_steps_or_choices(tmp_path):
    space = {"train.weight_decay": {"type": "categorical", "choices": [0.0, 5e-3]},
             "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "step": 0.1}}
    spec = parse_study(tiny_study(tmp_path, search_space=space, sampler={"name": "grid"}), "s.yaml")
    assert grid_of(spec.search_space) == {"train.weight_decay": [0.0, 5e-3], "prune.rate": [0.2, 0.3, 0.4]}
    space["distill.alpha"] = {"type": "float", "low": 0.1, "high": 0.9}
    with pytest.raises(UserError, match="grid sampler needs"):
        parse_study(tiny_study(tmp_path, search_space=space, sampler={"name": "grid"}), "s.yaml")


def test_renamed_study_keys_and_metrics_still_read(study_file, monkeypatch, capsys):
    """A study file written before the renames: metric 'epochs', prune.stop_below in set and search_space."""
    from sdd_opt import renamed

    monkeypatch.setattr(renamed, "_warned", set())
    spec = load_study_spec(study_file(
        objectives=[{"metric": "val_acc"}, {"metric": "epochs"}], constraints=[{"metric": "epochs", "max": 1e6}],
        set={"analysis.within": 0.05},
        search_space={"prune.stop_below": {"type": "float", "low": 0.1, "high": 0.2},
                      "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "when": {"prune.stop_below": 0.1}}}))
    assert spec.metric_names == ["val_acc", "curve_epochs"] and spec.directions == ["maximize", "minimize"]
    assert spec.file.constraints[0].metric == "curve_epochs"
    assert set(spec.search_space) == {"prune.collapse_floor", "prune.rate"}
    assert spec.search_space["prune.rate"].when == {"prune.collapse_floor": 0.1}
    assert spec.base.analysis.epsilon == 0.05
    err = capsys.readouterr().err
    assert "'metric epochs' is renamed 'metric curve_epochs'" in err and "'prune.stop_below' is renamed" in err
    assert len(err.splitlines()) == 3  # one line per old name
    again = type(spec).from_json(spec.to_json())
    assert again.identity() == spec.identity() and capsys.readouterr().err == ""


def test_a_study_setting_sets_its_config_key_and_refuses_a_lost_set(study_file):
    """collapse_floor and select.epsilon are the run config's prune.collapse_floor and analysis.epsilon."""
    spec = load_study_spec(study_file(collapse_floor=0.3, select={"rule": "within", "epsilon": 0.05}))
    assert spec.base.prune.collapse_floor == 0.3 and spec.base.analysis.epsilon == 0.05
    for override, setting in (("prune.collapse_floor=0.1", "collapse_floor"), ("analysis.epsilon=0.2", "select.epsilon")):
        with pytest.raises(UserError, match=f"study file's {setting} .* would be lost"):
            load_study_spec(study_file(collapse_floor=0.3, select={"rule": "within", "epsilon": 0.05}), [override])
    # select.epsilon unset: the base config's tolerance is the study's, and may be --set
    assert load_study_spec(study_file(), ["analysis.epsilon=0.2"]).base.analysis.epsilon == 0.2
