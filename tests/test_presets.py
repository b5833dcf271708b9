"""Every file in studies/ validates, and the paper's presets say what the paper says."""

from pathlib import Path

import pytest

from sdd_opt.config import load_config, read_yaml
from sdd_opt.study.spec import load_study_spec

STUDIES = Path(__file__).resolve().parents[1] / "studies"
FILES = sorted(STUDIES.glob("*.yaml"))


def _is_study(path):
    return "search_space" in read_yaml(path) or "name" in read_yaml(path)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_preset_validates(path):
    if _is_study(path):
        spec = load_study_spec(path)
        assert spec.search_space and spec.file.budget.n_trials
    else:
        load_config(path)


def test_there_are_presets_for_each_paper_setup():
    names = {p.name for p in FILES}
    assert {"mnist1d_baseline.yaml", "mnist1d_search.yaml", "mnist1d_demo.yaml", "mnist1d_l2_sweep.yaml",
            "cifar10_resnet18_remedies.yaml", "cifar100_resnet18_remedies.yaml", "cifar10_vgg16_baseline.yaml",
            "mnist_lenet300_baseline.yaml"} <= names


def test_cifar_resnet18_follows_he_et_al():
    cfg = load_config(STUDIES / "cifar10_resnet18_baseline.yaml")
    assert (cfg.model.name, cfg.train.lr, cfg.train.momentum, cfg.train.batch_size, cfg.train.epochs) == \
        ("resnet18", 0.1, 0.9, 128, 160)
    assert cfg.train.schedule == "multistep" and cfg.train.milestones == [80, 120]
    assert (cfg.prune.rate, cfg.prune.scope, cfg.prune.rewind_to, cfg.prune.rewind_unit) == (0.2, "global", 1000, "iteration")
    spec = load_study_spec(STUDIES / "cifar100_resnet18_remedies.yaml")
    assert spec.base.data.name == "cifar100" and spec.sampler_name == "grid"
    assert spec.search_space["data.noise"].choices == [0.1, 0.2, 0.5]


def test_grid_sweeps_cover_the_paper_figure():
    spec = load_study_spec(STUDIES / "mnist1d_remedies.yaml")
    assert spec.sampler_name == "grid" and spec.file.repeats >= 3
    assert set(spec.search_space) == {"train.weight_decay", "distill.enabled"}
