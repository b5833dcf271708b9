"""examples/plugins/README.md's commands, run as a user runs them: a study over a user's own model and
dataset with two local workers, exported, and one exported config re-run to the trial's point.

The commands are read from the README's ``sh`` block and run in a copy of the example folder with
the ``sdd-opt`` script of this environment (PYTHONPATH: this tree), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.study.db import server_url, tracked_studies, unique_name

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples/plugins"
STORAGE = "sqlite:///plugins.db"
NAME = "plugin-example"


def readme_commands() -> list[str]:
    text = (EXAMPLE / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block, "examples/plugins/README.md has no sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _run_example(tmp_path: Path, storage: str, name: str) -> Path:
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work)
    if name != NAME:
        (work / "study.yaml").write_text((work / "study.yaml").read_text().replace(f"name: {NAME}", f"name: {name}"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("SDD_OPT_STORAGE", None)
    commands = readme_commands()
    assert [shlex.split(c)[:3] for c in commands] == [["sdd-opt", "study", "run"], ["sdd-opt", "study", "export"],
                                                      ["sdd-opt", "train", "--config"]]
    for command in commands:
        argv = [storage if a == STORAGE else name if a == NAME else a for a in shlex.split(command)]
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        if argv[:3] == ["sdd-opt", "study", "run"]:
            assert proc.stdout.count("worker done:") == 2 and "worker exit codes" not in proc.stderr
    return work


def _check_rerun(work: Path) -> None:
    front = {row["config"]: row for row in csv.DictReader((work / "exported/front.csv").open())}
    assert "trial0000.yaml" in front, sorted(front)
    point = front["trial0000.yaml"]
    last = list(csv.DictReader((work / "rerun/curve.csv").open()))[-1]
    assert int(last["level"]) == int(point["level"])
    assert float(last["val_acc"]) == pytest.approx(float(point["val_acc"]), abs=1e-9)
    assert float(last["test_acc"]) == pytest.approx(float(point["test_acc"]), abs=1e-9)
    assert "tabular:mlp" in (work / "rerun/config.yaml").read_text()  # provenance names the plug-in
    assert not (work / "__pycache__").exists()


def test_the_example_runs_on_sqlite_with_two_workers(tmp_path):
    _check_rerun(_run_example(tmp_path, STORAGE, NAME))


@pytest.mark.db
def test_the_example_runs_on_postgresql_with_two_workers(tmp_path):
    url = server_url("postgresql")
    name = unique_name("plugin-example")
    with tracked_studies(url) as names:
        names.append(name)
        _check_rerun(_run_example(tmp_path, url, name))
