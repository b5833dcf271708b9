"""The Python API for a notebook: a study as DataFrames and models (docs/python.md).

    import sdd_opt

    study = sdd_opt.run_study("studies/mnist1d_search.yaml", storage="sqlite:///storage/sdd_opt.db")
    study = sdd_opt.open_study("mnist1d-search", storage="sqlite:///storage/sdd_opt.db")
    study.front()                    # the front over all levels, one row per (trial, level)
    model = study.load_model(trial=3, level=7)

Everything here is what the ``sdd-opt study`` commands do, returned instead of printed: the same
tables (``study pareto``), the same export (``study export [--weights]``), the same workers
(``study run``). User mistakes raise :class:`sdd_opt.UserError` with the CLI's one-line message.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd

from sdd_opt.errors import UserError


class Study:
    """A stored sdd-opt study (what :func:`open_study` and :func:`run_study` return)."""

    def __init__(self, study: optuna.Study, spec, storage_url: str, artifacts: str | None = None):
        self.optuna = study  # the underlying optuna.Study, for anything Optuna itself offers
        self.spec = spec
        self.name = spec.name
        self.storage_url = storage_url
        self.artifacts = artifacts

    def __repr__(self) -> str:
        from sdd_opt.errors import url_without_password

        n = len(self.optuna.get_trials(deepcopy=False))
        return f"<sdd_opt.Study {self.name!r}: {n} trials in {url_without_password(self.storage_url)}>"

    def _store(self):
        from sdd_opt.study.artifact_stores import open_artifact_store

        return open_artifact_store(self.storage_url, self.artifacts)

    def front(self, levels: bool = True) -> pd.DataFrame:
        """The front over every level of every complete feasible trial (``levels=False``: Optuna's
        front over the trials' selected points), one row per point, as ``sdd-opt study pareto``."""
        from sdd_opt.study.pareto import front_table, levels_front

        return levels_front(self.optuna, self.spec) if levels else front_table(self.optuna, self.spec)

    def trials(self) -> pd.DataFrame:
        """One row per trial: state, objective values, selected point, SDD metrics, cost, parameters."""
        from sdd_opt.study.front_models import stored_weights
        from sdd_opt.study.pareto import searched_values
        from sdd_opt.study.record import TrialRecord, is_feasible

        rows = []
        for t in self.optuna.get_trials(deepcopy=False):
            rec = TrialRecord.from_trial(t)
            row = {"trial": t.number, "state": t.state.name}
            row.update(dict(zip(self.spec.metric_names, t.values or [None] * len(self.spec.metric_names))))
            row.update(level=rec.selected_level, val_acc=rec.val_acc, sparsity=rec.sparsity, test_acc=rec.test_acc,
                       remedy=rec.remedy, sdd_gap=rec.metric("sdd_gap"), levels=len(rec.curve),
                       curve_epochs=rec.curve_epochs, epochs_trained=rec.epochs_trained, seconds=rec.seconds,
                       feasible=is_feasible(t), kept_levels=sorted(stored_weights(t)), fail_reason=rec.fail_reason)
            row.update(searched_values(t, self.spec))
            rows.append(row)
        return pd.DataFrame(rows)

    def curves(self) -> pd.DataFrame:
        """Every level of every trial that has a curve: one row per (trial, level), seed means."""
        from sdd_opt.study.pareto import searched_values
        from sdd_opt.study.record import TrialRecord

        rows = []
        for t in self.optuna.get_trials(deepcopy=False):
            rec = TrialRecord.from_trial(t)
            params = searched_values(t, self.spec)
            for r in rec.curve:
                rows.append({"trial": t.number, "state": t.state.name, **r, "remedy": rec.remedy, **params})
        return pd.DataFrame(rows)

    def export(self, out: str | Path, weights: bool = False, levels: bool | None = None,
               fmt: str = "yaml") -> pd.DataFrame:
        """``sdd-opt study export``: re-runnable configs, or with ``weights=True`` one model folder per
        point of the front over all levels (read them with :func:`sdd_opt.load_model`)."""
        from sdd_opt.paths import check_output_dir

        check_output_dir(str(out), flag="out")
        if weights:
            from sdd_opt.study.export_models import export_models

            return export_models(self.optuna, self.spec, Path(out), self._store())
        from sdd_opt.study.export import export_front
        from sdd_opt.study.pareto import front_of_levels

        levels = front_of_levels(self.spec) if levels is None else levels
        return export_front(self.optuna, self.spec, Path(out), fmt, levels)

    def load_model(self, trial: int, level: int | None = None, device: str = "cpu"):
        """The pruned model of ``trial`` at ``level`` (default: its selected level): from the artifact
        store when the study kept its weights (a front level), else retrained from its config."""
        from sdd_opt.exported import load_model
        from sdd_opt.study.export_models import write_point
        from sdd_opt.study.record import TrialRecord

        t = self._trial(trial)
        rec = TrialRecord.from_trial(t)
        level = rec.selected_level if level is None else int(level)
        if level is None or not 0 <= level < len(rec.curve):
            raise UserError(f"level: trial {trial} has levels 0-{len(rec.curve) - 1} (got {level})")
        with tempfile.TemporaryDirectory(prefix="sdd-opt-model-") as tmp:
            write_point(t, level, Path(tmp) / "point", self._store(), self.name)
            return load_model(Path(tmp) / "point", device)

    def _trial(self, number: int) -> optuna.trial.FrozenTrial:
        for t in self.optuna.get_trials(deepcopy=False):
            if t.number == number:
                if t.state != optuna.trial.TrialState.COMPLETE:
                    raise UserError(f"trial: trial {number} is {t.state.name.lower()}, not complete")
                return t
        raise UserError(f"trial: study {self.name!r} has no trial {number}")


def open_study(name: str, storage: str | None = None, artifacts: str | None = None) -> Study:
    """The stored study ``name`` (``storage``: a URL, else ``$SDD_OPT_STORAGE``, else the default SQLite
    file; ``artifacts``: where its weights are, as ``--artifacts``)."""
    from sdd_opt.study.runner import load_stored
    from sdd_opt.study.storage import StorageSettings, open_storage, resolve_url

    url = resolve_url(storage)
    st = open_storage(url, StorageSettings(heartbeat_interval=None, grace_period=None, max_retry=None,
                                           must_exist=True))
    study, spec = load_stored(name, st)
    return Study(study, spec, url, artifacts)


def run_study(file: str | Path, storage: str | None = None, *, n_trials: int | None = None,
              jobs: int | None = None, name: str | None = None, overrides: Sequence[str] = (),
              artifacts: str | None = None, timeout: float | None = None, seed_with_paper: bool = False,
              device: str | None = None, threads: int | None = None, replay: str | None = None,
              progress: bool = False) -> Study:
    """``sdd-opt study run FILE``: create or resume the study and run trials until the budget is met
    (``n_trials`` complete trials in the whole study, else the file's); ``jobs`` local workers
    (default: one per core). Returns the study."""
    from sdd_opt.cli import study as commands

    spec = commands._load_spec(str(file), list(overrides), name)
    s, url = commands.run_study(spec, storage, jobs=jobs, seed_with_paper=seed_with_paper, n_trials=n_trials,
                                timeout=timeout, device=device, threads=threads, artifacts=artifacts,
                                heartbeat_interval=60, grace_period=120, storage_timeout=600, progress=progress,
                                replay=replay)
    return Study(s, spec, url, artifacts)
