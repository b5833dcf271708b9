"""Disk cost of the weights a study keeps (its front over all levels) vs keeping every level.

1. Bytes of one level checkpoint (``{"state_dict", "masks", "level", "sparsity"}`` as
   ``torch.save`` writes it: what the artifact store holds per kept level, and what ``model.pt``
   holds) for the default study's model and for the CIFAR-10 ResNet-18 of
   ``studies/cifar10_resnet18_remedies.yaml``. Pruned weights are stored as zeros, so the size is
   the same at every level.
2. Levels on the front vs all levels, on the default study (``studies/mnist1d_search.yaml``, 40
   trials) served from the recorded-curve table (``--replay``: the same trials, no training):
   the final front, and every level ever uploaded (a level is uploaded when it is on the front
   as its trial completes; later trials push some off, and they are deleted a grace period after).
3. The projection for CIFAR-10 ResNet-18, 25 levels x 100 trials: every level vs the front, with
   the default study's measured fraction of levels kept.

    python -m benchmarks.weights_disk
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkpoint_bytes(cfg) -> tuple[int, int]:
    """(bytes of one level checkpoint, prunable weights) of ``cfg``'s model, measured with torch.save."""
    import torch

    from sdd_opt.data import SHAPES
    from sdd_opt.models import build_model
    from sdd_opt.prune import full_masks, prunable_parameters
    from sdd_opt.study.front_models import weights_bytes

    torch.manual_seed(0)
    shape, classes = SHAPES[cfg.data.name]
    model = build_model(cfg.model, shape, classes)
    state = {"state_dict": {k: v.detach() for k, v in model.state_dict().items()},
             "masks": full_masks(model), "level": 0, "sparsity": 0.0}
    return weights_bytes(state), sum(p.numel() for p in prunable_parameters(model).values())


def replay_front(study_file: Path, table: Path, n_trials: int) -> dict:
    """Run the study on the recorded curves; count its levels, its front, and the levels ever kept."""
    import optuna
    from optuna.trial import TrialState

    import sdd_opt
    from sdd_opt.study.front_models import front_pairs, study_points

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        url = f"sqlite:///{tmp}/replay.db"
        study = sdd_opt.run_study(study_file, storage=url, n_trials=n_trials, jobs=1, replay=str(table),
                                  artifacts=f"{tmp}/art")
        done = sorted(study.optuna.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                      key=lambda t: t.datetime_complete)
        uploaded: set = set()
        for i, t in enumerate(done):  # what the objective uploads as each trial completes
            front = front_pairs(study_points(done[:i + 1]))
            uploaded |= {p for p in front if p[0] == t.number}
        levels = sum(len(t.user_attrs.get("curve", [])) for t in done)
        final = front_pairs(study_points(done))
        assert len(final) == len(study.front()), "the store's front is levels_front"
        optuna.delete_study(study_name=study.name, storage=url)
    return {"trials": len(done), "levels": levels, "front": len(final), "uploaded": len(uploaded),
            "levels_per_trial": levels / max(1, len(done))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "studies/mnist1d_search.yaml"))
    ap.add_argument("--replay", default=str(ROOT / "benchmarks/data/mnist1d_curves.csv"))
    ap.add_argument("--n-trials", type=int, default=40)
    ap.add_argument("--cifar", default=str(ROOT / "studies/cifar10_resnet18_remedies.yaml"))
    ap.add_argument("--cifar-levels", type=int, default=25)
    ap.add_argument("--cifar-trials", type=int, default=100)
    args = ap.parse_args(argv)
    from sdd_opt.study.spec import load_study_spec

    spec = load_study_spec(args.study)
    b_small, n_small = checkpoint_bytes(spec.base)
    r = replay_front(Path(args.study), Path(args.replay), args.n_trials)
    cifar = load_study_spec(args.cifar).base
    b_big, n_big = checkpoint_bytes(cifar)
    mb = 1024 ** 2
    print(f"default study ({spec.name}, {spec.base.model.name} width {spec.base.model.width}): "
          f"{b_small / 1024:.1f} KiB per level checkpoint ({n_small} prunable weights)")
    print(f"  {r['trials']} trials (replayed), {r['levels']} levels ({r['levels_per_trial']:.1f} per trial)")
    print(f"  every level: {r['levels'] * b_small / mb:.2f} MiB; front ({r['front']} levels): "
          f"{r['front'] * b_small / mb:.3f} MiB; ever uploaded ({r['uploaded']} levels): "
          f"{r['uploaded'] * b_small / mb:.3f} MiB")
    all_big = args.cifar_levels * args.cifar_trials
    frac = r["uploaded"] / r["levels"]
    print(f"CIFAR-10 ResNet-18 (width {cifar.model.width}): {b_big / mb:.1f} MiB per level checkpoint "
          f"({n_big} prunable weights)")
    print(f"  {args.cifar_trials} trials x {args.cifar_levels} levels = {all_big} levels: every level "
          f"{all_big * b_big / 1024 ** 3:.1f} GiB; kept at the default study's rate ({frac:.1%} of levels ever "
          f"uploaded): {frac * all_big * b_big / 1024 ** 3:.2f} GiB; a front of {r['front']} points: "
          f"{r['front'] * b_big / 1024 ** 3:.2f} GiB")
    print(f"  staged while a trial runs (its first seed's levels, on the worker): up to "
          f"{(args.cifar_levels + 1) * b_big / 1024 ** 3:.2f} GiB per worker")


if __name__ == "__main__":
    main()
