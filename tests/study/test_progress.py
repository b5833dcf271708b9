"""The study's progress lines: trials out of the budget, ETA from the epochs left, the front so far."""

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from sdd_opt.study.progress import StudyProgress
from sdd_opt.study.record import TrialRecord
from sdd_opt.study.spec import parse_study
from sdd_opt.testing import tiny_study


def _rows(accs, epochs=2):
    return [{"level": i, "sparsity": 1 - 0.7 ** i, "val_acc": a, "test_acc": a, "epochs": epochs}
            for i, a in enumerate(accs)]


def _complete(study, accs, remedy, trained=None):
    attrs = TrialRecord(curve=_rows(accs), curve_epochs=2.0 * len(accs), epochs_trained=trained,
                        remedy=remedy).to_user_attrs()
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[max(accs), 0.5], user_attrs=attrs,
                                 params={"distill.enabled": remedy == "distill"},
                                 distributions={"distill.enabled": CategoricalDistribution([False, True])}))


def test_counts_epochs_eta_and_front(tmp_path):
    data = tiny_study(tmp_path, search_space={"distill.enabled": {"type": "categorical", "choices": [False, True]}})
    spec = parse_study(data, "tiny.yaml")  # 2 levels x 2 epochs: 6 epochs a trial
    study = optuna.create_study(directions=spec.directions)
    now = [100.0]
    progress = StudyProgress(study, spec, n_trials=4, clock=lambda: now[0])
    assert progress.count_line() == ("study tiny: 0/4 trials complete (0 running, 0 failed), 0 of 24 epochs, "
                                     "ETA after the first finished level")
    assert progress.front_line() == "front so far: (no complete trial yet)"
    _complete(study, [0.70, 0.65, 0.80], "none")
    _complete(study, [0.85, 0.86, 0.84], "distill", trained=0)  # reused a finished run: not in the rate
    running = TrialRecord(seed_curves={0: _rows([0.8])}).to_user_attrs()
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs=running))
    now[0] = 108.0  # 8 epochs trained in 8 s; left: one trial not started (6) + the running one's 4
    assert progress.count_line() == "study tiny: 2/4 trials complete (1 running, 0 failed), 14 of 24 epochs, ETA 10 s"
    front = progress.front_line()
    assert front.startswith("front so far (val acc @ sparsity): 0.860 @ 30.0% distill #1")
    assert "0.840 @ 51.0% distill #1" in front and "none" not in front and "\r" not in front


def test_no_budget_counts_only(tmp_path):
    spec = parse_study(tiny_study(tmp_path), "tiny.yaml")
    progress = StudyProgress(optuna.create_study(directions=spec.directions), spec, n_trials=None)
    assert progress.count_line() == "study tiny: 0 trials complete (0 running, 0 failed), 0 epochs"
