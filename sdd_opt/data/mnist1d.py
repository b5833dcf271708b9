"""MNIST-1D (Greydanus 2020), generated offline and cached.

``mnist1d.data.get_dataset`` would download a pickle; we call its generator instead (same default
args, its own seed 42) and keep the arrays as an .npz keyed by the args, so later loads take
milliseconds and never need the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from sdd_opt.errors import UserError

# mnist1d.data.get_dataset_args() defaults (a test checks they still match). Kept here so that a cache
# hit needs no `import mnist1d`, which costs ~1 s (it pulls in matplotlib and requests).
ARGS = {"num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60], "scale_coeff": 0.4,
        "max_translation": 48, "corr_noise_scale": 0.25, "iid_noise_scale": 2e-2, "shear_scale": 0.75,
        "shuffle_seq": False, "final_seq_length": 40, "seed": 42,
        "url": "https://github.com/greydanus/mnist1d/raw/master/mnist1d_data.pkl"}


def _generate(args: dict) -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset reseeds the global numpy/random RNGs; keep the caller's streams untouched.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        ds = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": ds["x"].astype(np.float32), "y": ds["y"].astype(np.int64),
            "x_test": ds["x_test"].astype(np.float32), "y_test": ds["y_test"].astype(np.int64)}


def cache_path(data_dir: str | Path, args: dict) -> Path:
    key = hashlib.sha256(json.dumps({k: v for k, v in args.items() if k != "url"}, sort_keys=True).encode())
    return Path(data_dir) / f"mnist1d-{key.hexdigest()[:12]}.npz"


def load_arrays(data_dir: str | Path, args: dict | None = None) -> dict[str, np.ndarray]:
    args = ARGS if args is None else args
    path = cache_path(data_dir, args)
    try:
        with np.load(path) as f:
            return {k: f[k] for k in ("x", "y", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # missing or unreadable cache: regenerate
    arrays = _generate(args)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Temp file + rename: concurrent workers never see a half-written cache.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UserError(f"could not write the mnist1d cache into {data_dir}: {exc}") from None
    return arrays


def load(data_dir: str):
    from sdd_opt.data import RawData

    a = load_arrays(data_dir)
    return RawData(torch.from_numpy(a["x"]).unsqueeze(1), torch.from_numpy(a["y"]),
                   torch.from_numpy(a["x_test"]).unsqueeze(1), torch.from_numpy(a["y_test"]),
                   num_classes=10, augment_default=False)
