import numpy as np
import pytest
import torch
import torchvision

from sdd_opt.config import DataConfig
from sdd_opt.data import load_data
from sdd_opt.errors import UserError


def test_download_failure_is_a_user_error(monkeypatch, tmp_path):
    class Offline:
        def __init__(self, root, train, download):
            raise RuntimeError("Error downloading cifar-10-python.tar.gz:\n<urlopen error [Errno -3] name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(UserError) as err:
        load_data(DataConfig(name="cifar10", data_dir=str(tmp_path)), seed=0)
    msg = str(err.value)
    assert msg.startswith(f"could not download cifar10 into {tmp_path}: Error downloading")
    assert "run with network" in msg and "\n" not in msg


@pytest.mark.parametrize("name,cls,shape,classes", [
    ("cifar100", "CIFAR100", (3, 32, 32), 100),
    ("fashionmnist", "FashionMNIST", (1, 28, 28), 10),
])
def test_conversion_with_fake_files(monkeypatch, name, cls, shape, classes):
    h, w = shape[1:]

    class Fake:
        def __init__(self, root, train, download):
            n = 60 if train else 20
            rng = np.random.default_rng(0)
            img = (n, h, w, 3) if shape[0] == 3 else (n, h, w)
            self.data = rng.integers(0, 256, img, dtype=np.uint8)
            self.targets = list(rng.integers(0, classes, n))
            if shape[0] == 1:  # torchvision's MNIST keeps tensors
                self.data, self.targets = torch.from_numpy(self.data), torch.tensor(self.targets)

    monkeypatch.setattr(torchvision.datasets, cls, Fake)
    d = load_data(DataConfig(name=name, val_fraction=0.5, noise=0.1), seed=0)
    assert d.input_shape == shape and d.num_classes == classes
    assert d.x_train.shape == (30, *shape) and d.x_test.shape == (20, *shape)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert -3 < d.x_test.min() < -0.3 and 1 < d.x_test.max() < 4  # normalized, not raw bytes
    assert d.augment is name.startswith("cifar")
    assert load_data(DataConfig(name=name, augment=False), seed=0).augment is False
