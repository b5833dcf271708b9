"""Creating, resuming and working on studies (sampler: ``sampler``; paper trials: ``paper``; signals: ``signals``).

A study stores its own spec (``sdd_opt.spec`` study attribute), so a worker on any machine needs
only the study name and the storage URL. ``work()`` is the worker loop shared by ``study run``
and ``study worker``: it runs one trial at a time until the *study* holds ``n_trials`` complete
trials (not ``n_trials`` per worker), fails stale trials of dead workers before starting and
before leaving, and turns Ctrl-C / SIGTERM into a failed trial with the reason recorded.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import optuna
from optuna.trial import TrialState

from sdd_opt import plugins
from sdd_opt.errors import DivergedError, UserError
from sdd_opt.renamed import rename_identity
from sdd_opt.study._optuna_compat import is_heartbeat_enabled, storage_of, trial_id_of
from sdd_opt.study.initial import enqueue_initial
from sdd_opt.study.objective import Objective, TrialConfigError
from sdd_opt.study.record import TrialRecord, failure_attrs
from sdd_opt.study.sampler import make_sampler
from sdd_opt.study.signals import Terminated, interrupt_reason, signals_deferred, sigterm_as_interrupt
from sdd_opt.study.spec import StudySpec

SPEC_ATTR = "sdd_opt.spec"
IDENTITY_ATTR = "sdd_opt.identity"
MAX_CONSECUTIVE_FAILURES = 5


def _diff(stored: dict, current: dict) -> list[str]:
    return [k for k in current if stored.get(k) != current.get(k)]


def study_note(spec: StudySpec, storage_url: str, how=None) -> str:
    """The dashboard note; it is stored, so its URL holds no password at all (not even ``***``).

    ``how``: the flags the study was run with (:class:`sdd_opt.study.reproduce.HowRun`), which its
    "Reproduce" command carries.
    """
    from sdd_opt.study import reproduce as rp

    how = how if how is not None else rp.HowRun(overrides=tuple(spec.overrides), stored=False)
    return (
        f"# {spec.name}\n\n{spec.file.description}\n\n"
        f"* objectives: {', '.join(f'{m} ({d})' for m, d in zip(spec.metric_names, spec.directions))}\n"
        f"* select rule: {spec.file.select.rule} (epsilon {spec.base.analysis.epsilon}); repeats: {spec.file.repeats}\n"
        f"* sampler: {spec.sampler_name}, seed {spec.file.sampler.seed}\n\n"
        f"Reproduce: `{rp.run_command(spec, storage_url, how)}`\n\n"
        f"Export the front: `{rp.export_command(spec, storage_url)}`\n\n"
        + "".join(f"{line}\n\n" for line in rp.password_note(storage_url))
        + f"```json\n{json.dumps(spec.identity(), indent=1)[:6000]}\n```\n"
    )


def _save_note(study: optuna.Study, text: str) -> None:
    try:
        from optuna_dashboard import save_note

        save_note(study, text)
    except Exception:  # the note is a convenience for the dashboard only
        pass


def create_or_resume(spec: StudySpec, storage, storage_url: str = "", *, create_only: bool = False,
                     how=None) -> optuna.Study:
    """Create the study, or resume it if its stored identity matches ``spec`` (else UserError).

    ``how``: the command-line flags it runs with (``reproduce.HowRun``), stored with it for the
    reproduce commands; a resumed study adds what is new (paper trials, a replay table, a budget).
    """
    from sdd_opt.study.reproduce import remember, stored_how

    identity = spec.identity()
    try:
        existing = optuna.load_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec))
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get(IDENTITY_ATTR)
        if stored is None:
            raise UserError(f"study {spec.name!r} exists but was not created by sdd-opt; choose another --name")
        changed = _diff(rename_identity(stored), identity)
        if changed:
            raise UserError(f"study {spec.name!r} is stored with a different {', '.join(changed)}; "
                            f"use --name for a new study (refusing to mix trials)")
        if create_only:
            raise UserError(f"study {spec.name!r} already exists (with the same settings); use 'study run' to resume "
                            "it")
        plugins.check_study(existing, spec)
        if how is not None and remember(existing, how):
            _save_note(existing, study_note(spec, storage_url, stored_how(existing, spec)))
        return existing
    study = optuna.create_study(study_name=spec.name, storage=storage, directions=spec.directions,
                                sampler=make_sampler(spec), load_if_exists=True)
    study.set_metric_names(spec.metric_names)
    study.set_user_attr(IDENTITY_ATTR, identity)
    study.set_user_attr(SPEC_ATTR, spec.to_json())
    if how is not None:
        remember(study, how)
    if plugins.study_attr(spec):  # their source hashes: a worker with a changed plug-in is refused
        study.set_user_attr(plugins.STUDY_ATTR, plugins.study_attr(spec))
    enqueue_initial(study, spec)
    _save_note(study, study_note(spec, storage_url, how))
    return study


def load_stored(name: str, storage) -> tuple[optuna.Study, StudySpec]:
    """Load a study and its stored spec by name (what a worker on another machine does)."""
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    except Exception as exc:
        raise UserError(f"cannot list studies: {exc}") from None
    if name not in names:
        hint = f"; stored studies: {', '.join(names[:10])}" if names else "; the storage holds no study"
        raise UserError(f"study {name!r} not found{hint}")
    study = optuna.load_study(study_name=name, storage=storage)
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise UserError(f"study {name!r} was not created by sdd-opt (no stored spec)")
    spec = StudySpec.from_json(raw)
    return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(spec)), spec


def counts(study: optuna.Study) -> dict[str, int]:
    out = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] += 1
    return out


@dataclass
class WorkResult:
    ran: int = 0
    completed: int = 0
    failed: int = 0
    stop: str = ""


def _fail_stale(study: optuna.Study) -> None:
    """Fail (and re-queue) the RUNNING trials whose worker stopped sending heartbeats."""
    if is_heartbeat_enabled(storage_of(study)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def _clean_up_interrupted(study: optuna.Study, trial_ids: list[int], why: str, log: Callable[[str], None]) -> int:
    """Fail the trials this worker left RUNNING, and queue the interrupted ones again.

    The re-queued copy has the same parameters, so the next worker (or the same command run
    again) resumes its run directory at the last finished level. Returns how many were queued.
    """
    from sdd_opt.study.storage.requeue import requeue

    storage = storage_of(study)
    queued = 0
    for tid in dict.fromkeys(trial_ids):
        try:
            t = storage.get_trial(tid)
            if t.state == TrialState.RUNNING:
                if TrialRecord.from_trial(t).fail_reason is None:
                    for key, value in failure_attrs(why, interrupted=True).items():
                        storage.set_trial_user_attr(tid, key, value)
                storage.set_trial_state_values(tid, TrialState.FAIL)
                t = storage.get_trial(tid)
            record = TrialRecord.from_trial(t)
            if t.state != TrialState.FAIL or not record.interrupted:
                continue
            levels = max((len(rows) for rows in TrialRecord.from_trial(t).seed_curves.values()), default=0)
            if requeue(study, t, record.fail_reason, max_retry=None) is not None:
                queued += 1
                log(f"trial {t.number} was {why} after {levels} finished level(s); it is queued again and "
                    f"resumes there on the next run")
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        except Exception as exc:  # the storage may be the reason we stopped: report, don't mask the exit
            log(f"warning: could not record trial {tid} as interrupted ({type(exc).__name__})")
    return queued


class _TrialRun:
    """``objective`` called with the study's budget, remembering the id of the trial it ran."""

    def __init__(self, objective: Callable, budget: Optional[int]):
        self.objective, self.budget, self.trial_id = objective, budget, None

    def __call__(self, trial: optuna.Trial):
        self.trial_id = trial_id_of(trial)
        return self.objective(trial, budget=self.budget)


def _finished_elsewhere(study: optuna.Study, trial_id: Optional[int], exc: Exception,
                        log: Callable[[str], None]) -> bool:
    """Was this worker's trial failed by another worker while it ran (a late heartbeat)?

    Then its writes fail; the worker reports it and goes on, and the queued copy of the trial
    resumes from this run's checkpoint once the run directory's lock is free.
    """
    if trial_id is None or (isinstance(exc, ValueError) and "Cannot tell" not in str(exc)):
        return False
    t = storage_of(study).get_trial(trial_id)
    if not t.state.is_finished():
        return False
    log(f"trial {t.number} was marked {t.state.name.lower()} by another worker while it ran here (its heartbeat "
        f"was older than the grace period: raise --grace-period on a loaded machine); going on")
    return True


def _before_trial(study: optuna.Study, objective) -> None:
    """Refuse (UserError) before a trial is taken, so the study loses nothing, when a plug-in does
    not import here or its source changed since the study was created."""
    if getattr(objective, "spec", None) is not None:
        plugins.check_study(study, objective.spec)


def work(study: optuna.Study, objective: Objective, *, n_trials: Optional[int] = None,
         timeout: Optional[float] = None, poll: Optional[float] = None,
         log: Callable[[str], None] = print, on_trial: Optional[Callable[[], None]] = None) -> WorkResult:
    """Run trials until the study holds ``n_trials`` complete ones, ``timeout`` passes, or too many fail.

    ``n_trials`` is the study's total, shared by every worker. Stale trials of dead workers are
    failed (and re-queued) when the worker starts, while it waits for others, and before it
    leaves. Ctrl-C / SIGTERM fail the running trial with the reason, queue it again, and re-raise.
    ``on_trial`` is called before the first trial and after each one (the study's progress lines).
    """
    from sdd_opt.study.storage.faults import retrier_of

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # we report trials ourselves, without tracebacks
    run = _TrialRun(objective, n_trials)
    res = WorkResult()
    start = time.monotonic()
    consecutive_failures = 0
    storage = storage_of(study)
    interval = storage.get_heartbeat_interval() if is_heartbeat_enabled(storage) else None
    poll = poll if poll is not None else min(5.0, float(interval or 5))
    retrier = retrier_of(storage)
    mark, in_trial = 0, False
    _fail_stale(study)
    if on_trial:
        on_trial()
    try:
        with sigterm_as_interrupt():
            while True:
                c = counts(study)
                if n_trials and c["COMPLETE"] >= n_trials:
                    res.stop = f"the study holds {c['COMPLETE']} complete trials (budget {n_trials})"
                    break
                if timeout and time.monotonic() - start >= timeout:
                    res.stop = f"timeout of {timeout:.0f}s reached"
                    break
                if n_trials and c["COMPLETE"] + c["RUNNING"] >= n_trials and c["WAITING"] == 0:
                    time.sleep(poll)  # other workers hold the rest of the budget; wait in case they fail
                    _fail_stale(study)
                    continue
                _before_trial(study, objective)
                run.trial_id = None
                mark = len(retrier.claimed_trials) if retrier else 0
                in_trial = True
                try:
                    study.optimize(run, n_trials=1, catch=(DivergedError, TrialConfigError), gc_after_trial=False)
                except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
                    if not _finished_elsewhere(study, run.trial_id, exc, log):
                        raise
                in_trial = False
                res.ran += 1
                if on_trial:
                    on_trial()
                last = storage.get_trial(run.trial_id) if run.trial_id is not None else None
                if last is not None and last.state == TrialState.COMPLETE:
                    res.completed += 1
                    consecutive_failures = 0
                elif last is not None and last.state == TrialState.FAIL:
                    res.failed += 1
                    consecutive_failures += 1
                    log(f"trial {last.number} failed: {TrialRecord.from_trial(last).fail_reason or 'see the logs'}")
                    if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                        res.stop = f"{consecutive_failures} trials failed in a row; stopping this worker"
                        break
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        res.stop = "terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)"
        if in_trial:
            ids = list(retrier.claimed_trials[mark:]) if retrier else []
            if run.trial_id is not None:
                ids.append(run.trial_id)
            with signals_deferred():
                _clean_up_interrupted(study, ids, interrupt_reason(exc), log)
        raise
    finally:
        try:
            with signals_deferred():
                _fail_stale(study)
        except Exception:
            pass
    return res
