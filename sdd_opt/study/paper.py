"""The paper's three reference points (no remedy, l2, distillation), enqueued as a study's first trials.

They anchor a search at known results: with ``--seed-with-paper`` the sampler starts from them.
"""

from __future__ import annotations

from typing import Callable

import optuna

from sdd_opt.study.initial import point_params
from sdd_opt.study.spec import StudySpec

POINTS = {
    "no remedy": {"train.weight_decay": 0.0, "distill.enabled": False},
    "l2": {"train.weight_decay": 5e-3, "distill.enabled": False},
    "distillation": {"train.weight_decay": 0.0, "distill.enabled": True, "distill.alpha": 0.8,
                     "distill.temperature": 10.0, "distill.teacher.weight_decay": 5e-3},
}


def paper_trials(spec: StudySpec) -> list[dict]:
    """The paper's reference points: no remedy, l2, distillation (alpha 0.8, T 10, teacher l2 5e-3).

    Searched keys a point does not fix take the base config's value when the space allows it,
    so the reference trials are the paper's setup rather than random schedules. A value the
    space cannot express (l2 5e-3 in a narrower range) is left to the sampler.
    """
    return [point_params(spec, point, f"the paper's {name}", fill="base") for name, point in POINTS.items()]


def enqueue_paper_trials(study: optuna.Study, spec: StudySpec, log: Callable[[str], None] = print) -> int:
    """Enqueue the paper's reference points once per study (skipped if already enqueued)."""
    if study.user_attrs.get("sdd_opt.paper_enqueued"):
        return 0
    n = 0
    for params in paper_trials(spec):
        study.enqueue_trial(params, skip_if_exists=True)
        n += 1
    study.set_user_attr("sdd_opt.paper_enqueued", True)
    log(f"enqueued {n} reference trials from the paper (no remedy, l2, distillation)")
    return n
