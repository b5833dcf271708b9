"""The trial record: round trip through user attrs, one feasibility rule, and studies stored before it."""

import shutil
from pathlib import Path

import optuna
import pytest
import yaml

from sdd_opt.study.record import SCHEMA_VERSION, VERSION_KEY, TrialRecord, constraint_values, failure_attrs, is_feasible
from sdd_opt.testing import cli_exit_code

FIXTURE = Path(__file__).parent / "fixtures" / "study_pre_record.db"


def _frozen(user_attrs=None, system_attrs=None):
    return optuna.trial.create_trial(value=1.0, user_attrs=user_attrs or {}, system_attrs=system_attrs or {})


def test_round_trip_through_user_attrs():
    rec = TrialRecord(config={"seed": 0}, seeds=[0, 1], remedy="l2", curve=[{"level": 0, "val_acc": 0.5}],
                      seed_curves={0: [{"level": 0}], 1: [{"level": 0}]}, selected_level=0, val_acc=0.5,
                      sdd={"sdd_gap": 0.1, "dip_acc": 0.4, "peak_acc": 0.5, "dense_acc": 0.45, "sdd_present": True},
                      curve_epochs=4.0, constraints=[-0.1])
    attrs = rec.to_user_attrs()
    assert attrs[VERSION_KEY] == SCHEMA_VERSION
    assert attrs["curve_seed1"] == [{"level": 0}] and attrs["sdd_gap"] == 0.1  # flat copy for the dashboard
    back = TrialRecord.from_user_attrs(attrs)
    assert back == rec
    assert back.metric("curve_epochs") == 4.0 and back.metric("sdd_gap") == 0.1
    assert back.metric("epochs") == 4.0  # the metric's name in studies stored before the rename


def test_unknown_field_is_refused():
    with pytest.raises(KeyError, match="no field 'curves'"):
        TrialRecord().to_user_attrs("curves")


def test_legacy_attrs_read_as_version_0():
    rec = TrialRecord.from_user_attrs({"remedy": "none", "sdd_gap": 0.2, "dense_acc": 0.7, "curve_seed3": [{}]})
    assert rec.version == 0 and rec.sdd == {"sdd_gap": 0.2, "dense_acc": 0.7} and rec.seed_curves == {3: [{}]}


def test_paid_epochs_counts_what_the_trial_trained():
    paid = lambda attrs: TrialRecord.from_user_attrs(attrs).paid_epochs  # noqa: E731
    # What the objective recorded as trained (teachers included; see tests/study/test_objective.py) wins.
    assert paid({"epochs_spent": 999.0, "epochs_trained": 72}) == 72
    # A trial whose whole curve was reused from an identical earlier trial cost nothing.
    assert paid({"epochs_spent": 88.0, "epochs_trained": 0}) == 0
    assert paid({"epochs_spent": 88.0}) == 88.0  # stored before the cost attr existed
    assert paid({"curve_epochs": 88.0, "record_version": 2}) == 88.0  # the same, record version 2


def test_of_cost_adds_the_teachers_to_the_seeds_level_epochs():
    rec = TrialRecord.of_cost([{"epochs_trained": 30, "teacher_epochs": 10}, {"epochs_trained": 5, "teacher_epochs": 0}])
    assert rec.epochs_trained == 45 and len(rec.cost) == 2


def test_failure_is_a_reason_and_an_interrupted_flag():
    assert failure_attrs("boom") == {"fail_reason": "boom"}
    attrs = failure_attrs("interrupted (Ctrl-C)", interrupted=True)
    assert attrs == {"fail_reason": "interrupted (Ctrl-C)", "interrupted": True}
    assert TrialRecord.from_user_attrs(attrs).interrupted and not TrialRecord.from_user_attrs({}).interrupted


def test_one_feasibility_rule_user_attrs_then_optuna_constraints():
    assert not is_feasible(_frozen({"constraints": [0.5]}))
    assert is_feasible(_frozen({"constraints": [-0.5]}, {"constraints": [1.0]}))  # the record wins
    assert constraint_values(_frozen(system_attrs={"constraints": [0.3]})) == [0.3]
    assert not is_feasible(_frozen(system_attrs={"constraints": [0.3]}))
    assert is_feasible(_frozen())


_cli = cli_exit_code  # (*args) -> exit code


def test_study_stored_by_the_pre_record_main_lists_reports_and_exports(tmp_path, capsys):
    """tests/study/fixtures/study_pre_record.db: 3 trials of a 2-seed tiny study written before TrialRecord."""
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    url = f"sqlite:///{db}"
    storage = optuna.storages.RDBStorage(url)
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert all(VERSION_KEY not in t.user_attrs for t in trials)
    recs = [TrialRecord.from_trial(t) for t in trials if t.state.name == "COMPLETE"]
    assert len(recs) == 3 and all(r.version == 0 and len(r.seed_curves) == 2 and r.curve for r in recs)
    assert all(r.config is not None and r.sdd.get("sdd_gap") is not None for r in recs)
    assert all(r.curve_epochs > 0 for r in recs)  # stored as 'epochs_spent' before the rename
    # Its stored identity (base with prune.stop_below, analysis.within) matches the same file read today.
    from sdd_opt.errors import UserError
    from sdd_opt.study.runner import create_or_resume
    from sdd_opt.study.spec import load_study_spec

    with pytest.raises(UserError, match="already exists \\(with the same settings\\)"):
        create_or_resume(load_study_spec(FIXTURE.with_suffix(".yaml")), storage, url, create_only=True)
    del storage

    assert _cli("study", "list", "--storage", url) == 0
    assert "tiny" in capsys.readouterr().out
    assert _cli("study", "pareto", "tiny", "--storage", url) == 0
    out = capsys.readouterr().out
    assert "feasible" in out and "sdd_gap" in out
    html = tmp_path / "r.html"
    assert _cli("report", "tiny", "--storage", url, "--out", str(html), "--no-trial-figures") == 0
    assert "trial 0" in html.read_text()
    assert _cli("study", "export", "tiny", "--storage", url, "--out", str(tmp_path / "exp")) == 0
    exported = sorted((tmp_path / "exp").glob("trial*.yaml"))
    assert exported
    data = yaml.safe_load(exported[0].read_text())
    assert data["prune"]["target_sparsity"] is None and data["model"]["name"] == "cnn1d"
    assert "collapse_floor" in data["prune"] and "epsilon" in data["analysis"]  # exported under today's names
    assert "warning" not in capsys.readouterr().err  # stored data is read without a rename warning
