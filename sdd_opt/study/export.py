"""Exporting a study's front as run configs that re-run to the same result.

Each exported config is the trial's resolved config with ``prune.levels`` set to the selected
level (and ``target_sparsity`` cleared), so ``sdd-opt train --config`` ends exactly at the point
the study reported: its last row is the trial's objective point (for the trial's first seed; the
study's value is the mean over its ``repeats`` seeds). Works on running or interrupted studies:
only complete trials are read.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import yaml

from sdd_opt.config import build_config
from sdd_opt.errors import UserError
from sdd_opt.renamed import rename_run_config
from sdd_opt.study.pareto import front_table, levels_front
from sdd_opt.study.record import TrialRecord
from sdd_opt.study.reproduce import train_command
from sdd_opt.study.spec import StudySpec


def _config_for(trial: optuna.trial.FrozenTrial, level: int) -> dict:
    stored = TrialRecord.from_trial(trial).config
    if stored is None:
        raise UserError(f"trial {trial.number} stores no resolved config; it cannot be exported")
    data = rename_run_config(dict(stored), stored=True)  # a trial stored before a key was renamed
    data["prune"] = dict(data["prune"], levels=int(level), target_sparsity=None, collapse_floor=None)
    data["train"] = dict(data["train"], device="auto", threads=None)
    build_config(data, source=f"trial {trial.number}")  # validate before writing
    return data


def _replayed_note(trial: optuna.trial.FrozenTrial) -> str:
    """A replayed trial's numbers come from a recorded table: say that its re-run trains for real."""
    replay = trial.user_attrs.get("replay")
    if not isinstance(replay, dict):
        return ""
    return (f"# replayed: these numbers are the recorded curve of the nearest grid point of {replay.get('table')}; "
            "the re-run trains this config and gives its own curve\n")


def export_front(study: optuna.Study, spec: StudySpec, out: Path, fmt: str = "yaml",
                 levels: bool = False) -> pd.DataFrame:
    """Write one config per Pareto-optimal trial (or level) plus ``front.csv``; returns the table."""
    table = levels_front(study, spec) if levels else front_table(study, spec)
    if table.empty:
        raise UserError(f"study {spec.name!r} has no complete trial to export yet")
    out.mkdir(parents=True, exist_ok=True)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    files = []
    for _, row in table.iterrows():
        trial = by_number[int(row["trial"])]
        level = int(row["level"])
        data = _config_for(trial, level)
        stem = f"trial{trial.number:04d}" + (f"_level{level:02d}" if levels else "")
        path = out / f"{stem}.{'json' if fmt == 'json' else 'yaml'}"
        point = TrialRecord.from_trial(trial).curve[level]
        header = (f"# exported from study {spec.name}, trial {trial.number}, level {level}: "
                  f"val_acc {point['val_acc']:.4f} at sparsity {point['sparsity']:.4f}\n"
                  f"# re-run (in this folder): {train_command(path.name, stem)}\n"
                  + _replayed_note(trial))
        if fmt == "json":
            path.write_text(json.dumps(data, indent=2))
        else:
            path.write_text(header + yaml.safe_dump(data, sort_keys=False))
        files.append(path.name)
    table = table.assign(config=files)
    table.to_csv(out / "front.csv", index=False)
    return table
