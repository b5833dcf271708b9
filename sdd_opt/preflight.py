"""Checks of a run config against its model, made before any data is loaded or any file written.

Validation of single keys lives in :mod:`sdd_opt.config`; what needs the model -- does it accept
the dataset's inputs, does the pruning schedule leave a weight -- is checked here by building the
model on the meta device (no memory, no data, milliseconds even for a ResNet-18).
"""

from __future__ import annotations

from sdd_opt.errors import UserError


def meta_model(cfg):
    """``cfg``'s model built on the meta device for its dataset's input shape (None if unknown)."""
    import torch

    from sdd_opt.data import SHAPES
    from sdd_opt.models import build_model
    from sdd_opt.plugins import uses_plugins

    if uses_plugins(cfg):  # built and run on the CPU: a user's builder need not know the meta device
        return check_pair(cfg)
    if cfg.data.name not in SHAPES:
        return None
    input_shape, num_classes = SHAPES[cfg.data.name]
    try:
        with torch.device("meta"):
            return build_model(cfg.model, input_shape, num_classes)
    except ValueError as exc:  # the architecture does not take this data's inputs
        raise UserError(f"model.name: {exc} (data.name is {cfg.data.name})") from None


def data_shape(data_cfg) -> tuple[tuple[int, ...], int] | None:
    """(input shape, number of classes) of a dataset: known for a built-in, loaded for a plug-in."""
    from sdd_opt.data import SHAPES, load_raw

    if data_cfg.name in SHAPES:
        return SHAPES[data_cfg.name]
    raw = load_raw(data_cfg)  # a plug-in loader: checked, and cached for the run in this process
    return tuple(raw.x_train.shape[1:]), raw.num_classes


def check_pair(cfg):
    """Build ``cfg``'s model for its data and run two zero inputs through it: the logits must be
    ``(2, num_classes)``. Built on the CPU (a user's builder may not know the meta device); returns
    the model, or None when the data's shape is unknown."""
    import torch

    from sdd_opt.models import build_model

    shape = data_shape(cfg.data)
    if shape is None:
        return None
    input_shape, num_classes = shape
    model = build_model(cfg.model, input_shape, num_classes)
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, *input_shape))
    except Exception as exc:
        raise UserError(f"model.name: {cfg.model.name} does not take {cfg.data.name}'s inputs of shape "
                        f"{tuple(input_shape)}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"model.name: {cfg.model.name} returned {got} for a batch of 2; logits must be "
                        f"(batch, {num_classes}) for {cfg.data.name}'s {num_classes} classes")
    return model


def check_schedule(cfg, model=None) -> None:
    """Refuse a schedule that prunes past the last weight (scope ``layer``: of the smallest layer).

    Past that level every retraining trains an empty network: levels of wasted compute and a
    flat curve. The schedule keeps ``round(n*(1-rate)^k)`` weights at level k (:mod:`sdd_opt.prune`).
    """
    from sdd_opt.prune import levels_keeping_weights, prunable_parameters

    p = cfg.prune
    model = model if model is not None else meta_model(cfg)
    if model is None or p.n_levels == 0:
        return
    sizes = [w.numel() for w in prunable_parameters(model).values()]
    if not sizes:
        return
    n = min(sizes) if p.scope == "layer" else sum(sizes)
    ok = levels_keeping_weights(n, p.rate, p.n_levels)
    if ok >= p.n_levels:
        return
    what = (f"its smallest layer has {n:,} weights" if p.scope == "layer"
            else f"{cfg.model.name} (width {cfg.model.width}) has {n:,} prunable weights")
    field = "prune.target_sparsity" if p.target_sparsity is not None else "prune.levels"
    raise UserError(f"{field}: {p.n_levels} levels at rate {p.rate} prune past the last weight: {what} and level "
                    f"{ok + 1} would keep none; use at most {ok} levels at this rate, or a lower prune.rate")


def check_folders(cfg) -> None:
    """``data.data_dir`` and the teacher cache can be folders: nothing on their way is a regular file.

    (Not writability: a read-only shared dataset folder is fine when the data is already there.)
    """
    from pathlib import Path

    folders = [("data.data_dir", cfg.data.data_dir)]
    if cfg.distill.enabled:
        folders.append(("distill.teacher.cache_dir", cfg.distill.teacher.cache_dir))
    for key, folder in folders:
        path = Path(folder).expanduser()
        for part in (path, *path.parents):
            if part.exists():
                if not part.is_dir():
                    where = "is a file" if part == path else f"{part} is a file"
                    raise UserError(f"{key} {folder}: {where}, not a directory")
                break


def check_teacher(cfg, model=None) -> None:
    """A given teacher (``distill.teacher.checkpoint`` or ``.run``) loads safely and fits the model.

    A missing, truncated or foreign file fails here, before the run directory is made -- not
    after config.yaml and the first checkpoints were written.
    """
    from pathlib import Path

    from sdd_opt.checkpoints import check_fits, load_state_dict

    t = cfg.distill.teacher
    if not cfg.distill.enabled or not (t.checkpoint or t.run):
        return
    key = "distill.teacher.checkpoint" if t.checkpoint else "distill.teacher.run"
    path = Path(t.checkpoint) if t.checkpoint else Path(t.run) / "checkpoints" / f"level_{t.level}.pt"
    state = load_state_dict(path, key)
    if model is not None:
        check_fits(model, state, f"{key} {path}")


def check_run(cfg) -> None:
    """Everything :mod:`sdd_opt.config` cannot check alone: folders, the model fits the data, the
    schedule keeps a weight, a given teacher loads and fits."""
    check_folders(cfg)
    model = meta_model(cfg)
    check_schedule(cfg, model)
    check_teacher(cfg, model)


def check_new_study(spec, file: str, name_given: bool) -> None:
    """A study about to be created or run from ``file``: a safe name, something to search, and a
    teacher named in its base config that loads and fits (distillation may be searched).

    Only new input is checked: studies stored under an older, looser rule stay readable by name.
    """
    from sdd_opt.paths import check_study_name

    check_study_name(spec.name, "--name" if name_given else f"{file}: name")
    from sdd_opt.plugins import uses_plugins

    if uses_plugins(spec.base):  # a plug-in that raises or does not fit its data fails now, not in a trial
        check_schedule(spec.base)
    teacher = spec.base.distill.teacher
    if teacher.checkpoint or teacher.run:  # a given teacher is checked now, not when a trial first distils
        cfg = spec.base.model_copy(deep=True)
        cfg.distill.enabled = True
        check_teacher(cfg, meta_model(cfg))
    if not spec.search_space:
        raise UserError(f"{file}: search_space: empty; give at least one key to search, e.g. "
                        "train.weight_decay: {type: float, low: 1e-5, high: 1e-2, log: true} "
                        "(to train one config use 'sdd-opt train --config')")
