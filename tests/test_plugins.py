"""Plug-in models and datasets (sdd_opt/plugins.py, docs/plugins.md): resolution, contract, identity."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from torch import nn

from sdd_opt import plugins
from sdd_opt.config import build_config
from sdd_opt.distill import teacher_key
from sdd_opt.errors import UserError
from sdd_opt.rundir import result_hash
from sdd_opt.sharing import dense_key, prefix_key
from sdd_opt.testing import run_cli

ROOT = Path(__file__).resolve().parents[1]

NET = textwrap.dedent("""
    from torch import nn

    def build(width, input_shape, num_classes, depth=1):
        layers = [nn.Flatten(), nn.LazyLinear(width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        head = nn.Linear(width, num_classes)
        return nn.Sequential(*layers, head)

    def load(data_dir, n=60, classes=3):
        import torch
        g = torch.Generator().manual_seed(0)
        def split(m):
            y = torch.arange(m) % classes
            return torch.randn(m, 6, generator=g) + y[:, None], y
        return {"train": split(n), "test": split(n // 2), "num_classes": classes}
""")


@pytest.fixture
def module(tmp_path, monkeypatch):
    """A fresh module (unique name) in a temporary folder outside the repository, on sys.path."""
    name = f"usernet_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / f"{name}.py").write_text(NET)
    monkeypatch.syspath_prepend(str(folder))
    yield name, folder / f"{name}.py"
    sys.modules.pop(name, None)
    for key in [k for k in plugins._CACHE if k[1].startswith(name)]:
        plugins._CACHE.pop(key)


def _cfg(name, tmp_path, **model):
    return build_config({"model": {"name": f"{name}:build", "width": 8, **model},
                         "data": {"name": f"{name}:load", "data_dir": str(tmp_path / "data")},
                         "train": {"epochs": 1, "batch_size": 32}, "prune": {"levels": 1}})


def test_builtin_hashes_are_unchanged():
    """Runs, shared levels and teachers stored before plug-ins existed keep their names."""
    default = build_config({})
    small = build_config({"data": {"name": "synthetic1d"}, "model": {"name": "mlp", "width": 8},
                          "distill": {"enabled": True}})
    got = [[c.hash(), result_hash(c), dense_key(c), prefix_key(c), teacher_key(c)] for c in (default, small)]
    assert got == [["dddac03ae664f0d6", "9afa601b97e26b5b", "9cb29312f3b1b383", "2f1d91c53d0de21f", "a4d04fdd4ca15dd3"],
                   ["b4d36a92f57e2f88", "dc99de4383f2e106", "16597a7e2987a976", "7dbeac3692c73071", "9c5a170b90dfdc0f"]]
    assert plugins.hash_fields(default) == {} and plugins.provenance_of(default) == {}


def test_a_builder_outside_the_repository_builds_with_extra_keys(module, tmp_path):
    from sdd_opt.data import load_data
    from sdd_opt.models import build_model

    name, path = module
    cfg = _cfg(name, tmp_path, depth=3)
    data = load_data(cfg.data, seed=0)
    assert data.input_shape == (6,) and data.num_classes == 3 and len(data.x_val) == 6  # sdd-opt's split
    assert data.noise_info["n_changed"] == int(0.2 * 54)  # and sdd-opt's noise
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 4  # depth 3 reached the builder
    prov = plugins.provenance_of(cfg)["plugins"]["model"]
    assert prov["path"] == f"{name}:build" and prov["file"] == str(path) and len(prov["source"]) == 16


def test_the_current_directory_is_searched(tmp_path, monkeypatch):
    name = f"cwdnet_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert plugins.resolve("model", f"{name}:build").module_file == str(tmp_path / f"{name}.py")
        assert not (tmp_path / "__pycache__").exists()  # nothing written beside the user's file
    finally:
        sys.modules.pop(name, None)


def test_a_changed_source_changes_every_hash(module, tmp_path):
    name, path = module
    cfg = _cfg(name, tmp_path)
    before = [cfg.hash(), result_hash(cfg), dense_key(cfg), teacher_key(cfg)]
    path.write_text(NET.replace("depth=1", "depth=2"))
    sys.modules.pop(name)
    plugins._CACHE.clear()
    after = [cfg.hash(), result_hash(cfg), dense_key(cfg), teacher_key(cfg)]
    assert all(a != b for a, b in zip(before, after))


def test_extra_keys_are_checked_against_the_signature(module, tmp_path):
    name, _ = module
    with pytest.raises(UserError, match="model: unknown key 'depht'"):
        _cfg(name, tmp_path, depht=2)
    with pytest.raises(UserError, match="unknown key 'depth' .cnn1d is built in"):
        build_config({"model": {"name": "cnn1d", "depth": 2}})
    with pytest.raises(UserError, match="data: unknown key 'rows'"):
        build_config({"data": {"name": f"{name}:load", "rows": 3}, "model": {"name": f"{name}:build"}})
    assert build_config({"data": {"name": f"{name}:load", "n": 30}}).data.model_extra == {"n": 30}


def test_an_entry_point_gives_a_short_name(tmp_path, monkeypatch):
    name = f"eppkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NET)
    info = tmp_path / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (info / "entry_points.txt").write_text(f"[sdd_opt.models]\ntinynet_{name} = {name}:build\n"
                                           f"[sdd_opt.datasets]\ntinydata_{name} = {name}:load\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins._entry_points.cache_clear()
    try:
        cfg = build_config({"model": {"name": f"tinynet_{name}"}, "data": {"name": f"tinydata_{name}"}})
        prov = plugins.provenance_of(cfg)["plugins"]
        assert prov["model"]["path"] == f"{name}:build" and prov["model"]["version"] == "1.2.3"
        assert prov["data"]["path"] == f"{name}:load"
    finally:
        sys.modules.pop(name, None)
        plugins._entry_points.cache_clear()


@pytest.mark.parametrize("form", ["dataset", "raw", "numpy", "separate"])
def test_loader_return_forms(form):
    import numpy as np
    from torch.utils.data import TensorDataset

    from sdd_opt.data import RawData

    x, y = torch.randn(8, 2, 5), torch.arange(8) % 2
    out = {"dataset": {"train": TensorDataset(x, y), "test": TensorDataset(x, y), "num_classes": 2},
           "raw": RawData(x, y, x, y, 2, False),
           "numpy": {"train": (x.numpy(), y.numpy()), "test": (np.asarray(x), np.asarray(y)), "num_classes": 2},
           "separate": {"x_train": x, "y_train": y, "x_test": x, "y_test": y, "num_classes": 2}}[form]
    f = plugins._fields(out, "m:load")
    plugins.check_data(f, "m:load")
    assert tuple(f["x_train"].shape) == (8, 2, 5) and f["y_test"].tolist() == y.tolist()


def test_a_layer_can_be_left_dense():
    from sdd_opt.prune import (
        full_masks,
        magnitude_prune,
        measured_sparsity,
        prunable_parameters,
    )

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model[2].sdd_opt_prune = False
    assert list(prunable_parameters(model)) == ["0.weight"]
    masks = magnitude_prune(model, full_masks(model), 0.5)
    with torch.no_grad():
        model[0].weight.mul_(masks["0.weight"])
    assert measured_sparsity(model) == 0.5 and bool((model[2].weight != 0).all())


def _study_file(tmp_path, name: str, study: str) -> Path:
    from sdd_opt.testing import tiny_study

    s = tiny_study(tmp_path, name=study, search_space={
        "train.weight_decay": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "model.depth": {"type": "int", "low": 1, "high": 2}})
    s["base"]["model"] = {"name": f"{name}:build", "width": 8, "depth": 1}
    s["base"]["data"] = {"name": f"{name}:load", "data_dir": str(tmp_path / "data")}
    s["budget"] = {"n_trials": 2}
    path = tmp_path / "s.yaml"
    import yaml

    path.write_text(yaml.safe_dump(s))
    return path


def test_two_local_workers_import_a_plugin_from_pythonpath(tmp_path, monkeypatch):
    """`study run --jobs 2` run from a folder that is not the plug-in's: the child worker finds
    it through the same PYTHONPATH; each trial records the plug-in; a searched extra key works."""
    import optuna

    name = f"jobsnet_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / f"{name}.py").write_text(NET)
    work = tmp_path / "work"
    work.mkdir()
    path = _study_file(work, name, "plug-jobs")
    url = f"sqlite:///{work / 's.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "sdd_opt", "study", "run", str(path), "--storage", url,
                           "--jobs", "2", "--no-progress"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "worker exit codes" not in proc.stderr
    assert proc.stdout.count("worker done:") == 2
    trials = optuna.load_study(study_name="plug-jobs", storage=url).get_trials()
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 2
    for t in trials:
        assert t.user_attrs["plugins"]["model"]["path"] == f"{name}:build"
        assert t.user_attrs["plugins"]["model"]["file"] == str(folder / f"{name}.py")
        assert t.user_attrs["config"]["model"]["depth"] == t.params["model.depth"]


def test_a_worker_that_cannot_import_the_plugin_stops_before_taking_a_trial(module, tmp_path, capsys, monkeypatch):
    import optuna

    name, _ = module
    monkeypatch.chdir(tmp_path)
    path = _study_file(tmp_path, name, "plug-missing")
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = run_cli(capsys, "study", "create", str(path), "--storage", url)
    assert code == 0, err
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # not the plug-in's folder
    proc = subprocess.run([sys.executable, "-m", "sdd_opt", "study", "worker", "plug-missing", "--storage", url,
                           "--n-trials", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: model.name: cannot import '{name}:build' (ModuleNotFoundError")
    assert optuna.load_study(study_name="plug-missing", storage=url).get_trials() == []
    assert not (tmp_path / "artifacts").exists()


def test_grpc_proxy_workers_import_the_same_path(module, tmp_path, capsys, monkeypatch):
    """A worker behind `storage serve` (grpc://) without the plug-in stops before a trial; one with
    it on PYTHONPATH runs the trial and records the plug-in."""
    pytest.importorskip("grpc", reason="the gRPC proxy needs grpcio and protobuf (pip install -e '.[grpc]')")
    import socket
    import time

    import optuna

    name, path = module
    monkeypatch.chdir(tmp_path)
    study_path = _study_file(tmp_path, name, "plug-grpc")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run_cli(capsys, "study", "create", str(study_path), "--storage", url)[0] == 0
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "SDD_OPT_STORAGE": url}
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "sdd_opt", "storage", "serve", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in (tmp_path / "serve.log").read_text():
            assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        worker = [sys.executable, "-m", "sdd_opt", "study", "worker", "plug-grpc", "--storage",
                  f"grpc://127.0.0.1:{port}", "--n-trials", "1", "--artifacts", str(tmp_path / "art")]
        env.pop("SDD_OPT_STORAGE")
        missing = subprocess.run(worker, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert missing.returncode == 2 and f"cannot import '{name}:build'" in missing.stderr, missing.stderr
        assert optuna.load_study(study_name="plug-grpc", storage=url).get_trials() == []
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(path.parent)])
        ok = subprocess.run(worker, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert ok.returncode == 0, ok.stderr[-3000:]
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    (trial,) = optuna.load_study(study_name="plug-grpc", storage=url).get_trials()
    assert trial.state.name == "COMPLETE" and trial.user_attrs["plugins"]["model"]["file"] == str(path)


def test_a_source_changed_under_a_running_study_is_refused_for_new_trials(module, tmp_path, capsys, monkeypatch):
    """The study stores the plug-in's source hash; a worker checks it before every trial it takes,
    and `study run` refuses to resume: nothing is stored in either case."""
    from types import SimpleNamespace

    import optuna

    from sdd_opt.study.runner import _before_trial, load_stored
    from sdd_opt.study.storage import open_storage

    name, path = module
    monkeypatch.chdir(tmp_path)
    study_path = _study_file(tmp_path, name, "plug-changed")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run_cli(capsys, "study", "create", str(study_path), "--storage", url)[0] == 0
    study, spec = load_stored("plug-changed", open_storage(url))
    digest = plugins.resolve("model", f"{name}:build").source_hash  # the module holds both
    assert study.user_attrs[plugins.STUDY_ATTR] == {f"model.name={name}:build": digest, f"data.name={name}:load": digest}
    running = SimpleNamespace(spec=spec, last_trial_id=None)
    _before_trial(study, running)  # unchanged: the worker goes on
    path.write_text(NET + "\n# tuned\n")  # edited while the study runs (the old code stays imported)
    with pytest.raises(UserError, match=f"model.name: the source of {name}:build changed since study 'plug-changed'"):
        _before_trial(study, running)
    code, _, err = run_cli(capsys, "study", "run", str(study_path), "--storage", url, "--jobs", "1")
    assert code == 2 and "changed since study 'plug-changed' was created" in err
    assert optuna.load_study(study_name="plug-changed", storage=url).get_trials() == []
