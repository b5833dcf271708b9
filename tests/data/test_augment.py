import torch

from sdd_opt.config import DataConfig
from sdd_opt.data import load_data
from sdd_opt.data.augment import augment_batch


def images():
    return load_data(DataConfig(name="synthetic_images", noise=0.0), seed=0).x_train[:256]


def reference(x, rows, cols, flip):
    """Slow per-sample version of the same crop/flip, for comparison."""
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    out = []
    for img, i, j, f in zip(padded, rows, cols, flip):
        crop = img[:, i:i + x.shape[2], j:j + x.shape[3]]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out)


def test_shape_device_dtype_preserved():
    x = images()
    y = augment_batch(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device


def test_deterministic_with_same_generator_and_random_otherwise():
    x = images()
    a = augment_batch(x, torch.Generator().manual_seed(3))
    b = augment_batch(x, torch.Generator().manual_seed(3))
    c = augment_batch(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    same = (a == x).flatten(1).all(1)
    assert 0 < same.sum() < len(x) // 4  # most images moved, P(identity) = 1/81 * 1/2 each


def test_matches_per_sample_crop_and_flip():
    x = images()[:64]
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    out = augment_batch(x, g)
    g.set_state(state)
    off = torch.randint(0, 9, (2, len(x)), generator=g)
    flip = torch.rand(len(x), generator=g) < 0.5
    assert flip.any() and (~flip).any() and (off != 4).any()
    assert torch.equal(out, reference(x, off[0].tolist(), off[1].tolist(), flip.tolist()))


def test_zero_padding_enters_at_edges():
    x = torch.ones(200, 1, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert (out == 0).any() and (out == 1).any()
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_synthetic_images_shape_and_labels():
    d = load_data(DataConfig(name="synthetic_images", noise=0.0, val_fraction=0.0), seed=0)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10
    assert len(d.y_train) == 600 and len(d.y_test) == 200
    assert d.augment is False
    assert set(d.y_train.unique().tolist()) == set(range(10))
    again = load_data(DataConfig(name="synthetic_images", noise=0.0, val_fraction=0.0), seed=5)
    assert torch.equal(d.x_test, again.x_test)  # generation does not depend on the run seed


def test_synthetic_images_learnable_by_colour_means():
    # Nearest class-mean on the per-channel averages already separates the classes well.
    d = load_data(DataConfig(name="synthetic_images", noise=0.0, val_fraction=0.0), seed=0)
    def feat(x):
        return x.mean((2, 3))
    means = torch.stack([feat(d.x_train[d.y_train == c]).mean(0) for c in range(10)])
    pred = torch.cdist(feat(d.x_test), means).argmin(1)
    assert (pred == d.y_test).float().mean() > 0.6
