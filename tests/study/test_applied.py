"""Applied parameters of a study stored before ``TrialRecord.applied`` existed read as sampling decided."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "study_pre_record.db"
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_a_pre_record_study_derives_applied_keys_and_shows_l2_off_as_none(tmp_path):
    from sdd_opt.report.data import fmt
    from sdd_opt.study.applied import applied_keys, params_text
    from sdd_opt.study.record import TrialRecord
    from sdd_opt.study.runner import load_stored
    from sdd_opt.study.storage import open_storage

    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    study, spec = load_stored("tiny", open_storage(f"sqlite:///{db}"))
    trials = sorted(study.trials, key=lambda t: t.number)
    assert all(TrialRecord.from_trial(t).applied is None for t in trials)  # stored before the field
    assert [applied_keys(t, spec) for t in trials] == [["distill.enabled", "prune.rate", "train.weight_decay"]] * 3
    texts = [params_text(t, spec, fmt) for t in trials]
    assert texts[0] == "distill.enabled=false, prune.rate=0.3, train.weight_decay=none"
    assert texts[1] == "distill.enabled=false, prune.rate=0.4, train.weight_decay=0.005"
    assert all(".off" not in x for x in texts)
