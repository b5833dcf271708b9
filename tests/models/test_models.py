"""Tests for the model registry and the five architectures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sdd_opt.config import ModelConfig
from sdd_opt.errors import UserError
from sdd_opt.models import MODELS, build_model, register

# (name, width, input_shape, num_classes) -- small widths keep the image models fast on CPU.
CASES = [
    ("cnn1d", 16, (1, 40), 10),
    ("mlp", 16, (1, 40), 10),
    ("lenet300", 16, (1, 28, 28), 10),
    ("resnet18", 8, (3, 32, 32), 10),
    ("vgg16", 8, (3, 32, 32), 100),
]
IDS = [c[0] for c in CASES]


def _build(name, width, input_shape, num_classes, seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(name=name, width=width), input_shape, num_classes)


def test_registry_has_exactly_the_five_models():
    assert set(MODELS) == {"cnn1d", "mlp", "lenet300", "resnet18", "vgg16"}


def test_register_refuses_duplicates():
    with pytest.raises(ValueError):
        register("cnn1d")(lambda width, input_shape, num_classes: nn.Identity())


def test_build_model_unknown_name():
    cfg = ModelConfig.model_construct(name="nope", width=8)  # bypass validation
    with pytest.raises(UserError, match="unknown model"):
        build_model(cfg, (1, 40), 10)


@pytest.mark.parametrize("name,width,input_shape,num_classes", CASES, ids=IDS)
def test_output_shape(name, width, input_shape, num_classes):
    model = _build(name, width, input_shape, num_classes)
    out = model(torch.randn(3, *input_shape))
    assert out.shape == (3, num_classes)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name,width,input_shape,num_classes", CASES, ids=IDS)
def test_backward_gives_grads_to_all_parameters(name, width, input_shape, num_classes):
    model = _build(name, width, input_shape, num_classes)
    loss = nn.functional.cross_entropy(model(torch.randn(4, *input_shape)), torch.arange(4) % num_classes)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    # the pruning code expects prunable layers (conv/linear) to exist
    assert any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) for m in model.modules())


@pytest.mark.parametrize("name,width,input_shape,num_classes", CASES, ids=IDS)
def test_same_seed_same_weights(name, width, input_shape, num_classes):
    a = _build(name, width, input_shape, num_classes, seed=123).state_dict()
    b = _build(name, width, input_shape, num_classes, seed=123).state_dict()
    c = _build(name, width, input_shape, num_classes, seed=124).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_cnn1d_matches_mnist1d_reference():
    model = _build("cnn1d", 64, (1, 40), 10)
    conv = 64 * 1 * 5 + 64
    conv_mid = 64 * 64 * 3 + 64
    linear = 640 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == conv + 2 * conv_mid + linear == 31498
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 64, (5,), (1,), (2,)), (64, 64, (3,), (2,), (1,)), (64, 64, (3,), (2,), (1,))]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1
    assert (linears[0].in_features, linears[0].out_features) == (640, 10)
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) >= 1


def test_cnn1d_accepts_unsqueezed_input():
    model = _build("cnn1d", 8, (40,), 10)
    x = torch.randn(2, 40)
    assert torch.equal(model(x), model(x.unsqueeze(1)))


def test_mlp_and_lenet_layer_sizes():
    mlp = _build("mlp", 32, (1, 40), 10)
    assert [(m.in_features, m.out_features) for m in mlp.modules() if isinstance(m, nn.Linear)] == [
        (40, 32), (32, 32), (32, 10)]
    lenet = _build("lenet300", 7, (1, 28, 28), 10)  # width ignored
    assert [(m.in_features, m.out_features) for m in lenet.modules() if isinstance(m, nn.Linear)] == [
        (784, 300), (300, 100), (100, 10)]


def test_resnet18_cifar_stem_no_maxpool():
    model = _build("resnet18", 8, (3, 32, 32), 10)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.MaxPool1d)) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    stem = convs[0]
    assert (stem.in_channels, stem.out_channels) == (3, 8)
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.padding == (1, 1)
    # 1 stem + 8 blocks x 2 convs + 3 downsampling shortcuts
    assert len(convs) == 20
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 20
    assert {c.out_channels for c in convs} == {8, 16, 32, 64}
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 1 and linear[0].in_features == 64


def test_vgg16_structure():
    model = _build("vgg16", 8, (3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 1 and (linear[0].in_features, linear[0].out_features) == (64, 10)


@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_channels_last_gives_same_output(name):
    model = _build(name, 8, (3, 32, 32), 10).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
