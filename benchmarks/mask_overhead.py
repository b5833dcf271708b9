"""Cost of keeping pruned weights at zero: in-place masks vs torch.nn.utils.prune hooks vs no masks.

Three copies of the same model (same initial weights, same batches, SGD momentum 0.9 + weight
decay) take training steps:

* ``unmasked``: the dense step, the floor.
* ``in-place (sdd-opt)``: the step, then ``sdd_opt.prune.MaskApplier`` multiplies every pruned
  weight tensor by its mask in place (one fused ``torch._foreach_mul_``), as the trainer does.
* ``torch prune hooks``: ``torch.nn.utils.prune.custom_from_mask`` on every conv/linear weight
  (the weight becomes ``weight_orig * weight_mask``, recomputed by a forward pre-hook on every
  forward and differentiated through on every backward).

They alternate, ``--reps`` times ``--steps`` steps each; the table gives the median time per step
and the median over reps of the overhead against ``unmasked``. Target: in-place < 5 %.

    python -m benchmarks.mask_overhead --model cnn1d --data mnist1d --reps 7 --steps 60
    python -m benchmarks.mask_overhead --model resnet18 --data synthetic_images --width 16 --steps 5
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from benchmarks import common

TARGET_PCT = 5.0


def make_step(model, masks, mode: str, lr: float, batches, device: torch.device):
    """A function running one pass over ``batches`` with masks handled the ``mode`` way."""
    from torch.nn.utils import prune as tprune

    from sdd_opt.prune import MaskApplier, apply_masks

    apply_masks(model, masks)  # same (pruned) starting weights for all three
    applier = None
    if mode == "hooks":
        for name, module in list(model.named_modules()):
            key = f"{name}.weight" if name else "weight"
            if key in masks:
                tprune.custom_from_mask(module, "weight", masks[key].to(module.weight.device))
    elif mode == "inplace":
        applier = MaskApplier(model, masks)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    model.train()

    def run():
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if applier is not None:
                applier()

    return run


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mask_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cnn1d")
    p.add_argument("--data", default="mnist1d")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=60, help="steps per timed run (default: 60)")
    p.add_argument("--density", type=float, default=0.107,
                   help="fraction of weights kept (default 0.107: IMP level 10 at rate 0.2)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--train-size", type=int, default=None)
    common.add_common_args(p, reps=7)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = common.setup(args)
    data = common.load_bench_data(args.data, args.data_dir, device, seed=args.seed, train_size=args.train_size)
    g = torch.Generator().manual_seed(args.seed)
    n = len(data.x_train)
    batches = []
    for i in range(args.steps):
        idx = torch.randint(0, n, (min(args.batch_size, n),), generator=g).to(device)
        batches.append((data.x_train[idx], data.y_train[idx]))

    init = common.build(args.model, args.width, data, device, seed=args.seed)
    masks = common.level_masks(init, args.density)
    n_params = sum(m.numel() for m in masks.values())
    modes = {"unmasked": "none", "in-place (sdd-opt)": "inplace", "torch prune hooks": "hooks"}
    runners = {}
    for label, mode in modes.items():
        model = common.build(args.model, args.width, data, device, seed=args.seed)
        runners[label] = make_step(model, masks, mode, args.lr, batches, device)
        runners[label]()  # warm-up pass
    times = common.alternate(runners, args.reps, device)
    base = times["unmasked"]
    rows = []
    for label in modes:
        per_step = [t / args.steps * 1e3 for t in times[label]]
        overhead = (common.median_ratio(times[label], base) - 1.0) * 100.0
        rows.append([label, common.median(per_step), min(per_step), f"{overhead:+.1f}"])
    headers = ["masking", "ms/step (median)", "ms/step (min)", "overhead % vs unmasked"]

    # The mask application alone, timed apart: the step-level difference above is within the
    # machine's noise when the applier costs microseconds.
    from sdd_opt.prune import MaskApplier

    applier = MaskApplier(common.build(args.model, args.width, data, device, seed=args.seed), masks)
    calls = 200
    applier()
    per_call = [common.timed(lambda: [applier() for _ in range(calls)], device) / calls * 1e6 for _ in range(5)]
    applier_us = common.median(per_call)
    applier_pct = applier_us / (common.median(base) / args.steps * 1e6) * 100

    print(f"## mask overhead: {args.model} (width {args.width}) on {args.data}, batch {args.batch_size}, "
          f"{len(masks)} masked tensors ({n_params} weights), {args.density:.1%} kept")
    print(f"machine: {common.machine(device, args.threads)}; {args.steps} steps x {args.reps} reps, alternating")
    print()
    print(common.table(headers, rows))
    print()
    print(f"MaskApplier call alone (one torch._foreach_mul_ over {len(masks)} tensors): {applier_us:.1f} us "
          f"= {applier_pct:.2f}% of an unmasked step")
    inplace = float(rows[1][3])
    print(f"target: in-place overhead < {TARGET_PCT:.0f}%: {inplace:+.1f}% -> "
          f"{'MET' if inplace < TARGET_PCT else 'NOT MET'}"
          f"; hooks: {rows[2][3]}%")
    sys.stdout.flush()
    return {"rows": rows, "headers": headers, "times": times, "applier_us": applier_us}


if __name__ == "__main__":
    main()
