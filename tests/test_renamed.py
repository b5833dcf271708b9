"""Renamed run-config keys: old spellings still read (one warning line), hashes unchanged, no mixing."""

import pytest

from sdd_opt import renamed
from sdd_opt.config import build_config, load_config
from sdd_opt.errors import UserError
from sdd_opt.rundir import result_hash


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(renamed, "_warned", set())


def test_old_keys_read_under_the_new_names_with_one_warning_line_each(capsys):
    cfg = load_config(None, ["prune.stop_below=0.3", "analysis.within=0.02"])
    assert cfg.prune.collapse_floor == 0.3 and cfg.analysis.epsilon == 0.02
    load_config(None, ["prune.stop_below=0.4"])  # warned once per process
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: 'prune.stop_below' is renamed 'prune.collapse_floor'; the old name still works for now",
                   "warning: 'analysis.within' is renamed 'analysis.epsilon'; the old name still works for now"]
    assert "stop_below" not in cfg.describe()["prune"] and cfg.describe()["analysis"]["epsilon"] == 0.02


def test_stored_configs_read_silently(capsys):
    cfg = build_config({"prune": {"stop_below": 0.2}, "analysis": {"within": 0.05}}, stored=True)
    assert cfg.prune.collapse_floor == 0.2 and cfg.analysis.epsilon == 0.05
    assert capsys.readouterr().err == ""


def test_both_spellings_in_one_file_are_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("prune: {collapse_floor: 0.3, stop_below: 0.2}\n")
    with pytest.raises(UserError, match="prune: stop_below is the old name of prune.collapse_floor: give only collapse_floor"):
        load_config(tmp_path / "c.yaml")


def test_hashes_are_those_of_the_old_spelling():
    """Run directories and teachers stored before the rename keep their names (values computed before it)."""
    default = load_config(None, [])
    assert (default.hash(), result_hash(default)) == ("dddac03ae664f0d6", "9afa601b97e26b5b")
    for overrides in (["prune.stop_below=0.3", "analysis.within=0.02"], ["prune.collapse_floor=0.3", "analysis.epsilon=0.02"]):
        cfg = load_config(None, overrides)
        assert (cfg.hash(), result_hash(cfg)) == ("209d636cfb14a66c", "5d15a32253d77254")


def test_rename_helpers():
    assert renamed.rename_dotted("prune.stop_below", stored=True) == "prune.collapse_floor"
    assert renamed.rename_dotted("prune.rate", stored=True) == "prune.rate"
    assert renamed.rename_metric("epochs", stored=True) == "curve_epochs"
    assert renamed.rename_metric("val_acc", stored=True) == "val_acc"
    data = {"prune": {"stop_below": None, "rate": 0.2}, "seed": 0}
    assert renamed.rename_run_config(data, stored=True) == {"prune": {"collapse_floor": None, "rate": 0.2}, "seed": 0}
    assert data == {"prune": {"stop_below": None, "rate": 0.2}, "seed": 0}  # not changed in place


def test_an_old_name_in_set_overrides_the_new_key_of_a_full_config(tmp_path, capsys):
    """A run directory's config.yaml (today's names) re-run with a habitual --set prune.stop_below."""
    from sdd_opt.config import dump_config

    dump_config(load_config(None, []), tmp_path / "config.yaml")
    cfg = load_config(tmp_path / "config.yaml", ["prune.stop_below=0.3", "analysis.within=0.05"])
    assert cfg.prune.collapse_floor == 0.3 and cfg.analysis.epsilon == 0.05
    assert capsys.readouterr().err.count("warning:") == 2
