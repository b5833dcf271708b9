"""Epoch throughput: sdd-opt's trainer against a plain PyTorch DataLoader loop.

Contenders (same model, same initial weights, same samples, batch size, SGD momentum 0.9 with
weight decay 5e-4 and the same one-cycle schedule):

* ``plain``: the loop of OpenLTH / DSD^2 / pytorch-cifar: a ``torch.utils.data.DataLoader`` over a
  ``TensorDataset`` (1D data) or over a torchvision-style Dataset that decodes each image with PIL
  and applies ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``
  per sample (image data); batches moved with ``.to(device, non_blocking=True)`` from pinned
  memory on CUDA; the training accuracy read with ``.item()`` every step, as those repositories
  do. Dense (no masks), as those loops are at IMP level 0, fp32 unless ``plain:bf16`` is asked.
* ``sdd``: ``sdd_opt.train.train_model`` on the in-memory Dataset (batches gathered on the
  device, batched augmentation on the device, channels_last for 2D conv nets, accuracy read
  once per epoch) with IMP masks at ``--density`` re-applied after every step.

Both run in this one process, alternating, ``--reps`` times; the table gives median seconds per
epoch and the median of the per-rep ratios plain / contender.

    python -m benchmarks.throughput --model cnn1d --data mnist1d --epochs 2 --reps 5 --threads 2
    python -m benchmarks.throughput --data synthetic_images --model resnet18 --width 16 --epochs 1 --reps 3
    python -m benchmarks.throughput --data cifar10 --model resnet18 --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from benchmarks import common

# (device type, data, model) -> minimum speed-up of sdd-opt over the plain loop, from the issue.
TARGETS = {("cpu", "mnist1d", "cnn1d"): 2.0, ("cuda", "cifar10", "resnet18"): 3.0}
DEFAULT_VARIANTS = {"cpu": "plain:fp32,sdd:fp32,sdd:bf16", "cuda": "plain:fp32,sdd:fp32,sdd:bf16"}


@dataclass(frozen=True)
class Variant:
    kind: str  # plain | sdd
    precision: str  # fp32 | bf16 | fp16
    compile: bool

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.precision}" + ("+compile" if self.compile else "")

    @classmethod
    def parse(cls, spec: str) -> "Variant":
        kind, _, rest = spec.strip().partition(":")
        prec, plus, comp = (rest or "fp32").partition("+")
        if kind not in ("plain", "sdd") or prec not in ("fp32", "bf16", "fp16") or (plus and comp != "compile"):
            raise SystemExit(f"error: --variants: cannot read {spec!r} (expected e.g. plain:fp32, sdd:bf16+compile)")
        return cls(kind, prec, bool(plus))


def _dtype(precision: str) -> Optional[torch.dtype]:
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


# -- the plain loop ---------------------------------------------------------------------------

class PerSampleImages(torch.utils.data.Dataset):
    """What ``torchvision.datasets.CIFAR10.__getitem__`` does: uint8 HWC array -> PIL -> transform."""

    def __init__(self, images_uint8_hwc, targets, transform):
        self.data, self.targets, self.transform = images_uint8_hwc, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image

        img = self.data[i]
        img = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        return self.transform(img), int(self.targets[i])


def plain_dataset(data, name: str, data_dir: str):
    """The dataset the plain loop reads: host tensors (1D) or per-sample PIL transforms (images)."""
    x, y = data.x_train.cpu(), data.y_train.cpu()
    if x.dim() != 4:
        return torch.utils.data.TensorDataset(x, y)
    from torchvision import transforms

    c, h, _ = x.shape[1:]
    if name in ("cifar10", "cifar100"):  # the real thing: torchvision's own dataset class
        import torchvision

        from sdd_opt.data.vision import SPECS

        cls_name, mean, std, _ = SPECS[name]
        tf = [transforms.RandomCrop(h, padding=4), transforms.RandomHorizontalFlip()] if data.augment else []
        tf += [transforms.ToTensor(), transforms.Normalize(mean, std)]
        ds = getattr(torchvision.datasets, cls_name)(root=data_dir, train=True, download=False,
                                                     transform=transforms.Compose(tf))
        return torch.utils.data.Subset(ds, range(len(y))) if len(y) < len(ds) else ds
    # Generated images: store them as uint8 like a decoded image file, and undo that in Normalize.
    mean, std = (0.5,) * c, (0.25,) * c
    u8 = ((x * 0.25 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    tf = [transforms.RandomCrop(h, padding=4), transforms.RandomHorizontalFlip()] if data.augment else []
    tf += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return PerSampleImages(u8, y.numpy(), transforms.Compose(tf))


def plain_train(model, loader, epochs: int, lr: float, device: torch.device, dtype: Optional[torch.dtype]) -> float:
    """The textbook loop; returns the last epoch's training accuracy."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader))
    model.train()
    acc = 0.0
    for _ in range(epochs):
        correct = total = 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = model(x)
                loss = F.cross_entropy(out.float(), y)
            loss.backward()
            opt.step()
            sched.step()
            correct += out.argmax(1).eq(y).sum().item()  # per-step host read, as those repositories do
            total += y.size(0)
        acc = correct / max(total, 1)
    return acc


# -- sdd-opt ----------------------------------------------------------------------------------

def sdd_config(args, device: torch.device, v: Variant, epochs: int):
    from sdd_opt.config import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, schedule="onecycle", momentum=0.9,
                       weight_decay=5e-4, precision=v.precision, compile=v.compile, device=str(device))


def count_host_syncs(model, data, cfg, masks, seed: int) -> int:
    """Synchronizing CUDA calls during one train_model epoch (torch's sync debug mode)."""
    from sdd_opt.train import train_model

    cfg = cfg.model_copy(update={"epochs": 1})
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_model(model, data, cfg, seed=seed, masks=masks)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


# -- main ---------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cnn1d")
    p.add_argument("--data", default="mnist1d")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed run (default: 2)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--train-size", type=int, default=None, help="subsample the training set (quick runs)")
    p.add_argument("--density", type=float, default=0.8,
                   help="fraction of weights kept by sdd-opt's masks (default 0.8: IMP level 1 at rate 0.2)")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers of the plain loop (default: 0 on CPU, where workers would take the "
                        "compute cores; min(4, cores) on CUDA, as those repositories use)")
    p.add_argument("--no-augment", action="store_true", help="images without crop/flip augmentation")
    p.add_argument("--variants", default=None,
                   help="comma list of plain|sdd:fp32|bf16|fp16[+compile]; the first plain one is the baseline "
                        f"(default cpu: {DEFAULT_VARIANTS['cpu']})")
    common.add_common_args(p, reps=5)
    return p.parse_args(argv)


def _print_target(speedups: dict[str, float], device, args) -> None:
    """The best sdd-opt variant's speed-up against the target set for this device, data and model."""
    if not speedups:
        return
    target = TARGETS.get((device.type, args.data, args.model))
    best = max(speedups, key=speedups.get)
    if target is None:
        print(f"target: none set for {device.type}/{args.data}/{args.model}; best sdd-opt variant {best} at "
              f"{speedups[best]:.2f}x")
    else:
        verdict = "MET" if speedups[best] >= target else "NOT MET"
        print(f"target: >= {target:.1f}x on {device.type} for {args.data}/{args.model}: best sdd-opt variant "
              f"{best} at {speedups[best]:.2f}x -> {verdict}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = common.setup(args)
    from sdd_opt.train import steps_per_epoch, train_model

    variants = [Variant.parse(s) for s in (args.variants or DEFAULT_VARIANTS[device.type]).split(",")]
    if not any(v.kind == "plain" for v in variants):
        variants.insert(0, Variant("plain", "fp32", False))
    baseline = next(v for v in variants if v.kind == "plain")

    data = common.load_bench_data(args.data, args.data_dir, torch.device("cpu"), seed=args.seed,
                                  train_size=args.train_size)
    is_image = data.x_train.dim() == 4
    augment = is_image and not args.no_augment  # CIFAR-style crop/flip on every image set, in both loops
    data = dataclasses.replace(data, augment=augment).to(device)
    n = len(data.x_train)
    spe = steps_per_epoch(n, args.batch_size)
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else min(4, os.cpu_count() or 1))
    loader = torch.utils.data.DataLoader(plain_dataset(data, args.data, args.data_dir), batch_size=args.batch_size,
                                         shuffle=True, num_workers=workers, pin_memory=device.type == "cuda")

    init_model = common.build(args.model, args.width, data, device, seed=args.seed)
    init_state = common.state_copy(init_model)
    masks = common.level_masks(init_model, args.density) if args.density < 1 else None

    runners, warmup, models = {}, {}, {}
    for v in variants:
        model = common.build(args.model, args.width, data, device, seed=args.seed)
        models[v.name] = model
        if v.kind == "plain":
            def run(model=model, v=v, epochs=args.epochs):
                model.load_state_dict(init_state)
                plain_train(model, loader, epochs, args.lr, device, _dtype(v.precision))
        else:
            def run(model=model, v=v, epochs=args.epochs):
                model.load_state_dict(init_state)
                train_model(model, data, sdd_config(args, device, v, epochs), seed=args.seed, masks=masks)
        warmup[v.name] = common.timed(lambda run=run: run(epochs=1), device)  # compile, allocator, oneDNN caches
        runners[v.name] = run

    times = common.alternate(runners, args.reps, device)
    base = times[baseline.name]
    rows = []
    for v in variants:
        t = [s / args.epochs for s in times[v.name]]
        med = common.median(t)
        pipeline = ("DataLoader" + (f"+PIL per-sample, {workers} workers" if is_image else "(TensorDataset), "
                                                                                           f"{workers} workers")
                    if v.kind == "plain" else "train_model, in-memory" + (" + channels_last" if is_image else ""))
        rows.append([v.name, pipeline, v.precision, "yes" if v.compile else "no",
                     "none (dense)" if v.kind == "plain" or masks is None else f"{args.density:.0%} kept",
                     med, min(t), n / med, common.median_ratio(base, times[v.name]), warmup[v.name]])
    headers = ["variant", "pipeline", "precision", "compile", "masks", "s/epoch (median)", "s/epoch (min)",
               "samples/s", "speed-up vs plain", "warm-up s (1 epoch)"]

    print(f"## throughput: {args.model} (width {args.width}) on {args.data}"
          f"{' + crop/flip' if augment else ''}, {n} training samples, batch {args.batch_size}, {spe} steps/epoch")
    print(f"machine: {common.machine(device, args.threads)}; {args.epochs} epochs x {args.reps} reps, alternating")
    print(f"baseline: {baseline.name}; speed-up = median over reps of (baseline s/epoch) / (variant s/epoch)")
    print()
    print(common.table(headers, rows))
    print()
    _print_target({r[0]: r[8] for r in rows if r[0].startswith("sdd")}, device, args)
    sdd_default = next((v for v in variants if v.kind == "sdd"), None)
    if device.type == "cuda" and sdd_default is not None:
        n_sync = count_host_syncs(models[sdd_default.name], data, sdd_config(args, device, sdd_default, 1), masks,
                                  args.seed)
        print(f"host syncs in one sdd-opt epoch ({sdd_default.name}): {n_sync} "
              "(2 expected: the epoch-end loss read and the final accuracy read)")
    else:
        print("host-sync check: needs CUDA (torch.cuda.set_sync_debug_mode); not run on cpu")
    sys.stdout.flush()
    return {"rows": rows, "headers": headers, "times": times}


if __name__ == "__main__":
    main()
