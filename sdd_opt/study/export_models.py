"""``sdd-opt study export NAME --weights``: the front's models, one folder per point.

Each point of the front over all levels (:func:`~sdd_opt.study.pareto.levels_front`) becomes
``trial<NNNN>_level<KK>/`` with ``config.yaml`` (the trial's config stopped at this level: it
re-runs to these weights), ``model.pt`` (state dict + masks, ``weights_only=True``; read it with
:func:`sdd_opt.load_model`), ``metrics.json`` (the first seed's recorded accuracies, which these
weights give, and the trial's seed means) and ``provenance.json`` (study, trial, level, seed,
where the weights came from, library versions). Weights come from the artifact store
(:mod:`sdd_opt.study.front_models`); a level without stored weights (a study run before weights
were kept, or a reader slower than the store's grace period) is retrained from its config, and
the export says so in its output, ``front.csv`` (column ``weights``) and ``provenance.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import yaml

from sdd_opt.errors import UserError
from sdd_opt.exported import CONFIG_FILE, METRICS_FILE, MODEL_FILE, PROVENANCE_FILE
from sdd_opt.study.export import _config_for
from sdd_opt.study.front_models import download_weights, stored_weights
from sdd_opt.study.pareto import levels_front
from sdd_opt.study.record import TrialRecord
from sdd_opt.study.spec import StudySpec


def point_name(trial: int, level: int) -> str:
    return f"trial{trial:04d}_level{level:02d}"


def _seed_row(rec: TrialRecord, level: int) -> dict | None:
    """The first seed's recorded row of ``level`` (the seed whose weights are kept)."""
    seed = rec.seeds[0] if rec.seeds else None
    rows = rec.seed_curves.get(seed) if seed is not None else None
    if rows is None and len(rec.seeds) <= 1:
        rows = rec.curve  # one seed: its curve is the mean
    return rows[level] if rows and level < len(rows) else None


def retrain_level(data: dict, level: int, dest: Path, work: Path, log: Callable[[str], None]) -> dict:
    """Train ``data`` (a config stopped at ``level``) in ``work``; copy its last checkpoint to ``dest``."""
    from sdd_opt.config import build_config
    from sdd_opt.imp import run_curve

    cfg = build_config(data, source="exported config", stored=True)
    cfg.distill.teacher.cache_dir = str(work / "teachers")
    res = run_curve(cfg, work / "run", keep_checkpoints="last", progress=False, log=lambda _m: None)
    if len(res.rows) <= level:
        raise UserError(f"retraining stopped at level {len(res.rows) - 1} before level {level} ({res.stop_reason})")
    shutil.copyfile(work / "run" / "checkpoints" / f"level_{level}.pt", dest)
    return res.rows[level]


def write_point(trial: optuna.trial.FrozenTrial, level: int, folder: Path, store, study_name: str,
                log: Callable[[str], None] = print) -> dict:
    """One point's folder; returns its provenance (``weights``: stored or retrained, and why)."""
    from sdd_opt.checkpoints import load_checkpoint
    from sdd_opt.provenance import provenance

    rec = TrialRecord.from_trial(trial)
    data = _config_for(trial, level)
    folder.mkdir(parents=True, exist_ok=True)
    mean = rec.curve[level]
    (folder / CONFIG_FILE).write_text(
        f"# study {study_name}, trial {trial.number}, level {level}: val_acc {mean['val_acc']:.4f} at sparsity "
        f"{mean['sparsity']:.4f}\n" + yaml.safe_dump(data, sort_keys=False))
    aid = stored_weights(trial).get(level)
    row = _seed_row(rec, level)
    info = {"study": study_name, "trial": trial.number, "level": level, "seed": data["seed"], "artifact_id": aid}
    if aid is not None and store is not None and download_weights(store, aid, folder / MODEL_FILE):
        info.update(weights="stored", reason="")
    else:
        info.update(weights="retrained", reason="no weights stored (a study run before weights were kept)"
                    if aid is None else "its weights are no longer in the artifact store")
        log(f"trial {trial.number} level {level}: {info['reason']}; retraining it from its config")
        recorded = row
        with tempfile.TemporaryDirectory(prefix=".retrain-", dir=folder) as tmp:
            row = retrain_level(data, level, folder / MODEL_FILE, Path(tmp), log)
        if recorded is not None:
            info["recorded"] = {k: recorded.get(k) for k in ("val_acc", "test_acc", "sparsity")}
            same = all(recorded.get(k) == row.get(k) for k in ("val_acc", "test_acc", "sparsity"))
            log(f"trial {trial.number} level {level}: retrained: test acc {row['test_acc']:.4f} "
                f"(recorded {recorded['test_acc']:.4f}{'' if same else ', differs: another machine or library'})")
    ckpt = load_checkpoint(folder / MODEL_FILE)
    if int(ckpt.get("level", level)) != level:
        raise UserError(f"{folder / MODEL_FILE}: holds level {ckpt.get('level')}, expected {level}")
    keys = ("sparsity", "train_acc", "val_acc", "test_acc")
    metrics = {"trial": trial.number, "level": level, "seed": data["seed"],
               **{k: row.get(k) for k in keys if row is not None},
               "trial_mean": {k: mean.get(k) for k in (*keys, "val_acc_std", "test_acc_std") if k in mean},
               "seeds": rec.seeds, "remedy": rec.remedy}
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    info.update(trial_versions=rec.versions, exported=provenance())
    (folder / PROVENANCE_FILE).write_text(json.dumps(info, indent=2))
    return info


def export_models(study: optuna.Study, spec: StudySpec, out: Path, store,
                  log: Callable[[str], None] = print) -> pd.DataFrame:
    """Write one folder per point of the all-levels front plus ``front.csv``; returns the table."""
    table = levels_front(study, spec)
    if table.empty:
        raise UserError(f"study {spec.name!r} has no complete trial to export yet")
    out.mkdir(parents=True, exist_ok=True)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    folders, sources = [], []
    for _, row in table.iterrows():
        trial, level = by_number[int(row["trial"])], int(row["level"])
        name = point_name(trial.number, level)
        info = write_point(trial, level, out / name, store, spec.name, log)
        folders.append(name)
        sources.append(info["weights"])
    table = table.assign(folder=folders, weights=sources)
    table.to_csv(out / "front.csv", index=False)
    return table
