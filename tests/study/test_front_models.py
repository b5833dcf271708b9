"""Front models: a study keeps the weights of its all-levels front, drops the rest after a grace
period, and ``study export --weights`` turns the front into loadable models."""

import io
import json
import shutil

import optuna
import pytest
import torch
import yaml
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState, create_trial

from sdd_opt.exported import evaluate_model, folder_metrics, load_model
from sdd_opt.study.front_models import OFF_ATTR_PREFIX, Sweeper, front_pairs
from sdd_opt.study.pareto import levels_front
from sdd_opt.study.runner import load_stored
from sdd_opt.testing import run_cli, tiny_study


# ---------------------------------------------------------------------- the front and the sweep
def test_front_pairs_keep_the_lowest_of_equal_points_and_drop_dominated_ones():
    pts = [(3, 1, 0.9, 0.5), (1, 2, 0.9, 0.5), (1, 0, 0.95, 0.0), (2, 0, 0.8, 0.0), (2, 1, 0.85, 0.5), (2, 2, 0.7, 0.9),
           (4, 0, float("nan"), 0.99)]
    assert front_pairs(pts) == {(1, 2), (1, 0), (2, 2)}


def _curve(*points):
    return [{"level": i, "val_acc": v, "sparsity": s, "test_acc": v} for i, (v, s) in enumerate(points)]


def _trial(state, curve, weights):
    values = [curve[-1]["val_acc"], curve[-1]["sparsity"]] if state == TrialState.COMPLETE else None
    return create_trial(state=state, values=values, user_attrs={"curve": curve, "weights": weights})


def test_sweeper_deletes_weights_off_the_front_only_after_the_grace_period(tmp_path):
    store = FileSystemArtifactStore(tmp_path)
    for aid in ("a0", "a1", "b1", "f0", "r0"):
        store.write(aid, io.BytesIO(b"w"))
    study = optuna.create_study(directions=["maximize", "maximize"])
    study.add_trial(_trial(TrialState.COMPLETE, _curve((0.95, 0.0), (0.7, 0.5)), {"0": "a0", "1": "a1"}))
    study.add_trial(_trial(TrialState.FAIL, _curve((0.5, 0.0)), {"0": "f0"}))
    now = [1000.0]
    sweeper = Sweeper(store, grace=60, clock=lambda: now[0], log=lambda m: None)
    assert sweeper.sweep(study) == 1  # the failed trial's weights: no reader, gone at once
    assert not (tmp_path / "f0").exists() and (tmp_path / "a1").exists()
    # trial 2 dominates trial 0's level 1; a running trial's weights are never touched
    study.add_trial(_trial(TrialState.COMPLETE, _curve((0.75, 0.0), (0.9, 0.5)), {"1": "b1"}))
    study.add_trial(_trial(TrialState.RUNNING, _curve((0.1, 0.0)), {"0": "r0"}))
    assert sweeper.sweep(study) == 0
    assert study.user_attrs[f"{OFF_ATTR_PREFIX}0"] == {"1": 1000.0}  # seen off the front now
    now[0] += 59
    other = Sweeper(store, grace=60, clock=lambda: now[0], log=lambda m: None)  # another worker: same record
    assert other.sweep(study) == 0 and (tmp_path / "a1").exists()
    now[0] += 1
    assert other.sweep(study) == 1
    assert not (tmp_path / "a1").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"a0", "b1", "r0"}
    assert study.user_attrs[f"{OFF_ATTR_PREFIX}0"] == {"1": 1000.0}  # the first sighting stands


# ---------------------------------------------------------------------- a whole tiny study
@pytest.fixture
def study_with_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SDD_OPT_WEIGHTS_GRACE", "0")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tmp_path, levels=3, budget={"n_trials": 4})))
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    code, _, err = run_cli(capsys, "study", "run", str(path), "--storage", url, "--artifacts",
                             str(tmp_path / "art"), "--jobs", "1", "--no-progress")
    assert code == 0, err
    return url, tmp_path


def _kept(study):
    return {(t.number, int(k)): v for t in study.get_trials() for k, v in (t.user_attrs.get("weights") or {}).items()}


def test_export_weights_gives_models_with_the_recorded_test_accuracy(study_with_weights, capsys):
    url, tmp = study_with_weights
    study, spec = load_stored("tiny", optuna.storages.RDBStorage(url))
    front = levels_front(study, spec)
    pairs = set(zip(front["trial"], front["level"]))
    kept = _kept(study)
    # the store holds the weights of the front's levels, and (grace 0) nothing else
    stored = {p.name for p in (tmp / "art").glob("sdd-weights-*")}
    assert pairs <= set(kept) and stored == {kept[p] for p in pairs}
    # run directories keep only the last level (staged levels dropped); delete them all before exporting
    for run in (tmp / "art" / "runs").iterdir():
        assert len(list((run / "checkpoints").glob("level_*.pt"))) <= 1
    shutil.rmtree(tmp / "art" / "runs")
    shutil.rmtree(tmp / "art" / "shared")
    code, out, err = run_cli(capsys, "study", "export", "tiny", "--storage", url, "--artifacts", str(tmp / "art"),
                             "--out", str(tmp / "exp"), "--weights")
    assert code == 0, err
    assert f"wrote {len(front)} model folder(s)" in out and f"{len(front)} from the artifact store, 0 retrained" in out
    table = (tmp / "exp" / "front.csv").read_text().splitlines()
    assert len(table) == len(front) + 1 and table[0].endswith("folder,weights")
    for _, row in front.iterrows():
        folder = tmp / "exp" / f"trial{row['trial']:04d}_level{row['level']:02d}"
        ckpt = torch.load(folder / "model.pt", weights_only=True)
        assert set(ckpt) >= {"state_dict", "masks", "level", "sparsity"} and ckpt["level"] == row["level"]
        model = load_model(folder)
        assert isinstance(model, torch.nn.Module) and not model.training
        assert evaluate_model(folder, model=model) == row["test_acc"]  # exactly the recorded value
        assert evaluate_model(folder, "val") == row["val_acc"]
        assert folder_metrics(folder)["test_acc"] == row["test_acc"]
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["weights"] == "stored" and prov["trial"] == row["trial"] and "torch" in prov["trial_versions"]


def test_a_level_without_weights_is_retrained_and_the_export_says_so(study_with_weights, capsys):
    url, tmp = study_with_weights
    study, spec = load_stored("tiny", optuna.storages.RDBStorage(url))
    row = levels_front(study, spec).iloc[-1]
    (tmp / "art" / _kept(study)[(row["trial"], row["level"])]).unlink()  # e.g. a study from before weights were kept
    code, out, err = run_cli(capsys, "study", "export", "tiny", "--storage", url, "--artifacts", str(tmp / "art"),
                             "--out", str(tmp / "exp"), "--weights")
    assert code == 0, err
    assert f"trial {row['trial']} level {row['level']}: its weights are no longer in the artifact store; " \
           "retraining it from its config" in out and "1 retrained" in out
    folder = tmp / "exp" / f"trial{row['trial']:04d}_level{row['level']:02d}"
    assert json.loads((folder / "provenance.json").read_text())["weights"] == "retrained"
    assert evaluate_model(folder) == row["test_acc"]  # on the CPU the retrained level is the same model


def test_load_model_refuses_a_folder_that_is_not_an_export(tmp_path):
    from sdd_opt.errors import UserError

    with pytest.raises(UserError, match="no config.yaml"):
        load_model(tmp_path)


# ---------------------------------------------------------------------- several workers, PostgreSQL
def test_two_workers_on_postgresql_export_models_without_their_run_directories(tmp_path, capsys, monkeypatch):
    """Two workers (one process each) share the study and the artifact store; their run directories
    are deleted before the export, which still loads every front model from the store."""
    from .db import server_url, tracked_study
    from .test_distributed import Worker, create, worker_here, write_study

    url = server_url("postgresql")
    monkeypatch.setenv("SDD_OPT_WEIGHTS_GRACE", "0")
    path = write_study(tmp_path, levels=3)
    with tracked_study(url) as name:
        create(capsys, path, url, name)
        other = Worker(tmp_path, name, url, 4, "b")
        code, out = worker_here(capsys, tmp_path, name, url, 4)
        assert code == 0, out
        assert other.wait() == 0, other.text()
        study, spec = load_stored(name, optuna.storages.RDBStorage(url))
        done = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(done) == 4 and len({t.user_attrs["run_dirs"][0] for t in done}) >= 2
        front = levels_front(study, spec)
        kept = _kept(study)
        assert {p.name for p in (tmp_path / "art").glob("sdd-weights-*")} == \
            {kept[p] for p in zip(front["trial"], front["level"]) if p in kept}  # nothing off the front is kept
        for sub in ("runs", "shared", "teachers"):
            shutil.rmtree(tmp_path / "art" / sub, ignore_errors=True)
        code, out, err = run_cli(capsys, "study", "export", name, "--storage", url, "--artifacts",
                                 str(tmp_path / "art"), "--out", str(tmp_path / "exp"), "--weights")
        assert code == 0, err
        assert f"wrote {len(front)} model folder(s)" in out
        stored = 0
        for _, row in front.iterrows():
            folder = tmp_path / "exp" / f"trial{row['trial']:04d}_level{row['level']:02d}"
            assert evaluate_model(folder) == row["test_acc"]
            stored += json.loads((folder / "provenance.json").read_text())["weights"] == "stored"
        assert stored == sum(1 for p in zip(front["trial"], front["level"]) if p in kept) >= 1


# ---------------------------------------------------------------------- an S3 artifact store
def test_an_s3_artifact_store_keeps_the_weights_and_serves_the_export(tmp_path, capsys, monkeypatch):
    """``--artifacts s3://BUCKET/PREFIX`` (moto's in-process S3): weights and curves go to the bucket,
    run directories stay on the worker, and an export from another directory needs only the bucket."""
    pytest.importorskip("boto3", reason="pip install -e '.[s3]'")
    moto = pytest.importorskip("moto", reason="pip install -e '.[dev]'")
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SDD_OPT_WEIGHTS_GRACE", "0")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tmp_path, levels=2, budget={"n_trials": 2})))
    url = f"sqlite:///{tmp_path / 'worker' / 'tiny.db'}"
    (tmp_path / "worker").mkdir()
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="sdd")
        code, _, err = run_cli(capsys, "study", "run", str(path), "--storage", url, "--artifacts", "s3://sdd/studies",
                               "--jobs", "1", "--no-progress")
        assert code == 0, err
        keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="sdd")["Contents"]}
        assert all(k.startswith("studies/") for k in keys)
        assert any(k.startswith("studies/sdd-weights-") for k in keys)
        assert (tmp_path / "worker" / "artifacts" / "runs").is_dir()  # run directories stay local
        shutil.rmtree(tmp_path / "worker" / "artifacts")
        code, out, err = run_cli(capsys, "study", "export", "tiny", "--storage", url, "--artifacts", "s3://sdd/studies",
                                 "--out", str(tmp_path / "exp"), "--weights")
        assert code == 0, err
        _dashboard_serves_a_curve_from(url, "s3://sdd/studies")
    assert " 0 retrained" in out
    study, spec = load_stored("tiny", optuna.storages.RDBStorage(url))
    for _, row in levels_front(study, spec).iterrows():
        assert evaluate_model(tmp_path / "exp" / f"trial{row['trial']:04d}_level{row['level']:02d}") == row["test_acc"]


def _dashboard_serves_a_curve_from(url, artifacts):
    """``sdd-opt dashboard --artifacts s3://...``: the app reads the trials' curve.png from the bucket."""
    from wsgiref.util import setup_testing_defaults

    from sdd_opt.report.dashboard import make_app

    app, _ = make_app(url, artifacts)
    study = optuna.load_study(study_name="tiny", storage=url)
    trial = study.get_trials()[0]
    meta = next(m for m in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
                if m.filename == "curve.png")
    environ = {"PATH_INFO": f"/artifacts/{study._study_id}/{trial._trial_id}/{meta.artifact_id}"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200") and body[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("env", "artifacts", "message"), [
    ({"SDD_OPT_WEIGHTS_GRACE": "soon"}, None, "error: $SDD_OPT_WEIGHTS_GRACE: 'soon' is not a number of seconds"),
    ({}, "s3://", "error: --artifacts s3://: expected s3://BUCKET[/PREFIX]"),
])
def test_bad_weights_settings_are_refused_before_anything_is_stored(tmp_path, capsys, monkeypatch, env, artifacts,
                                                                     message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tmp_path)))
    extra = ["--artifacts", artifacts] if artifacts else []
    code, _, err = run_cli(capsys, "study", "run", str(path), "--storage", f"sqlite:///{tmp_path / 'x.db'}", *extra)
    assert code == 2 and err.strip() == message
    assert not (tmp_path / "x.db").exists()
