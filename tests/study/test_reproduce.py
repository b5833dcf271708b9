"""Every command sdd-opt prints or stores for the user reproduces what it claims, run as written.

Each test makes a tiny study in folder ``a`` (a relative SQLite URL), takes the commands the user
is given -- the dashboard note, the summary ``study run`` and ``sdd-opt demo`` print, the HTML
report's "Reproduce" block, ``study create``'s worker hint, an exported config's header -- runs
each one unchanged in folder ``b`` (so the relative URL names a new database), and compares the
result with the original: the same trials (parameters, values, curves), the same front.
"""

from __future__ import annotations

import html
import re
import shlex
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna_dashboard import get_note

from sdd_opt.study import reproduce as rp
from sdd_opt.study.spec import parse_study
from sdd_opt.testing import run_cli, tiny_study

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys, monkeypatch, cwd: Path, command: str) -> str:
    """Run a printed ``sdd-opt ...`` command as written, in ``cwd``; returns its stdout."""
    argv = shlex.split(command)
    assert argv[0] == "sdd-opt", command
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    code, out, err = run_cli(capsys, *argv[1:])
    assert code == 0, (command, out, err)
    return out


def _line(out: str, prefix: str) -> str:
    found = [line[len(prefix):].strip() for line in out.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, (prefix, out)
    return found[0]


def _load(folder: Path, db: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / db}")


def _trials(study: optuna.Study) -> list[tuple]:
    """What must be equal in a reproduction: order, state, parameters, values and each level's accuracy."""
    return [(t.number, t.state.name, t.params, [round(v, 6) for v in t.values or []],
             [(r["level"], round(r["sparsity"], 6), round(r["val_acc"], 6)) for r in t.user_attrs.get("curve", [])])
            for t in study.trials]


def _note_command(study: optuna.Study) -> str:
    return re.search(r"Reproduce: `([^`]+)`", get_note(study)).group(1)


def _report_commands(path: Path) -> list[str]:
    block = re.search(r"<h3>Reproduce</h3><pre>(.*?)</pre>", path.read_text(), re.S).group(1)
    return html.unescape(block).splitlines()


@pytest.fixture
def study_yaml(tmp_path):
    """A tiny study file at an absolute path (the commands name it as given)."""
    def write(name: str = "tiny", **changes) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(tiny_study(tmp_path, name=name, **changes)))
        return path
    return write


def test_the_demos_commands_reproduce_its_study_front_report_and_exported_configs(
        tmp_path, capsys, monkeypatch, study_yaml):
    a, b = tmp_path / "a", tmp_path / "b"
    file = study_yaml("demo-copy", budget={"n_trials": 2})
    out = _run(capsys, monkeypatch, a, f"sdd-opt demo {file} --storage sqlite:///d.db --set train.epochs=1 "
                                       f"--n-trials 4 --jobs 1 --out out --no-progress")
    original = _load(a, "d.db", "demo-copy")
    command = _line(out, "reproduce: ")
    assert command == _note_command(original)  # printed and stored alike
    for flag in ("--storage 'sqlite:///d.db'", "--seed-with-paper", "--set train.epochs=1", "--n-trials 4", "--jobs 1"):
        assert flag in command, flag

    _run(capsys, monkeypatch, b, command)
    copy = _load(b, "d.db", "demo-copy")
    assert len(original.trials) == 4 and _trials(copy) == _trials(original)

    export = _line(out, "export:    ")
    for folder in (a, b):
        _run(capsys, monkeypatch, folder, export)
    front = [pd.read_csv(folder / "exported/demo-copy/front.csv") for folder in (a, b)]
    assert not front[0].empty
    pd.testing.assert_frame_equal(front[0], front[1])

    # the report's other commands (front table, all-levels front and export, curves figure) run as written
    c = tmp_path / "c"
    c.mkdir()
    for part in a.glob("d.db*"):  # with its WAL journal
        shutil.copy(part, c / part.name)
    page = (a / "out/report.html").read_text()
    snippets = [html.unescape(x) for x in re.findall(r"<code>(sdd-opt [^<]+)</code>", page)]
    assert len(snippets) == 4 and all("--storage 'sqlite:///d.db'" in x for x in snippets), snippets
    for snippet in snippets:
        _run(capsys, monkeypatch, c, snippet)
    assert (c / "curves.png").is_file() and (c / "exported/demo-copy/front.csv").is_file()

    run, export_again, report = _report_commands(a / "out/report.html")
    assert (run, export_again) == (command, export)
    _run(capsys, monkeypatch, b, report)
    assert _report_commands(b / "report.html") == [run, export_again, report]

    # an exported config's header: re-run it as written, in the export folder, to the trial's point
    config = sorted((a / "exported/demo-copy").glob("trial*.yaml"))[0]
    head = config.read_text().splitlines()[:2]
    val_acc = float(re.search(r"val_acc ([0-9.]+)", head[0]).group(1))
    train = head[1].split(": ", 1)[1]
    assert train.startswith(f"sdd-opt train --config {config.name} ")
    _run(capsys, monkeypatch, config.parent, train)
    stem = config.stem
    last = pd.read_csv(config.parent / f"storage/runs/{stem}/curve.csv").iloc[-1]
    assert last["val_acc"] == pytest.approx(val_acc, abs=1e-4)


def test_a_replayed_studys_commands_replay(tmp_path, capsys, monkeypatch):
    """Without --replay the note's command would train for hours; with it, the same trials in seconds."""
    a, b = tmp_path / "a", tmp_path / "b"
    file, table = ROOT / "studies/mnist1d_search.yaml", ROOT / "benchmarks/data/mnist1d_curves.csv"
    out = _run(capsys, monkeypatch, a, f"sdd-opt study run {file} --replay {table} --storage sqlite:///r.db "
                                       f"--name replayed-copy --n-trials 4")
    original = _load(a, "r.db", "replayed-copy")
    command = _line(out, "reproduce the study: ")
    assert command == _note_command(original)
    assert f"--replay {table}" in command and "--name replayed-copy" in command
    _run(capsys, monkeypatch, b, command)
    assert _trials(_load(b, "r.db", "replayed-copy")) == _trials(original)
    assert len(original.trials) == 4
    export = _line(out, "export the front:    ")
    _run(capsys, monkeypatch, a, export)
    header = next((a / "exported/replayed-copy").glob("trial*.yaml")).read_text().splitlines()[:3]
    assert header[1].startswith("# re-run (in this folder): sdd-opt train --config trial")
    assert header[2].startswith("# replayed: ") and "mnist1d_curves.csv" in header[2]  # the re-run trains for real


def test_study_creates_worker_hint_and_the_note_reproduce_a_created_study(tmp_path, capsys, monkeypatch, study_yaml):
    a, b = tmp_path / "a", tmp_path / "b"
    file = study_yaml("created", levels=1)
    out = _run(capsys, monkeypatch, a, f"sdd-opt study create {file} --storage sqlite:///c.db --set train.epochs=1 "
                                       f"--seed-with-paper")
    worker = _line(out, "add workers with: ")
    assert worker.endswith("--n-trials N")
    _run(capsys, monkeypatch, a, worker.replace("--n-trials N", "--n-trials 3"))
    original = _load(a, "c.db", "created")
    command = _note_command(original)
    assert "--seed-with-paper" in command and "--set train.epochs=1" in command
    monkeypatch.setattr("sdd_opt.study.local_workers.local_cores", lambda: 1)  # one worker, in this process
    _run(capsys, monkeypatch, b, command)
    assert len(original.trials) == 3 and _trials(_load(b, "c.db", "created")) == _trials(original)


def test_a_resumed_study_adds_its_new_flags_to_the_note(tmp_path, capsys, monkeypatch, study_yaml):
    file = study_yaml("resumed", levels=1)
    _run(capsys, monkeypatch, tmp_path, f"sdd-opt study create {file} --storage sqlite:///r.db")
    study = _load(tmp_path, "r.db", "resumed")
    assert "--seed-with-paper" not in _note_command(study)
    table = ROOT / "benchmarks/data/mnist1d_curves.csv"
    spec = parse_study(tiny_study(tmp_path, name="resumed", levels=1), str(file))
    rp.remember(study, rp.HowRun(seed_with_paper=True, replay=str(table), n_trials=5))
    how = rp.stored_how(study, spec)
    assert how.seed_with_paper and how.replay == str(table) and how.n_trials == 5
    assert rp.run_command(spec, "sqlite:///r.db", how).endswith(f"--seed-with-paper --replay {table} --n-trials 5")


def test_commands_carry_no_password_and_say_where_it_comes_from(tmp_path, monkeypatch):
    from sdd_opt.study.runner import study_note
    from sdd_opt.study.storage import resolve_url

    spec = parse_study(tiny_study(tmp_path), "s.yaml")
    monkeypatch.setenv("SDD_OPT_STORAGE_PASSWORD", "from-env")
    for url in ("postgresql+psycopg://u:S3cret@db.example/sdd", resolve_url("postgresql+psycopg://u@db.example/sdd")):
        how = rp.HowRun(overrides=("train.epochs=1",), seed_with_paper=True)
        texts = [rp.run_command(spec, url, how), rp.export_command(spec, url), rp.report_command(spec, url),
                 rp.dashboard_command(url), rp.worker_command(spec, url), study_note(spec, url, how)]
        for text in texts:
            assert "S3cret" not in text and "from-env" not in text and "***" not in text
            assert "postgresql+psycopg://u@db.example/sdd" in text
        assert "$SDD_OPT_STORAGE_PASSWORD" in rp.password_note(url)[0] and "SDD_OPT_STORAGE_PASSWORD" in texts[-1]
    assert rp.password_note("sqlite:///a.db") == []
