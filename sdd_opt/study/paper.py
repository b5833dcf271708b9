"""The paper's three reference points (no remedy, l2, distillation), enqueued as a study's first trials.

They anchor a search at known results: with ``--seed-with-paper`` the sampler starts from them.
"""

from __future__ import annotations

from typing import Callable

import optuna

from sdd_opt.study.params import encode_zeroable
from sdd_opt.study.spec import StudySpec


def paper_trials(spec: StudySpec) -> list[dict]:
    """The paper's reference points: no remedy, l2, distillation (alpha 0.8, T 10, teacher l2 5e-3).

    Searched keys a point does not fix take the base config's value when the space allows it,
    so the reference trials are the paper's setup rather than random schedules.
    """
    from sdd_opt.config import get_dotted

    space = spec.search_space
    base = spec.base.describe()
    points = [
        {"train.weight_decay": 0.0, "distill.enabled": False},
        {"train.weight_decay": 5e-3, "distill.enabled": False},
        {"train.weight_decay": 0.0, "distill.enabled": True, "distill.alpha": 0.8, "distill.temperature": 10.0,
         "distill.teacher.weight_decay": 5e-3},
    ]

    def allowed(p, value) -> bool:
        if p.type == "categorical":
            return value in p.choices
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return p.low <= value <= p.high or (p.zero and value == 0.0)

    out = []
    for point in points:
        params: dict = {}
        for key, p in space.items():
            value = point.get(key, get_dotted(base, key))
            if p.when and any(point.get(k, get_dotted(base, k)) != v for k, v in p.when.items()):
                continue
            if not allowed(p, value):
                continue
            if p.type == "float" and p.zero:
                params.update(encode_zeroable(key, value))
                continue
            params[key] = value
        out.append(params)
    return out


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
