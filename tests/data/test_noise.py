import math

import pytest
import torch

from sdd_opt.data.noise import CIFAR10_ASYMMETRIC, NOISE_KINDS, corrupt_labels


def labels(n=5000, c=10, seed=0):
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_kinds_match_config():
    import typing

    from sdd_opt.config import DataConfig

    assert NOISE_KINDS == typing.get_args(DataConfig.model_fields["noise_kind"].annotation)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.37, 0.8])
@pytest.mark.parametrize("n", [1000, 4001])
def test_symmetric_exact_count_and_always_different(rate, n):
    y = labels(n)
    noisy, changed = corrupt_labels(y, 10, rate, "symmetric", gen())
    assert int(changed.sum()) == math.floor(rate * n)
    assert torch.equal(changed, noisy != y)
    assert torch.equal(noisy[~changed], y[~changed])
    assert noisy.dtype == torch.int64 and noisy.min() >= 0 and noisy.max() < 10


def test_symmetric_targets_cover_other_classes_uniformly():
    y = torch.zeros(20000, dtype=torch.long)
    noisy, changed = corrupt_labels(y, 5, 0.5, "symmetric", gen())
    counts = torch.bincount(noisy[changed], minlength=5)
    assert counts[0] == 0
    assert ((counts[1:].float() / changed.sum() - 0.25).abs() < 0.02).all()


def test_uniform_rate_includes_same_label_draws():
    y = labels(50000)
    rate, c = 0.4, 10
    noisy, changed = corrupt_labels(y, c, rate, "uniform", gen())
    assert torch.equal(changed, noisy != y)
    assert abs(changed.float().mean().item() - rate * (1 - 1 / c)) < 0.01


def test_pairflip_maps_to_next_class():
    y = labels(3000)
    noisy, changed = corrupt_labels(y, 10, 0.3, "pairflip", gen())
    assert int(changed.sum()) == 900
    assert torch.equal(noisy[changed], (y[changed] + 1) % 10)
    assert torch.equal(noisy[~changed], y[~changed])


def test_asymmetric_moves_only_mapped_classes():
    y = labels(20000)
    noisy, changed = corrupt_labels(y, 10, 0.4, "asymmetric", gen())
    mapped = torch.tensor(sorted(CIFAR10_ASYMMETRIC))
    assert not changed[~torch.isin(y, mapped)].any()
    for src, dst in CIFAR10_ASYMMETRIC.items():
        sel = y == src
        assert (noisy[sel & changed] == dst).all()
        assert abs(changed[sel].float().mean().item() - 0.4) < 0.05


def test_asymmetric_needs_ten_classes():
    with pytest.raises(ValueError, match="10 classes"):
        corrupt_labels(labels(100, 100), 100, 0.2, "asymmetric", gen())


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown noise kind"):
        corrupt_labels(labels(10), 10, 0.2, "bogus", gen())


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_seeded(kind):
    y = labels(2000)
    a, _ = corrupt_labels(y, 10, 0.3, kind, gen(1))
    b, _ = corrupt_labels(y, 10, 0.3, kind, gen(1))
    c, _ = corrupt_labels(y, 10, 0.3, kind, gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(y, labels(2000))  # input untouched
