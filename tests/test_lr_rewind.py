"""prune.retrain: lr_rewind (Renda et al. 2020): keep the pruned weights, replay the schedule from the rewind point."""

import pytest
import torch
import yaml
from conftest import run_interrupted

import sdd_opt.imp as imp
from sdd_opt.checkpoints import load_checkpoint
from sdd_opt.config import load_config
from sdd_opt.errors import UserError
from sdd_opt.imp import run_curve
from sdd_opt.rundir import read_curve
from sdd_opt.train import make_scheduler, steps_per_epoch

quiet = dict(progress=False, log=lambda *_: None)



def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _lr_rewind(tiny_overrides, *extra):
    sets = ["train.epochs=3", "prune.retrain=lr_rewind", "prune.rewind_to=1", *extra]
    return load_config(None, tiny_overrides + sets)


def _schedule_lr_at(cfg, steps: int, total: int, spe: int) -> float:
    """The schedule's learning rate after ``steps`` steps, from a scheduler of its own."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.train.lr)
    sched = make_scheduler(opt, cfg.train, total, spe)
    for _ in range(steps):
        opt.step()
        sched.step()
    return opt.param_groups[0]["lr"]


@pytest.mark.parametrize("unit", ["epoch", "iteration"])
def test_each_level_starts_from_the_pruned_weights_at_the_rewind_points_lr(tiny_overrides, tmp_path, monkeypatch,
                                                                           unit):
    point_set = "prune.rewind_to=" + ("1" if unit == "epoch" else "5")
    cfg = _lr_rewind(tiny_overrides, f"prune.rewind_unit={unit}", point_set)
    calls = []
    real = imp.train_model

    def spy(model, data, tcfg, **kw):
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        stats, snap = real(model, data, tcfg, **kw)
        spe = steps_per_epoch(len(data.x_train), tcfg.batch_size)
        calls.append(dict(start_step=kw["start_step"], lr=stats.lr_start, weights=start, masks=kw["masks"],
                          spe=spe, end={k: v.detach().clone() for k, v in model.state_dict().items()}))
        return stats, snap

    monkeypatch.setattr(imp, "train_model", spy)
    res = run_curve(cfg, tmp_path / "r", **quiet)
    assert len(calls) == len(res.rows) == 3
    spe = calls[0]["spe"]
    total = spe * cfg.train.epochs
    point = spe if unit == "epoch" else 5
    assert calls[0]["start_step"] == 0 and calls[0]["lr"] == pytest.approx(_schedule_lr_at(cfg, 0, total, spe))
    at_point = _schedule_lr_at(cfg, point, total, spe)
    assert at_point != pytest.approx(_schedule_lr_at(cfg, 0, total, spe))  # the check can tell the two apart
    for prev, call in zip(calls, calls[1:]):
        assert call["start_step"] == point
        assert call["lr"] == pytest.approx(at_point, rel=1e-12)
        for name, mask in call["masks"].items():  # the previous level's final weights, pruned: not rewound
            assert torch.equal(call["weights"][name], prev["end"][name] * mask), name
    assert [r["epochs"] for r in res.rows] == ([3, 2, 2] if unit == "epoch" else [3, 3, 3])
    assert not (tmp_path / "r/checkpoints/rewind.pt").exists()  # nothing to rewind the weights to


def test_resume_after_an_interrupt_is_bit_identical(tiny_overrides, tmp_path):
    """With l2 and distillation, as a study's lr_rewind trials run."""
    cfg = _lr_rewind(tiny_overrides, "train.weight_decay=0.001", "distill.enabled=true", "distill.temperature=4")
    full = run_curve(cfg, tmp_path / "full", **quiet)
    run_interrupted(cfg, tmp_path / "cut")
    assert len(read_curve(tmp_path / "cut/curve.csv")) == 2
    resumed = run_curve(cfg, tmp_path / "cut", resume=True, **quiet)
    assert _strip(resumed.rows) == _strip(full.rows)
    for level in range(3):
        a = load_checkpoint(tmp_path / f"full/checkpoints/level_{level}.pt")
        b = load_checkpoint(tmp_path / f"cut/checkpoints/level_{level}.pt")
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
        assert all(torch.equal(a["masks"][k], b["masks"][k]) for k in a["masks"])


def test_it_differs_from_finetune_and_rewind_and_equals_finetune_when_rewound_to_the_start(tiny_overrides, tmp_path):
    """sdd-opt's finetune replays the whole schedule from the current weights: lr_rewind to 0 is that run."""
    runs = {name: run_curve(load_config(None, tiny_overrides + ["train.epochs=3", *sets]), tmp_path / name, **quiet)
            for name, sets in {"lr1": ["prune.retrain=lr_rewind", "prune.rewind_to=1"],
                               "lr0": ["prune.retrain=lr_rewind"], "finetune": ["prune.retrain=finetune"],
                               "rewind1": ["prune.retrain=rewind", "prune.rewind_to=1"]}.items()}
    assert _strip(runs["lr0"].rows) == _strip(runs["finetune"].rows)
    assert _strip(runs["lr1"].rows)[0] == _strip(runs["finetune"].rows)[0]  # the same dense level
    losses = {name: [r["loss"] for r in run.rows[1:]] for name, run in runs.items()}
    assert losses["lr1"] != losses["finetune"] and losses["lr1"] != losses["rewind1"]
    assert load_config(None, tiny_overrides + ["prune.retrain=lr_rewind"]).hash() != \
        load_config(None, tiny_overrides + ["prune.retrain=finetune"]).hash()


def test_a_rewind_point_past_training_is_one_line_before_training(tiny_overrides, tmp_path):
    with pytest.raises(UserError, match=r"prune.rewind_to: must be below train.epochs \(2\)"):
        load_config(None, tiny_overrides + ["prune.retrain=lr_rewind", "prune.rewind_to=2"])
    cfg = load_config(None, tiny_overrides + ["prune.retrain=lr_rewind", "prune.rewind_to=100000",
                                              "prune.rewind_unit=iteration"])
    with pytest.raises(UserError, match="prune.rewind_to"):
        run_curve(cfg, tmp_path / "r", **quiet)
    assert not (tmp_path / "r/curve.csv").exists()


def test_the_cli_refuses_a_bad_rewind_point_in_one_line(tiny_overrides, tmp_path, capsys):
    from sdd_opt.testing import run_cli

    sets = [a for o in tiny_overrides + ["prune.retrain=lr_rewind", "prune.rewind_to=5"] for a in ("--set", o)]
    code, out, err = run_cli(capsys, "train", "--out", str(tmp_path / "r"), *sets)
    assert code == 2 and err.strip().count("\n") == 0 and "prune.rewind_to" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_study_searches_the_retraining_mode(tmp_path):
    import optuna

    from sdd_opt.study.objective import Objective
    from sdd_opt.study.runner import create_or_resume, work
    from sdd_opt.study.spec import load_study_spec
    from sdd_opt.testing import tiny_study

    study = tiny_study(tmp_path, name="retrain-modes", sampler={"name": "grid"}, budget={"n_trials": 2}, search_space={
        "prune.retrain": {"type": "categorical", "choices": ["rewind", "lr_rewind"]}})
    study["base"]["prune"]["rewind_to"] = 1
    study["base"]["train"]["epochs"] = 3
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    spec = load_study_spec(path)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna_study = create_or_resume(spec, optuna.storages.RDBStorage(url), url)
    res = work(optuna_study, Objective(spec, tmp_path / "art", log=lambda *_: None), n_trials=2, log=lambda *_: None)
    assert res.completed == 2
    trials = optuna_study.trials
    assert sorted(t.params["prune.retrain"] for t in trials) == ["lr_rewind", "rewind"]
    curves = {t.params["prune.retrain"]: t.user_attrs["curve"] for t in trials}
    assert [r["epochs"] for r in curves["lr_rewind"]] == [3, 2, 2]
    assert curves["lr_rewind"][1]["loss"] != curves["rewind"][1]["loss"]
