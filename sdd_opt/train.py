"""One training run of one (possibly pruned) network: SGD + schedule + l2, optional distillation.

Why not a DataLoader: every dataset here fits in memory, so the whole split lives as a tensor on
the training device and batches are gathered by index -- no worker processes, no per-sample
Python, no collation. Augmentation runs batched on the device. Accuracy and loss accumulate on
the device and are read once per epoch, so the step never waits on the host.

Determinism: batch order is drawn from a generator seeded by ``(seed, epoch)`` and each batch's
crop/flip from one seeded by ``(seed, epoch, batch)``, so every pruning level sees the same order
and augmentation, an interrupted run resumes exactly, and rewinding to iteration k continues from
the same position in the same epoch.

Speed (measured in ``benchmarks/``, see ``docs/performance.md``): conv nets on images run in
``channels_last`` memory format (faster convolutions on cuDNN and oneDNN); the augmentation draws
its random numbers on the training device, so a CUDA step never copies from the host or waits for
it; masks are re-applied in place with one fused call.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from sdd_opt.config import DistillConfig, TrainConfig
from sdd_opt.data import Dataset
from sdd_opt.data.augment import augment_batch
from sdd_opt.distill import distillation_loss
from sdd_opt.errors import DivergedError, UserError
from sdd_opt.prune import MaskApplier, Masks


@dataclass
class TrainStats:
    train_acc: float  # on the noisy training labels, accumulated over the last epoch
    loss: float  # mean training loss of the last epoch
    epochs: int
    steps: int
    seconds: float
    lr_start: float = float("nan")  # the learning rate of the first step (the schedule at start_step)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device: {name} requested but CUDA is not available on this machine")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def uses_channels_last(model: nn.Module) -> bool:
    """Whether the trainer runs ``model`` in channels_last format: models with 2D convolutions."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD with the fused kernel where torch has one: one pass over all parameters per step instead
    of a Python loop of small ops (1.5-3x faster optimizer step on the CPU, see docs/performance.md)."""
    kw = dict(lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.SGD(model.parameters(), fused=True, **kw)
        except RuntimeError:  # torch < 2.4 has no fused SGD on the CPU
            pass
    return torch.optim.SGD(model.parameters(), **kw)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, spe: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[m * spe for m in cfg.milestones], gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + epoch)
    return g


def _batch_seed(seed: int, epoch: int, batch: int) -> int:
    """Seed of the augmentation of one batch (a stream apart from the batch order's)."""
    return ((seed * 1_000_003 + epoch) * 1_000_033 + batch + 0x5EED) % (2 ** 63)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int,
                   precision: Optional[torch.dtype] = None) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = []
    with _autocast(x.device, precision):
        for i in range(0, len(x), batch_size):
            out.append(model(x[i:i + batch_size]).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048,
             precision: Optional[torch.dtype] = None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``(x, y)``; NaN for an empty split."""
    if len(x) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(model, x, batch_size, precision)
    acc = (logits.argmax(1) == y).sum().item() / len(y)  # an exact fraction, not a float32 mean
    return acc, F.cross_entropy(logits, y).item()


def train_model(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    *,
    seed: int,
    masks: Optional[Masks] = None,
    start_step: int = 0,
    teacher: Optional[nn.Module] = None,
    distill: Optional[DistillConfig] = None,
    snapshot_step: Optional[int] = None,
    on_epoch: Optional[Callable[[int, int], None]] = None,
    channels_last: Optional[bool] = None,
) -> tuple[TrainStats, Optional[dict]]:
    """Train ``model`` in place from ``start_step`` to the end of the schedule.

    Returns the stats and, if ``snapshot_step`` falls inside the run, a copy of the model's
    state_dict taken right after that step (the lottery-ticket rewind point).
    ``channels_last``: None picks it for models with 2D convolutions (the model's 4D weights
    are left in that format; values are unchanged).
    """
    device = data.x_train.device
    n = len(data.x_train)
    spe = steps_per_epoch(n, cfg.batch_size)
    total = cfg.epochs * spe
    if start_step >= total:
        raise UserError(f"prune.rewind_to: rewind point (step {start_step}) is past the end of training ({total} "
                        "steps)")
    channels_last = _prepare_model(model, device, channels_last)
    stepper = _Stepper.build(model, data, cfg, device, masks, teacher, distill, total, spe, start_step)
    model.train()
    lr_start = stepper.opt.param_groups[0]["lr"]
    snapshot = None
    step = start_step
    t0 = time.perf_counter()
    first_epoch = start_step // spe
    aug_gen = torch.Generator(device=device) if data.augment else None
    for epoch in range(first_epoch, cfg.epochs):
        meter = _EpochMeter(device)
        skip = (start_step - epoch * spe) if epoch == first_epoch else 0
        for idx, x, y in _epoch_batches(data, cfg.batch_size, seed, epoch, range(skip, spe), channels_last, aug_gen):
            logits, loss = stepper.step(x, y, idx)
            step += 1
            meter.add(logits, loss, y)
            if snapshot_step is not None and step == snapshot_step:
                snapshot = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
        mean_loss = meter.mean_loss()  # one host sync per epoch
        if not math.isfinite(mean_loss):
            raise DivergedError(f"training diverged at epoch {epoch + 1}: loss is {mean_loss}")
        if on_epoch:
            on_epoch(epoch + 1, cfg.epochs)
    stats = TrainStats(train_acc=meter.accuracy(), loss=mean_loss, epochs=cfg.epochs - first_epoch,
                       steps=step - start_step, seconds=time.perf_counter() - t0, lr_start=lr_start)
    return stats, snapshot


def _prepare_model(model: nn.Module, device: torch.device, channels_last: Optional[bool]) -> bool:
    """cuDNN autotuning on CUDA and the memory format; returns whether inputs go channels_last."""
    if device.type == "cuda":  # fixed batch shapes: let cuDNN pick the fastest convolution once
        torch.backends.cudnn.benchmark = True
    if channels_last is None:
        channels_last = uses_channels_last(model)
    if channels_last:  # in place (same Parameter objects): before the optimizer and the mask applier
        model.to(memory_format=torch.channels_last)
    return channels_last


def _epoch_batches(data: Dataset, batch_size: int, seed: int, epoch: int, batches: range,
                   channels_last: bool, aug_gen: Optional[torch.Generator]):
    """``(indices, inputs, labels)`` of the given batches of one epoch, in the seeded epoch order."""
    n = len(data.x_train)
    perm = torch.randperm(n, generator=epoch_generator(seed, epoch, data.x_train.device), device=data.x_train.device)
    for b in batches:
        idx = perm[b * batch_size:(b + 1) * batch_size]
        x, y = data.x_train[idx], data.y_train[idx]
        if aug_gen is not None:  # random numbers drawn on the device: no host copy, no sync
            aug_gen.manual_seed(_batch_seed(seed, epoch, b))
            x = augment_batch(x, aug_gen)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        yield idx, x, y


class _EpochMeter:
    """Training accuracy and loss of one epoch, accumulated on the device (read once at its end)."""

    def __init__(self, device: torch.device):
        self.correct = torch.zeros((), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.seen = 0

    def add(self, logits: torch.Tensor, loss: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            self.correct += (logits.argmax(1) == y).sum()
            self.loss_sum += loss.detach() * len(y)
        self.seen += len(y)

    def mean_loss(self) -> float:
        return (self.loss_sum / max(self.seen, 1)).item()

    def accuracy(self) -> float:
        return self.correct.item() / max(self.seen, 1)


@dataclass
class _Stepper:
    """One optimisation step: forward (against the teacher when distilling), backward, SGD, schedule, masks."""

    forward: Callable
    opt: torch.optim.Optimizer
    sched: object
    apply_mask: Optional[MaskApplier]
    scaler: Optional[torch.amp.GradScaler]
    device: torch.device
    dtype: Optional[torch.dtype]
    teacher: Optional[nn.Module]
    teacher_logits: Optional[torch.Tensor]
    distill: Optional[DistillConfig]  # None: plain cross-entropy

    @classmethod
    def build(cls, model, data, cfg: TrainConfig, device, masks, teacher, distill, total: int, spe: int,
              start_step: int) -> "_Stepper":
        dtype = autocast_dtype(cfg.precision, device)
        opt = make_optimizer(model, cfg, device)
        sched = make_scheduler(opt, cfg, total, spe)
        with warnings.catch_warnings():  # fast-forward the schedule to the rewind point
            warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
            for _ in range(start_step):
                sched.step()
        apply_mask = MaskApplier(model, masks) if masks else None
        if apply_mask:
            apply_mask()
        use_kd = teacher is not None and distill is not None and distill.enabled
        teacher_logits = None
        if use_kd and not data.augment:  # fixed inputs: the teacher's logits can be computed once
            teacher_logits = predict_logits(teacher, data.x_train, cfg.eval_batch_size, dtype)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        forward = torch.compile(model) if cfg.compile else model
        return cls(forward, opt, sched, apply_mask, scaler, device, dtype, teacher if use_kd else None,
                   teacher_logits, distill if use_kd else None)

    def loss(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _autocast(self.device, self.dtype):
            logits = self.forward(x)
            if self.distill is None:
                return logits, F.cross_entropy(logits.float(), y)
            if self.teacher_logits is not None:
                t_logits = self.teacher_logits[idx]
            else:
                with torch.no_grad():
                    t_logits = self.teacher(x)
            return logits, distillation_loss(logits, t_logits, y, self.distill.alpha, self.distill.temperature)

    def step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, loss = self.loss(x, y, idx)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:  # fp16: scale the loss so small gradients do not underflow
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        self.sched.step()
        if self.apply_mask:
            self.apply_mask()
        return logits, loss
