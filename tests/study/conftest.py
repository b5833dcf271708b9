import pytest
import yaml

from sdd_opt.testing import tiny_study as base_tiny_study


def tiny_study(tmp_path, **changes) -> dict:
    """The shared tiny study plus a conditional parameter (alpha only with distillation)."""
    study = base_tiny_study(tmp_path)
    space = study["search_space"]
    study["search_space"] = {"train.weight_decay": space["train.weight_decay"], "distill.enabled": space["distill.enabled"],
                             "distill.alpha": {"type": "float", "low": 0.5, "high": 0.9, "when": {"distill.enabled": True}},
                             "prune.rate": space["prune.rate"]}
    study.update(changes)
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
