"""The public Python API (sdd_opt/api.py, docs/python.md): what it exports is true, import stays
light, a study reads as DataFrames and models, and the documented example runs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import sdd_opt
import sdd_opt.study
from sdd_opt.testing import tiny_study

ROOT = Path(__file__).resolve().parents[1]


def test_every_exported_name_exists_and_the_docstrings_list_exactly_them():
    for module in (sdd_opt, sdd_opt.study):
        for name in module.__all__:
            assert getattr(module, name) is not None, name
    lines = [line.split("import", 1)[1].split("#")[0] for line in sdd_opt.__doc__.splitlines()
             if "from sdd_opt import" in line]
    listed = {n.strip() for line in lines for n in line.split(",")}
    assert listed == set(sdd_opt.__all__)
    assert set(re.findall(r":(?:func|class):`(\w+)`", sdd_opt.study.__doc__)) - {"open_study", "run_study"} \
        == set(sdd_opt.study.__all__)
    doc = (ROOT / "docs" / "python.md").read_text()
    assert all(f"`{n}" in doc or f".{n}(" in doc for n in ("open_study", "run_study", "load_model", "evaluate_model",
                                                          "front", "curves", "trials", "export"))


def test_import_sdd_opt_loads_neither_torch_nor_optuna():
    code = "import sys, sdd_opt; print(sorted(m for m in ('torch', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tmp, levels=3)))
    url = f"sqlite:///{tmp / 'tiny.db'}"
    study = sdd_opt.run_study(path, storage=url, n_trials=3, jobs=1, artifacts=str(tmp / "art"))
    return study, url, tmp


def test_open_study_reads_the_front_trials_and_curves(toy, capsys):
    from sdd_opt.testing import run_cli

    _, url, tmp = toy
    study = sdd_opt.open_study("tiny", storage=url, artifacts=str(tmp / "art"))
    assert isinstance(study, sdd_opt.Study) and "tiny" in repr(study)
    front = study.front()
    code, out, _ = run_cli(capsys, "study", "pareto", "tiny", "--storage", url, "--levels", "--format", "csv")
    assert code == 0 and out.strip() == front.to_csv(index=False).strip()  # what the CLI prints
    assert list(study.front(levels=False)["trial"]) == sorted(t.number for t in study.optuna.best_trials)
    trials = study.trials()
    assert list(trials["trial"]) == [0, 1, 2] and set(trials["state"]) == {"COMPLETE"}
    assert {"val_acc", "sparsity", "remedy", "kept_levels", "param:prune.rate"} <= set(trials.columns)
    curves = study.curves()
    assert len(curves) == sum(trials["levels"]) and {"trial", "level", "val_acc", "test_acc"} <= set(curves.columns)
    for _, row in front.iterrows():  # a front level's weights are kept
        assert row["level"] in trials.set_index("trial").loc[row["trial"], "kept_levels"]


def test_study_load_model_gives_the_recorded_accuracy_kept_or_retrained(toy, tmp_path):
    import torch

    from sdd_opt.exported import evaluate_model
    from sdd_opt.study.export_models import write_point

    _, url, tmp = toy
    study = sdd_opt.open_study("tiny", storage=url, artifacts=str(tmp / "art"))
    front = study.front()
    row = front.iloc[0]
    model = study.load_model(int(row["trial"]), int(row["level"]))
    assert isinstance(model, torch.nn.Module)
    curves = study.curves()
    off = curves[~curves.set_index(["trial", "level"]).index.isin(list(zip(front["trial"], front["level"])))].iloc[0]
    t = next(t for t in study.optuna.trials if t.number == off["trial"])
    info = write_point(t, int(off["level"]), tmp_path / "off", None, "tiny", log=lambda m: None)
    assert info["weights"] == "retrained"  # not a front level: never kept
    assert evaluate_model(tmp_path / "off") == off["test_acc"]
    with pytest.raises(sdd_opt.UserError, match="no trial 99"):
        study.load_model(99)
    with pytest.raises(sdd_opt.UserError, match="not found"):
        sdd_opt.open_study("nope", storage=url)


def test_the_python_example_runs(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py"), str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "weights stored" in res.stdout and "pruned to zero" in res.stdout
