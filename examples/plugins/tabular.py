"""A user's own model and dataset for sdd-opt: a 2-layer MLP on a synthetic tabular problem.

Nothing here imports sdd-opt: a builder and a loader are plain functions (docs/plugins.md).
The study file names them by import path, ``tabular:mlp`` and ``tabular:blobs``; sdd-opt finds
this file on PYTHONPATH or in the current directory.
"""

import math

import torch
from torch import nn


def mlp(width, input_shape, num_classes, dropout=0.0):
    """Builder: ``width`` hidden units, inputs of ``input_shape``, ``num_classes`` logits.

    ``dropout`` is an extra key of this builder: ``model: {name: tabular:mlp, dropout: 0.1}``.
    """
    features = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(features, width), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(width, num_classes),
    )


def blobs(data_dir, n_train=600, n_test=300, features=16, classes=4, seed=0):
    """Loader: Gaussian clusters, one per class, in ``features`` dimensions (``data_dir`` unused).

    Returns train and test splits and the number of classes; sdd-opt holds out the validation
    split and corrupts the training labels itself (data.val_fraction, data.noise).
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=g) * 0.5

    def split(n):
        y = torch.randint(0, classes, (n,), generator=g)
        return centres[y] + torch.randn(n, features, generator=g), y

    return {"train": split(n_train), "test": split(n_test), "num_classes": classes}
