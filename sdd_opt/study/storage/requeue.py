"""A trial whose worker is gone is queued again, so another worker resumes it.

:class:`RequeueStaleTrial` (the heartbeat-stale callback) and :func:`requeue` put a fresh
``WAITING`` copy of the failed trial in the queue -- same parameters,
``system_attrs['failed_trial']`` as in Optuna's ``RetryHeartbeatStaleTrialCallback`` -- so that
a worker picks it up and resumes its run directory at the last finished level. (Retrying a
storage *call* is :mod:`sdd_opt.study.storage.faults`.)
"""

from __future__ import annotations

from typing import Optional

STALE_REASON = "worker lost: no heartbeat for more than {grace}s (killed, preempted or cut off)"


def requeue(study, trial, reason: str, max_retry: Optional[int] = 3) -> Optional[int]:
    """Enqueue a WAITING copy of the failed ``trial`` (same parameters) so a worker resumes it.

    ``system_attrs`` follow Optuna's ``RetryHeartbeatStaleTrialCallback`` (``failed_trial`` is the
    first failed trial, ``retry_history`` every failed attempt); the copy's user attributes say
    why it was queued (``retry_of``, ``retry_reason``) and do not inherit the dead trial's partial
    results. Returns ``None`` once ``max_retry`` retries were made.
    """
    import optuna
    from optuna.trial import TrialState

    system_attrs = {"failed_trial": trial.number, "retry_history": [], **trial.system_attrs}
    system_attrs["retry_history"] = list(system_attrs["retry_history"]) + [trial.number]
    if max_retry is not None and len(system_attrs["retry_history"]) > max_retry:
        return None
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={"retry_of": trial.number, "retry_reason": reason}, system_attrs=system_attrs,
    ))
    return trial.number


class RequeueStaleTrial:
    """Heartbeat-stale callback: re-queue the trial of a dead worker (see :func:`requeue`)."""

    def __init__(self, max_retry: Optional[int] = 3, grace: Optional[int] = None):
        self.max_retry = max_retry
        self.grace = grace

    def __call__(self, study, trial) -> None:
        from sdd_opt.study.record import TrialRecord

        reason = TrialRecord.from_trial(trial).fail_reason or STALE_REASON.format(grace=self.grace)
        requeue(study, trial, reason, self.max_retry)
