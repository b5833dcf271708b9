"""Knowledge distillation: the loss and the (cached) dense teacher.

The paper's second remedy: a dense teacher trained with l2 on the same noisy labels guides every
pruned student. The loss is ``alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1-alpha)·CE(s, y)``;
the T² keeps the soft-target gradients on the scale of the hard-label ones (Hinton et al.).

A teacher costs a whole dense training, and every trial of a study with the same data, model and
teacher settings would train the same one. So trained teachers are cached on disk under the hash
of their description, and written atomically (``sdd_opt.checkpoints``) so concurrent workers never read half a file.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sdd_opt.checkpoints import load_state_dict, save_atomic
from sdd_opt.config import RunConfig, stable_hash
from sdd_opt.errors import UserError


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """``alpha·T²·KL(p_teacher ‖ p_student) + (1-alpha)·CE(student, labels)``, batch mean."""
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    ce = F.cross_entropy(student_logits.float(), labels)
    return alpha * t * t * kl + (1.0 - alpha) * ce


def teacher_config(cfg: RunConfig) -> RunConfig:
    """The dense run whose result is the teacher: the student's setup with the teacher's l2."""
    teacher = cfg.model_copy(deep=True)
    teacher.distill.enabled = False
    teacher.train.weight_decay = cfg.distill.teacher.weight_decay
    if cfg.distill.teacher.epochs is not None:
        teacher.train.epochs = cfg.distill.teacher.epochs
    teacher.prune.levels = 0
    teacher.prune.target_sparsity = None
    return teacher


def teacher_key(cfg: RunConfig) -> str:
    """Hash of what determines the teacher's weights (not the device, threads or cache dir)."""
    t = teacher_config(cfg)
    desc = {"seed": t.seed, "data": t.data.model_dump(exclude={"data_dir"}), "model": t.model.model_dump(),
            "train": t.train.model_dump(exclude={"device", "threads", "eval_batch_size", "compile"})}
    from sdd_opt.plugins import hash_fields

    return stable_hash({**desc, **hash_fields(t)})  # a changed plug-in never reuses a stale teacher


def teacher_origin(source: str) -> str:
    """Where :func:`get_teacher`'s teacher came from, in one word: trained, cached, given or none."""
    if not source:
        return "none"
    if source.startswith("trained teacher"):
        return "trained"
    if source.startswith("cached teacher"):
        return "cached"
    return "given"


@contextmanager
def _cache_lock(path: Path):
    """Exclusive use of one teacher's cache entry (``flock``: released by the kernel if a worker dies).

    A cache that cannot hold a lock file (read-only) is used without one.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_name(path.name + ".lock"), "w")
    except OSError:
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def get_teacher(
    cfg: RunConfig,
    build: Callable[[], nn.Module],
    train_dense: Callable[[RunConfig, nn.Module], None],
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, str]:
    """Return the teacher model (eval mode) and a short description of where it came from.

    ``build`` makes a fresh model; ``train_dense(teacher_cfg, model)`` trains it in place.
    """
    tcfg = cfg.distill.teacher
    model = build()
    if tcfg.checkpoint:
        model.load_state_dict(load_state_dict(Path(tcfg.checkpoint), "distill.teacher.checkpoint"))
        source = f"checkpoint {tcfg.checkpoint}"
    elif tcfg.run:
        path = Path(tcfg.run) / "checkpoints" / f"level_{tcfg.level}.pt"
        model.load_state_dict(load_state_dict(path, "distill.teacher.run"))
        source = f"run {tcfg.run} level {tcfg.level}"
    else:
        key = teacher_key(cfg)
        path = Path(tcfg.cache_dir) / f"teacher_{key}.pt"
        with _cache_lock(path):  # two workers that need the same teacher train it once
            if path.exists():
                try:
                    model.load_state_dict(load_state_dict(path, "teacher cache"))
                    return model.eval(), f"cached teacher {path}"
                except (UserError, RuntimeError) as exc:
                    log(f"teacher cache {path} unusable ({exc}); retraining it")
            log(f"training the dense teacher (l2 {tcfg.weight_decay}) -> {path}")
            train_dense(teacher_config(cfg), model)
            save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        source = f"trained teacher {path}"
    return model.eval(), source
