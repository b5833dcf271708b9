import json

import pytest
import torch
from conftest import run_interrupted

from sdd_opt.checkpoints import load_checkpoint
from sdd_opt.config import load_config
from sdd_opt.errors import UserError
from sdd_opt.imp import run_curve
from sdd_opt.rundir import read_curve

quiet = dict(progress=False, log=lambda *_: None)



def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_curve_outputs_and_exact_sparsity(tiny_cfg, tmp_path):
    res = run_curve(tiny_cfg, tmp_path / "run", **quiet)
    out = tmp_path / "run"
    for name in ("config.yaml", "curve.csv", "metrics.json", "curve.png", "checkpoints/level_2.pt"):
        assert (out / name).exists(), name
    rows = read_curve(out / "curve.csv")
    assert [r["level"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["sparsity"] == pytest.approx(1 - 0.8 ** r["level"], abs=1e-3)
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and 0 <= r["train_acc"] <= 1
    ckpt = load_checkpoint(out / "checkpoints/level_2.pt")
    for name, mask in ckpt["masks"].items():
        w = ckpt["state_dict"][name]
        assert torch.all(w[mask == 0] == 0), name
    stored = (out / "config.yaml").read_text()
    assert "provenance" in stored and "torch" in stored
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"val", "test"} and metrics["levels_done"] == 3
    assert res.metrics["test"]["dense_acc"] == rows[0]["test_acc"]


def test_resume_equals_an_uninterrupted_run(tiny_cfg, tmp_path):
    full = run_curve(tiny_cfg, tmp_path / "full", **quiet)
    run_interrupted(tiny_cfg, tmp_path / "cut")
    assert len(read_curve(tmp_path / "cut/curve.csv")) == 2
    with pytest.raises(UserError, match="--resume"):
        run_curve(tiny_cfg, tmp_path / "cut", **quiet)
    resumed = run_curve(tiny_cfg, tmp_path / "cut", resume=True, **quiet)
    assert _strip(resumed.rows) == _strip(full.rows)
    a = load_checkpoint(tmp_path / "full/checkpoints/level_2.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "cut/checkpoints/level_2.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_config_and_a_corrupt_checkpoint(tiny_cfg, tiny_overrides, tmp_path):
    run_curve(tiny_cfg, tmp_path / "r", **quiet)
    other = load_config(None, tiny_overrides + ["train.lr=0.05"])
    with pytest.raises(UserError, match="different config"):
        run_curve(other, tmp_path / "r", resume=True, **quiet)
    (tmp_path / "r/checkpoints/level_2.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt"):
        run_curve(tiny_cfg, tmp_path / "r", resume=True, **quiet)


@pytest.mark.parametrize("extra", [
    ["prune.retrain=finetune"], ["prune.retrain=scratch"], ["prune.rewind_to=1"],
    ["prune.retrain=lr_rewind", "prune.rewind_to=1"],
    ["prune.rewind_to=3", "prune.rewind_unit=iteration"], ["prune.scope=layer"], ["train.schedule=multistep", "train.milestones=[1]"],
    ["train.schedule=cosine"], ["train.precision=bf16"],
])
def test_retrain_modes_and_schedules_run(tiny_overrides, tmp_path, extra):
    cfg = load_config(None, tiny_overrides + extra)
    res = run_curve(cfg, tmp_path / "r", **quiet)
    assert len(res.rows) == 3 and res.rows[-1]["sparsity"] == pytest.approx(0.36, abs=1e-3)
    if "prune.rewind_to=1" in extra:  # rewind and lr_rewind retrain the schedule's last epoch only
        assert res.rows[1]["epochs"] == 1 and res.rows[0]["epochs"] == 2


def test_rewind_past_training_is_refused_before_training(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["prune.rewind_to=100000", "prune.rewind_unit=iteration"])
    with pytest.raises(UserError, match="prune.rewind_to"):
        run_curve(cfg, tmp_path / "r", **quiet)
    assert not (tmp_path / "r/curve.csv").exists()


def test_distillation_trains_the_teacher_once(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["distill.enabled=true", "distill.alpha=0.9", "distill.temperature=4"])
    logs = []
    res = run_curve(cfg, tmp_path / "a", progress=False, log=logs.append)
    assert res.teacher.startswith("trained teacher")
    assert len(list((tmp_path / "teachers").glob("teacher_*.pt"))) == 1
    res2 = run_curve(cfg, tmp_path / "b", progress=False, log=logs.append)
    assert res2.teacher.startswith("cached teacher")
    assert _strip(res.rows) == _strip(res2.rows)


def test_a_finished_distillation_run_is_reused_without_its_teacher(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["distill.enabled=true", "distill.alpha=0.9", "distill.temperature=4"])
    first = run_curve(cfg, tmp_path / "a", progress=False, log=lambda m: None)
    for f in (tmp_path / "teachers").glob("teacher_*.pt"):
        f.unlink()  # a teacher would now have to be trained again
    logs = []
    again = run_curve(cfg, tmp_path / "a", resume=True, progress=False, log=logs.append)
    assert again.teacher == "" and not list((tmp_path / "teachers").glob("teacher_*.pt"))
    assert not any("teacher" in m for m in logs) and any("reusing the finished run" in m for m in logs)
    assert _strip(again.rows) == _strip(first.rows)
    recorded = json.loads((tmp_path / "a" / "metrics.json").read_text())["teacher"]
    assert recorded == first.teacher  # the run's record still says where its teacher came from


def test_collapse_early_stop(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["prune.levels=4", "prune.collapse_floor=0.99"])
    res = run_curve(cfg, tmp_path / "r", **quiet)
    assert res.stopped_early and len(res.rows) == 1 and "collapse_floor" in res.stop_reason


@pytest.mark.parametrize("retrain", ["rewind", "finetune", "lr_rewind"])
def test_a_shared_dense_level_changes_no_result(tiny_overrides, tmp_path, retrain):
    """Runs that differ only in the pruning schedule share level 0, and the curve stays the same."""
    base = tiny_overrides + [f"prune.retrain={retrain}"] + (["prune.rewind_to=1"] if retrain == "lr_rewind" else [])
    first = load_config(None, base + ["prune.rate=0.5"])
    other = load_config(None, base + ["prune.rate=0.3"])
    run_curve(first, tmp_path / "a", share_dir=tmp_path / "shared", **quiet)
    shared = run_curve(other, tmp_path / "b", share_dir=tmp_path / "shared", **quiet)
    alone = run_curve(other, tmp_path / "c", **quiet)
    assert shared.extra["levels_reused"] == 1 and not alone.extra["levels_reused"]
    assert _strip(shared.rows) == _strip(alone.rows)
    # a different dense training (another l2) is not shared
    l2 = run_curve(load_config(None, base + ["prune.rate=0.3", "train.weight_decay=0.01"]), tmp_path / "d",
                   share_dir=tmp_path / "shared", **quiet)
    assert not l2.extra["levels_reused"]


def _stops(tiny_overrides, *sets):
    return load_config(None, tiny_overrides + ["prune.rate=0.5", *sets])


def test_a_shorter_stop_is_served_from_a_longer_run_without_training(tiny_overrides, tmp_path):
    shared = dict(share_dir=tmp_path / "shared", keep_checkpoints="last", **quiet)
    long = run_curve(_stops(tiny_overrides, "prune.levels=4"), tmp_path / "long", **shared)
    logs = []
    short_cfg = _stops(tiny_overrides, "prune.target_sparsity=0.75")  # 2 levels at rate 0.5
    short = run_curve(short_cfg, tmp_path / "short", **{**shared, "log": logs.append})
    alone = run_curve(short_cfg, tmp_path / "alone", **quiet)
    assert short.extra["levels_reused"] == 3 and _strip(short.rows) == _strip(alone.rows) == _strip(long.rows[:3])
    assert not any(m.startswith("level ") for m in logs)  # nothing trained
    again = run_curve(short_cfg, tmp_path / "short", resume=True, **shared)  # a served run resumes as finished
    assert _strip(again.rows) == _strip(short.rows)


def test_a_longer_stop_continues_from_a_shorter_run(tiny_overrides, tmp_path):
    shared = dict(share_dir=tmp_path / "shared", keep_checkpoints="last", **quiet)
    run_curve(_stops(tiny_overrides, "prune.levels=2"), tmp_path / "short", **shared)
    long_cfg = _stops(tiny_overrides, "prune.levels=4")
    long = run_curve(long_cfg, tmp_path / "long", **shared)
    alone = run_curve(long_cfg, tmp_path / "alone", **quiet)
    assert long.extra["levels_reused"] == 3 and _strip(long.rows) == _strip(alone.rows)


def test_a_reused_prefix_stops_where_this_runs_collapse_floor_would(tiny_overrides, tmp_path):
    shared = dict(share_dir=tmp_path / "shared", keep_checkpoints="last", **quiet)
    run_curve(_stops(tiny_overrides, "prune.levels=3"), tmp_path / "free", **shared)
    floored = run_curve(_stops(tiny_overrides, "prune.levels=3", "prune.collapse_floor=0.99"), tmp_path / "f", **shared)
    assert len(floored.rows) == 1 and floored.stopped_early and floored.extra["levels_reused"] == 1
