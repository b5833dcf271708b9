import subprocess
import sys

import numpy as np
import pytest
import torch

from sdd_opt.config import DataConfig
from sdd_opt.data import DATASETS, SHAPES, Dataset, load_data
from sdd_opt.data import mnist1d as m1d
from sdd_opt.errors import UserError


def test_registry_names():
    assert set(DATASETS) == {"mnist1d", "synthetic1d", "synthetic_images", "mnist", "fashionmnist", "cifar10", "cifar100"}


def test_shapes_known_without_loading_match_the_loaders(m1d_dir):
    assert set(SHAPES) == set(DATASETS)
    for name in ("mnist1d", "synthetic1d", "synthetic_images"):  # the offline ones; vision: torchvision's sizes
        d = load_data(DataConfig(name=name, data_dir=m1d_dir), seed=0)
        assert SHAPES[name] == (d.input_shape, d.num_classes)


def test_import_is_cheap():
    code = "import sys, sdd_opt.data; assert 'torchvision' not in sys.modules and 'mnist1d' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def m1d_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def test_mnist1d_load_and_cache(m1d_dir):
    cfg = DataConfig(name="mnist1d", noise=0.2, val_fraction=0.1, data_dir=m1d_dir)
    d = load_data(cfg, seed=0)
    assert d.input_shape == (1, 40) and d.num_classes == 10 and d.augment is False
    assert d.x_train.shape == (3600, 1, 40) and d.x_val.shape == (400, 1, 40) and d.x_test.shape == (1000, 1, 40)
    assert len(d.y_train) + len(d.y_val) == 4000 and len(d.y_test) == 1000
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert abs(d.x_test.mean()) < 0.1 and abs(d.x_test.std() - 1) < 0.1
    assert d.noise_info == {"kind": "symmetric", "rate": 0.2, "n_changed": 720, "n_train": 3600, "actual_rate": 0.2}
    assert int((d.y_train != d.y_train_clean).sum()) == 720
    assert torch.equal(d.y_val, _clean_val(d, cfg, m1d_dir))

    cache = m1d.cache_path(m1d_dir, m1d.ARGS)
    assert cache.is_file() and not list(cache.parent.glob("*.tmp"))
    again = load_data(cfg, seed=0)
    for name in ("x_train", "y_train", "y_train_clean", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(d, name), getattr(again, name)), name


def _clean_val(d, cfg, data_dir):
    # The clean labels of the val samples: recover them from the raw arrays by matching inputs.
    raw = m1d.load_arrays(data_dir)
    lookup = {row.tobytes(): y for row, y in zip(raw["x"], raw["y"])}
    return torch.tensor([lookup[row.numpy().tobytes()] for row in d.x_val[:, 0]])


def test_mnist1d_val_labels_noisy(m1d_dir):
    cfg = DataConfig(name="mnist1d", noise=0.3, val_fraction=0.2, val_labels="noisy", data_dir=m1d_dir)
    d = load_data(cfg, seed=1)
    clean = _clean_val(d, cfg, m1d_dir)
    assert int((d.y_val != clean).sum()) == int(0.3 * 800)


def test_mnist1d_train_size(m1d_dir):
    d = load_data(DataConfig(name="mnist1d", train_size=1000, val_fraction=0.1, data_dir=m1d_dir), seed=0)
    assert len(d.y_train) == 900 and len(d.y_val) == 100 and len(d.y_test) == 1000
    assert d.noise_info["n_train"] == 900 and d.noise_info["n_changed"] == 180
    with pytest.raises(UserError, match="train_size"):
        load_data(DataConfig(name="mnist1d", train_size=4001, data_dir=m1d_dir), seed=0)


def test_mnist1d_args_match_package_defaults():
    from mnist1d.data import get_dataset_args

    assert m1d.ARGS == get_dataset_args(as_dict=True)


def test_mnist1d_regenerates_bad_cache_and_keeps_global_rng(tmp_path):
    args = dict(m1d.ARGS, num_samples=100)
    path = m1d.cache_path(tmp_path, args)
    path.write_bytes(b"half a file")
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    arrays = m1d.load_arrays(tmp_path, args)
    assert np.random.rand() == expected_next
    assert arrays["x"].shape == (80, 40) and arrays["x_test"].shape == (20, 40)
    with np.load(path) as f:
        assert np.array_equal(f["x"], arrays["x"])


def cfg1d(**kw):
    return DataConfig(name="synthetic1d", **kw)


def test_split_sizes_and_disjoint():
    d = load_data(cfg1d(val_fraction=0.25, noise=0.0), seed=0)
    assert len(d.y_train) == 900 and len(d.y_val) == 300 and len(d.y_test) == 300
    rows = {r.numpy().tobytes() for r in torch.cat([d.x_train, d.x_val])[:, 0]}
    assert len(rows) == 1200  # every training sample lands exactly once
    assert d.input_shape == (1, 40) and d.noise_info["n_changed"] == 0


def test_seed_controls_split_and_noise_independently():
    a = load_data(cfg1d(noise=0.2), seed=0)
    b = load_data(cfg1d(noise=0.2), seed=0)
    c = load_data(cfg1d(noise=0.2), seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    # Changing the noise does not move the split.
    clean = load_data(cfg1d(noise=0.0), seed=0)
    assert torch.equal(clean.x_train, a.x_train) and torch.equal(clean.y_train, a.y_train_clean)


def test_val_fraction_zero_and_noise_kinds():
    d = load_data(cfg1d(val_fraction=0.0, noise=0.3, noise_kind="pairflip"), seed=0)
    assert len(d.y_val) == 0 and len(d.y_train) == 1200
    changed = d.y_train != d.y_train_clean
    assert torch.equal(d.y_train[changed], (d.y_train_clean[changed] + 1) % 10)
    assert d.noise_info["kind"] == "pairflip" and d.noise_info["n_changed"] == 360


def test_user_errors():
    with pytest.raises(UserError, match="augment"):
        load_data(cfg1d(augment=True), seed=0)
    with pytest.raises(UserError, match="asymmetric"):
        from unittest import mock

        from sdd_opt.data import RawData
        raw = RawData(torch.zeros(50, 1, 4), torch.arange(50) % 5, torch.zeros(5, 1, 4), torch.arange(5), 5, False)
        with mock.patch.dict(DATASETS, {"synthetic1d": lambda _: raw}):
            load_data(cfg1d(noise_kind="asymmetric"), seed=0)


def test_to_moves_every_tensor():
    d = load_data(cfg1d(), seed=0).to("meta")
    assert isinstance(d, Dataset)
    tensors = [v for v in vars(d).values() if isinstance(v, torch.Tensor)]
    assert len(tensors) == 7 and all(t.device.type == "meta" for t in tensors)
    assert d.noise_info["n_train"] == 1080


def test_synthetic1d_learnable():
    d = load_data(cfg1d(noise=0.0, val_fraction=0.0), seed=0)
    x, xt = d.x_train.flatten(1), d.x_test.flatten(1)
    onehot = torch.nn.functional.one_hot(d.y_train, 10).float()
    w = torch.linalg.lstsq(torch.cat([x, torch.ones(len(x), 1)], 1), onehot).solution
    pred = (torch.cat([xt, torch.ones(len(xt), 1)], 1) @ w).argmax(1)
    assert (pred == d.y_test).float().mean() > 0.7
