"""Front models: the weights of the levels on a study's all-levels front, kept in the artifact store.

A study's result is its front over every level of every trial (:func:`sdd_opt.study.pareto.levels_front`);
its points are models. This module keeps their weights, and only theirs, in Optuna's artifact
store, so ``sdd-opt study export --weights`` and ``sdd_opt.load_model`` need no run directory
(on several machines the run directories are not on the machine that exports).

The life of a level's weights:

1. *Staged.* While a trial runs, its first seed's run directory keeps every level's checkpoint
   (``level_K.pt``), not only the last one it resumes from.
2. *Kept.* When the trial reports, the levels of its (seed-mean) curve that lie on the front of
   the complete feasible trials *plus this one* are uploaded to the artifact store, each under a
   fresh id; the trial records them first (user attr ``weights``: level -> artifact id), so no
   upload is ever untracked. The run directory then drops the other staged checkpoints again.
3. *Dropped.* A level that a complete feasible trial dominates (or equals, with a lower trial or
   level number) is off the front for good: complete trials stay complete. Every worker sweeps
   before each trial and when it leaves: the first time a level is seen off the front, the time
   is recorded (study user attr ``sdd_opt.weights_off:<trial>``); any worker deletes it once
   ``grace`` seconds (``$SDD_OPT_WEIGHTS_GRACE``, default one hour) have passed since. Weights
   of failed or pruned trials are never on a front and are deleted at once.

Why readers are safe: a reader (export, ``load_model``) reads the front, then downloads. A level
it saw on the front went off it only after that read, so it was recorded off after the read and
is deleted no earlier than ``grace`` after it. A reader that finishes within ``grace`` never
misses weights; one that finds them missing (an older study, a very slow reader) retrains the
level from its config and says so. Two sweepers racing on the same record lose at most a mark,
which is then made again later: a deletion is delayed, never brought forward.

Only the first seed's weights are kept (the seed of the exported config); the front's values are
seed means, and ``metrics.json`` of an exported point gives both.
"""

from __future__ import annotations

import io
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from sdd_opt.study.record import TrialRecord, is_feasible

WEIGHTS_ATTR = "weights"                 # trial user attr: {level (str): artifact id}
OFF_ATTR_PREFIX = "sdd_opt.weights_off:"  # study user attr per trial: {level (str): epoch seconds seen off}
ENV_GRACE = "SDD_OPT_WEIGHTS_GRACE"
DEFAULT_GRACE = 3600.0
ID_PREFIX = "sdd-weights-"


def grace_seconds() -> float:
    """How long a level stays in the store after it was first seen off the front."""
    raw = os.environ.get(ENV_GRACE)
    if raw is None:
        return DEFAULT_GRACE
    try:
        value = float(raw)
    except ValueError:
        from sdd_opt.errors import UserError

        raise UserError(f"${ENV_GRACE}: {raw!r} is not a number of seconds") from None
    return max(0.0, value)


def front_pairs(points: Iterable[tuple[int, int, float, float]]) -> set[tuple[int, int]]:
    """The (trial, level) pairs on the front of (trial, level, val_acc, sparsity) points, both maximized.

    Equal points keep the lowest (trial, level), as :func:`~sdd_opt.study.pareto.levels_front` does,
    so which of two equal levels holds the weights never changes as trials are added.
    """
    pts = sorted((p for p in points if not (math.isnan(p[2]) or math.isnan(p[3]))),
                 key=lambda p: (-p[3], -p[2], p[0], p[1]))
    keep, best = set(), -math.inf
    for trial, level, val, _ in pts:  # from the sparsest down: kept only if more accurate than every sparser one
        if val > best:
            keep.add((trial, level))
            best = val
    return keep


def _points(trial_number: int, curve: list[dict]) -> list[tuple[int, int, float, float]]:
    return [(trial_number, int(r["level"]), float(r["val_acc"]), float(r["sparsity"])) for r in curve]


def study_points(trials: Iterable[FrozenTrial]) -> list[tuple[int, int, float, float]]:
    """The level points of the complete, feasible trials among ``trials``."""
    out = []
    for t in trials:
        if t.state == TrialState.COMPLETE and is_feasible(t):
            out += _points(t.number, TrialRecord.from_trial(t).curve)
    return out


def stored_weights(t: FrozenTrial) -> dict[int, str]:
    """Level -> artifact id of the weights a trial uploaded (some may have been dropped since)."""
    raw = t.user_attrs.get(WEIGHTS_ATTR) or {}
    return {int(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def levels_to_keep(study: optuna.Study, number: int, curve: list[dict], feasible: bool) -> list[int]:
    """The levels of a trial about to complete that lie on the front, counting it as complete."""
    if not feasible:
        return []
    others = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number != number]
    front = front_pairs(study_points(others) + _points(number, curve))
    return sorted(level for trial, level in front if trial == number)


def upload_levels(trial: optuna.Trial, store, run_dir: Path, levels: list[int],
                  log: Callable[[str], None] = print) -> dict[int, str]:
    """Upload ``run_dir``'s checkpoints of ``levels`` (those still on disk); record the ids first."""
    ckpts = {k: run_dir / "checkpoints" / f"level_{k}.pt" for k in levels}
    present = {k: p for k, p in ckpts.items() if p.exists()}
    missing = sorted(set(levels) - set(present))
    if missing:  # levels served from another run without their weights: an export retrains them
        log(f"trial {trial.number}: no checkpoint of front level(s) {missing} here (reused levels); not kept")
    ids = {k: f"{ID_PREFIX}{uuid.uuid4().hex}" for k in present}
    if not ids:
        return {}
    trial.set_user_attr(WEIGHTS_ATTR, {str(k): v for k, v in ids.items()})  # before any upload: never untracked
    for k, path in present.items():
        with open(path, "rb") as fh:
            store.write(ids[k], fh)
    return ids


def keep_trial_weights(trial: optuna.Trial, store, run_dir: Path, log: Callable[[str], None] = print) -> dict[int, str]:
    """Step 2 of the module docstring for a trial that has just reported (its record is stored)."""
    attrs = trial.user_attrs
    curve = attrs.get("curve") or []
    feasible = all(c <= 0 for c in attrs.get("constraints") or [])
    levels = levels_to_keep(trial.study, trial.number, curve, feasible)
    ids = upload_levels(trial, store, run_dir, levels, log) if levels else {}
    if ids:
        log(f"trial {trial.number}: weights of front level(s) {sorted(ids)} kept in the artifact store")
    return ids


def drop_staged(run_dir: Path) -> None:
    """Delete a run directory's level checkpoints but the last (the one a resume needs)."""
    ckpts = sorted((run_dir / "checkpoints").glob("level_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    for p in ckpts[:-1]:
        p.unlink(missing_ok=True)


def _remove(store, artifact_id: str) -> bool:
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        store.remove(artifact_id)
    except ArtifactNotFound:
        return False
    return True


class Sweeper:
    """Deletes the weights of levels that fell off the front, ``grace`` seconds after (module docstring)."""

    def __init__(self, store, *, grace: float | None = None, clock: Callable[[], float] = time.time,
                 log: Callable[[str], None] = print):
        self.store = store
        self.grace = grace_seconds() if grace is None else grace
        self.clock = clock
        self.log = log
        self.removed: set[str] = set()  # ids this process removed already (a sweep never repeats a delete)

    def sweep(self, study: optuna.Study) -> int:
        """One pass over the study; returns how many artifacts it deleted."""
        trials = study.get_trials(deepcopy=False)
        front = front_pairs(study_points(trials))
        attrs = study.user_attrs
        deleted = 0
        for t in trials:
            weights = {k: v for k, v in stored_weights(t).items() if v not in self.removed}
            if not weights or t.state == TrialState.RUNNING or t.state == TrialState.WAITING:
                continue
            if t.state != TrialState.COMPLETE:  # failed or pruned: never on a front, no reader
                deleted += sum(self._delete(v) for v in weights.values())
                continue
            off = self._mark_off(study, t.number, attrs, [k for k in weights if (t.number, k) not in front])
            now = self.clock()
            deleted += sum(self._delete(weights[k]) for k, since in off.items() if now - since >= self.grace)
        return deleted

    def _mark_off(self, study: optuna.Study, number: int, attrs: dict, levels: list[int]) -> dict[int, float]:
        """Record when each of ``levels`` was first seen off the front; returns level -> that time."""
        key = f"{OFF_ATTR_PREFIX}{number}"
        seen = {int(k): float(v) for k, v in (attrs.get(key) or {}).items()}
        new = [k for k in levels if k not in seen]
        if new:
            now = self.clock()
            fresh = {int(k): float(v) for k, v in (study.user_attrs.get(key) or {}).items()}  # another sweeper's marks
            seen = {**{k: now for k in new}, **fresh}
            study.set_user_attr(key, {str(k): v for k, v in sorted(seen.items())})
        return {k: seen[k] for k in levels}

    def _delete(self, artifact_id: str) -> int:
        self.removed.add(artifact_id)
        return int(_remove(self.store, artifact_id))


def download_weights(store, artifact_id: str, dest: Path) -> bool:
    """Copy one kept level's checkpoint to ``dest``; False when the store no longer holds it."""
    from optuna.artifacts import download_artifact
    from optuna.artifacts.exceptions import ArtifactNotFound

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        download_artifact(artifact_store=store, file_path=str(tmp), artifact_id=artifact_id)
    except ArtifactNotFound:
        tmp.unlink(missing_ok=True)
        return False
    os.replace(tmp, dest)
    return True


def weights_bytes(state: dict) -> int:
    """Bytes of a checkpoint as ``torch.save`` writes it (the disk cost of one kept level)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getbuffer().nbytes

