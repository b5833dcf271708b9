"""Bad input: one clear line, exit code 2, nothing written to the storage."""

import pytest

from sdd_opt.testing import run_cli


def _one_line_error(err):
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("space, needle", [
    ({"train.weight_decay": {"type": "float", "low": 0.1, "high": 0.01}}, "low (0.1) > high (0.01)"),
    ({"train.weight_decay": {"type": "float", "low": 0, "high": 0.01, "log": True}}, "log range needs low > 0"),
    ({"model.depth": {"type": "int", "low": 1, "high": 3}}, "search_space.model.depth: unknown config key"),
])
def test_bad_study_files(tmp_path, capsys, study_file, space, needle):
    db = tmp_path / "x.db"
    code, _, err = run_cli(capsys, "study", "run", str(study_file(search_space=space)), "--storage", f"sqlite:///{db}")
    assert code == 2 and needle in _one_line_error(err)
    assert not db.exists()


def test_malformed_yaml_reports_line_and_column(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nsearch_space:\n  prune.rate: {type: float, low: 0.1\n")
    code, _, err = run_cli(capsys, "study", "create", str(p), "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "line" in _one_line_error(err) and "column" in err
    assert not (tmp_path / "x.db").exists()


def test_unknown_sampler(tmp_path, capsys, study_file):
    code, _, err = run_cli(capsys, "study", "create", str(study_file(sampler={"name": "annealing"})),
                           "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "unknown sampler 'annealing'" in _one_line_error(err)


@pytest.mark.parametrize("url, needle", [
    ("postgresql+psycopg://alice:s3cret@127.0.0.1:1/db", "cannot open storage"),
    ("mysql+pymysql://bob:hunter2@127.0.0.1:1/db", "cannot open storage"),
    ("not a url", "malformed storage URL"),
    ("oracle://u:pw@host/db", "unsupported database"),
])
def test_bad_storage_urls_mask_the_password(tmp_path, capsys, study_file, url, needle):
    code, out, err = run_cli(capsys, "study", "create", str(study_file()), "--storage", url)
    line = _one_line_error(err)
    assert code == 2 and needle in line
    for secret in ("s3cret", "hunter2"):
        assert secret not in out + err


def test_train_bad_values_exit_2_before_training(tmp_path, capsys):
    for args, needle in ((["--set", "prune.rate=1.5"], "prune.rate"), (["--set", "distill.temperature=0"], "distill.temperature"),
                         (["--set", "data.name=imagenet"], "data.name"), (["--set", "nokey"], "expected key=value")):
        code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "r"), *args)
        assert code == 2 and needle in _one_line_error(err)
    assert not (tmp_path / "r").exists()


def test_no_budget_is_an_error(tmp_path, capsys, study_file):
    code, _, err = run_cli(capsys, "study", "run", str(study_file(budget={})), "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "no budget" in _one_line_error(err)


@pytest.mark.parametrize("study, sets, keys", [
    ("studies/mnist1d_search.yaml", ["prune.rate=0.3"], ("--set prune.rate", "search_space.prune.rate")),
    ("studies/mnist1d_search.yaml", ["distill={}"], ("--set distill", "search_space.distill.")),
    ("studies/mnist1d_search.yaml", ["prune.levels=3"], ("--set prune.levels", "prune.target_sparsity (0.98)")),
    ("studies/mnist1d_demo.yaml", ["prune.levels=3"], ("--set prune.levels", "prune.target_sparsity (0.97)")),
])
def test_set_that_would_be_lost_is_refused_naming_both_keys(tmp_path, capsys, study, sets, keys):
    db = tmp_path / "x.db"
    args = [a for s in sets for a in ("--set", s)]
    code, _, err = run_cli(capsys, "study", "create", study, "--storage", f"sqlite:///{db}", *args)
    line = _one_line_error(err)
    assert code == 2 and all(k in line for k in keys), line
    assert not db.exists()


def test_set_levels_with_the_target_cleared_is_accepted(tmp_path, capsys):
    db = tmp_path / "x.db"
    code, _, err = run_cli(capsys, "study", "create", "studies/mnist1d_demo.yaml", "--storage", f"sqlite:///{db}",
                           "--set", "prune.levels=3", "--set", "prune.target_sparsity=")
    assert code == 0, err


def test_train_set_levels_lost_to_the_target_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--set", "prune.target_sparsity=0.9", "--set", "prune.levels=3",
                           "--out", str(tmp_path / "r"))
    assert code == 2 and "prune.levels" in _one_line_error(err) and "prune.target_sparsity" in err
    assert not (tmp_path / "r").exists()


def test_a_set_of_the_collapse_floor_the_study_file_sets_is_refused(tmp_path, capsys, study_file):
    """The study file's collapse_floor is the run config's prune.collapse_floor: a --set of it would be lost."""
    db = tmp_path / "x.db"
    code, _, err = run_cli(capsys, "study", "run", str(study_file(collapse_floor=0.5)), "--storage", f"sqlite:///{db}",
                           "--set", "prune.collapse_floor=")
    assert code == 2 and "prune.collapse_floor: the study file's collapse_floor (0.5)" in _one_line_error(err)
    assert not db.exists()
