"""A study from Python, end to end, at toy scale (about a minute on one core): run it, read its
front, trials and curves as DataFrames, export the front's models and check each one.

    python examples/python_api.py [WORKDIR]

For the real thing, give ``sdd_opt.run_study`` a study file such as studies/mnist1d_search.yaml
(hours on two cores). docs/python.md explains each call.
"""

import sys
import tempfile
from pathlib import Path

import yaml

import sdd_opt

# A toy study: a small 1D CNN on a synthetic problem, 2 epochs a level, 3 pruning levels.
TOY = {
    "name": "toy",
    "base": {"data": {"name": "synthetic1d", "noise": 0.2}, "model": {"name": "cnn1d", "width": 8},
             "train": {"epochs": 2, "batch_size": 64}, "prune": {"levels": 3}},
    "search_space": {
        "train.weight_decay": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "zero": True},
        "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "step": 0.1},
    },
    "sampler": {"name": "random", "seed": 0},
    "budget": {"n_trials": 3},
}


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    TOY["base"]["data"]["data_dir"] = str(work / "data")
    study_file = work / "toy.yaml"
    study_file.write_text(yaml.safe_dump(TOY))
    storage = f"sqlite:///{work / 'toy.db'}"
    artifacts = str(work / "artifacts")

    # Run the study (what `sdd-opt study run` does), then open it as any later session would.
    sdd_opt.run_study(study_file, storage=storage, n_trials=3, jobs=1, artifacts=artifacts)
    study = sdd_opt.open_study("toy", storage=storage, artifacts=artifacts)

    trials = study.trials()
    print(trials[["trial", "state", "remedy", "level", "val_acc", "sparsity", "kept_levels"]].to_string(index=False))
    curves = study.curves()
    print(f"{len(curves)} levels in {curves['trial'].nunique()} curves")
    front = study.front()  # every level of every trial, the non-dominated ones
    print(front[["trial", "level", "val_acc", "sparsity", "test_acc"]].to_string(index=False))

    # The front's models: one folder each, loaded back without the study or its run directories.
    table = study.export(work / "models", weights=True)
    for _, row in table.iterrows():
        folder = work / "models" / row["folder"]
        model = sdd_opt.load_model(folder)
        acc = sdd_opt.evaluate_model(folder, model=model)
        print(f"{row['folder']}: test accuracy {acc:.4f} (recorded {row['test_acc']:.4f}), weights {row['weights']}")
        assert acc == row["test_acc"], "an exported model must give the recorded test accuracy"

    # One model straight from the study: the first front point's trial and level.
    best = front.iloc[0]
    model = study.load_model(trial=int(best["trial"]), level=int(best["level"]))
    print(f"trial {best['trial']} level {best['level']}: {sum(p.numel() for p in model.parameters())} weights, "
          f"{sum(int((p == 0).sum()) for p in model.parameters())} of them pruned to zero")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
