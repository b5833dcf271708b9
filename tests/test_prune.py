import pytest
import torch
from torch import nn

from sdd_opt.config import ModelConfig
from sdd_opt.models import build_model
from sdd_opt.prune import MaskApplier, density_at, full_masks, magnitude_prune, measured_sparsity, prunable_parameters


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(name="cnn1d", width=16), (1, 40), 10)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sparsity_after_k_levels_is_exact_within_one_weight(scope):
    model = _model()
    masks = full_masks(model)
    total = sum(p.numel() for p in prunable_parameters(model).values())
    for k in range(1, 9):
        masks = magnitude_prune(model, masks, density_at(k, 0.2), scope)
        MaskApplier(model, masks)()
        with torch.no_grad():  # perturb survivors so ranking changes between levels
            for p in prunable_parameters(model).values():
                p.add_(torch.randn_like(p) * 0.01).mul_(masks[[n for n, q in prunable_parameters(model).items() if q is p][0]])
        expected = 1 - 0.8 ** k
        slack = 1 / total if scope == "global" else len(masks) / total
        assert abs(measured_sparsity(model) - expected) <= slack + 1e-12


def test_global_pruning_removes_smallest_magnitudes_and_never_revives():
    model = _model()
    masks = full_masks(model)
    masks = magnitude_prune(model, masks, 0.5, "global")
    params = prunable_parameters(model)
    kept = torch.cat([params[n].detach().abs()[masks[n].bool()] for n in masks])
    dropped = torch.cat([params[n].detach().abs()[~masks[n].bool()] for n in masks])
    assert kept.min() >= dropped.max()
    with torch.no_grad():  # make a pruned weight huge: it must stay pruned
        name = next(iter(masks))
        idx = (masks[name] == 0).nonzero()[0]
        params[name][tuple(idx)] = 1e6
    masks2 = magnitude_prune(model, masks, 0.25, "global")
    assert masks2[name][tuple(idx)] == 0


def test_biases_and_norm_layers_are_not_prunable():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="resnet18", width=8), (3, 32, 32), 10)
    names = prunable_parameters(model)
    assert all(n.endswith(".weight") for n in names)
    bn_weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert not bn_weights & set(names)


def test_pruned_weights_stay_zero_through_sgd_momentum_and_weight_decay():
    model = _model()
    masks = magnitude_prune(model, full_masks(model), 0.3, "global")
    apply = MaskApplier(model, masks)
    apply()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    x, y = torch.randn(32, 1, 40), torch.randint(0, 10, (32,))
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        apply()
    params = prunable_parameters(model)
    for n, m in masks.items():
        assert torch.all(params[n][m == 0] == 0)
        assert torch.any(params[n][m == 1] != 0)
    assert measured_sparsity(model) == pytest.approx(0.7, abs=1e-4)


def test_levels_keeping_weights_is_the_last_level_with_a_weight():
    from sdd_opt.prune import density_at, levels_keeping_weights

    for n, rate in [(31296, 0.99), (1000, 0.2), (7, 0.5), (1, 0.3)]:
        k = levels_keeping_weights(n, rate, 10_000)
        assert int(round(n * density_at(k, rate))) >= 1 and int(round(n * density_at(k + 1, rate))) == 0
    assert levels_keeping_weights(31296, 0.99, 10) == 2  # the example: level 3 keeps none
    assert levels_keeping_weights(10**6, 0.2, 5) == 5  # capped at the limit asked for
