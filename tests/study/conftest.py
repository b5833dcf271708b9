import pytest
import yaml


def tiny_study(tmp_path, **changes) -> dict:
    """A study over a tiny synthetic problem: 2 epochs, 2 levels, a few searched keys."""
    study = {
        "name": "tiny",
        "base": {
            "data": {"name": "synthetic1d", "data_dir": str(tmp_path / "data"), "noise": 0.2},
            "model": {"name": "cnn1d", "width": 8},
            "train": {"epochs": 2, "batch_size": 64, "threads": 1},
            "prune": {"levels": 2, "rate": 0.3},
        },
        "search_space": {
            "train.weight_decay": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "zero": True},
            "distill.enabled": {"type": "categorical", "choices": [False, True]},
            "distill.alpha": {"type": "float", "low": 0.5, "high": 0.9, "when": {"distill.enabled": True}},
            "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "step": 0.1},
        },
        "sampler": {"name": "random", "seed": 0},
        "select": {"rule": "best"},
        "budget": {"n_trials": 3},
    }
    for key, value in changes.items():
        study[key] = value
    return study


@pytest.fixture
def study_file(tmp_path):
    def write(**changes):
        path = tmp_path / f"study_{len(list(tmp_path.glob('study_*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(tiny_study(tmp_path, **changes)))
        return path
    return write


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'studies.db'}"
