"""A whole tiny study through the CLI on a temporary SQLite file."""

import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest

from sdd_opt.rundir import read_curve
from sdd_opt.testing import run_cli


@pytest.fixture
def finished_study(study_file, sqlite_url, tmp_path, capsys):
    path = study_file()
    code, out, err = run_cli(capsys, "study", "run", str(path), "--storage", sqlite_url,
                             "--artifacts", str(tmp_path / "art"), "--seed-with-paper")
    assert code == 0, err
    return path, out


def test_tiny_study_end_to_end(finished_study, sqlite_url, tmp_path, capsys):
    path, out = finished_study
    assert "Pareto front" in out and "sdd-opt dashboard" in out and "study export" in out
    # the study's progress, in plain lines (no terminal here): trials out of the budget, epochs, the front
    assert "study tiny: 0/3 trials complete" in out and "study tiny: 3/3 trials complete" in out
    assert "front so far (val acc @ sparsity): " in out and "\r" not in out
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    assert study.metric_names == ["val_acc", "sparsity"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    # the paper's reference points came first
    assert complete[0].params["train.weight_decay.off"] is True and complete[0].params["distill.enabled"] is False
    assert complete[1].params["train.weight_decay"] == pytest.approx(5e-3)
    for t in complete:
        curve = t.user_attrs["curve"]
        assert len(curve) == 3 and curve[0]["sparsity"] == 0.0  # every level kept
        assert t.values[0] == pytest.approx(curve[t.user_attrs["selected_level"]]["val_acc"])
        assert t.user_attrs["seeds"] == [0] and "torch" in t.user_attrs["versions"]
        assert t.user_attrs["config"]["train"]["epochs"] == 2
        assert {"sdd_gap", "dip_acc", "peak_acc", "remedy"} <= set(t.user_attrs)
        names = {a.filename for a in optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)}
        assert {"curve.csv", "curve.png"} <= names
    assert study.best_trials

    # pareto, status, list agree with the storage
    code, out, _ = run_cli(capsys, "study", "pareto", "tiny", "--storage", sqlite_url, "--format", "json")
    front = json.loads(out)
    assert code == 0 and sorted(r["trial"] for r in front) == sorted(t.number for t in study.best_trials)
    code, out, _ = run_cli(capsys, "study", "pareto", "tiny", "--storage", sqlite_url, "--levels", "--format", "csv")
    assert code == 0 and out.startswith("trial,level,val_acc,sparsity")
    code, out, _ = run_cli(capsys, "study", "status", "tiny", "--storage", sqlite_url)
    assert "complete 3" in out and "hypervolume" in out

    # export -> re-run reproduces the first exported trial's point exactly (one seed, CPU)
    code, out, _ = run_cli(capsys, "study", "export", "tiny", "--storage", sqlite_url, "--out", str(tmp_path / "exp"))
    assert code == 0
    front_csv = (tmp_path / "exp/front.csv").read_text().splitlines()
    assert len(front_csv) == len(study.best_trials) + 1
    first = sorted(study.best_trials, key=lambda t: t.number)[0]
    cfg_path = tmp_path / "exp" / f"trial{first.number:04d}.yaml"
    code, _, err = run_cli(capsys, "train", "--config", str(cfg_path), "--out", str(tmp_path / "rerun"), "--quiet")
    assert code == 0, err
    last = read_curve(tmp_path / "rerun/curve.csv")[-1]
    assert last["val_acc"] == pytest.approx(first.values[0], abs=1e-9)
    assert last["sparsity"] == pytest.approx(first.values[1], abs=1e-9)


def test_resume_with_a_changed_search_space_is_refused(finished_study, study_file, sqlite_url, tmp_path, capsys):
    changed = study_file(search_space={"prune.rate": {"type": "float", "low": 0.2, "high": 0.3}})
    code, _, err = run_cli(capsys, "study", "run", str(changed), "--storage", sqlite_url)
    assert code == 2 and "different search_space" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "study", "run", str(finished_study[0]), "--storage", sqlite_url,
                           "--set", "train.epochs=3")
    assert code == 2 and "different base" in err
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert len(study.trials) == 3  # nothing added by the refused runs


def test_resume_runs_only_the_missing_trials(finished_study, sqlite_url, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "study", "run", str(finished_study[0]), "--storage", sqlite_url,
                           "--artifacts", str(tmp_path / "art"), "--n-trials", "4")
    assert code == 0 and "1 trial(s) run here" in out
    assert len(optuna.load_study(study_name="tiny", storage=sqlite_url).trials) == 4


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_dashboard_api_lists_the_study(finished_study, sqlite_url, tmp_path):
    from sdd_opt.report.dashboard import make_app

    app, _ = make_app(sqlite_url, str(tmp_path / "art"))
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as resp:
            body = json.loads(resp.read())
        assert any(s["study_name"] == "tiny" for s in body["study_summaries"])
    finally:
        server.shutdown()
