"""The CUDA path of the training core: skipped here (no GPU), run on a GPU machine with
`python -m pytest tests/test_cuda.py` (docs/performance.md, "GPU", has the figures)."""

import pytest
import torch

from sdd_opt.checkpoints import load_checkpoint
from sdd_opt.config import load_config
from sdd_opt.imp import run_curve
from sdd_opt.rundir import read_curve

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
quiet = dict(progress=False, log=lambda *_: None)


def _cfg(tiny_overrides, *extra):
    return load_config(None, [*tiny_overrides, "train.device=cuda", *extra])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_cuda_curve_keeps_its_masks_and_loads_on_the_cpu(tiny_overrides, tmp_path, precision):
    run_curve(_cfg(tiny_overrides, f"train.precision={precision}"), tmp_path / "run", **quiet)
    rows = read_curve(tmp_path / "run" / "curve.csv")
    assert [r["level"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["sparsity"] == pytest.approx(1 - 0.8 ** r["level"], abs=1e-3)
        assert 0 <= r["test_acc"] <= 1
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "level_2.pt")  # weights_only, CPU map
    for name, mask in ckpt["masks"].items():
        w = ckpt["state_dict"][name]
        assert w.device.type == "cpu"
        assert torch.all(w[mask == 0] == 0), name


def test_a_cuda_run_resumes_from_its_last_level(tiny_overrides, tmp_path):
    cfg = _cfg(tiny_overrides)

    class Stop(Exception):
        pass

    def stop_after_level_1(row):
        if row["level"] == 1:
            raise Stop

    with pytest.raises(Stop):
        run_curve(cfg, tmp_path / "run", on_level=stop_after_level_1, **quiet)
    res = run_curve(cfg, tmp_path / "run", resume=True, **quiet)
    assert [r["level"] for r in res.rows] == [0, 1, 2]


def test_cuda_and_cpu_curves_agree_within_seed_noise(tiny_overrides, tmp_path):
    """Same seed on both devices: kernels differ, so not bit-equal, but close on a tiny run."""
    gpu = run_curve(_cfg(tiny_overrides), tmp_path / "gpu", **quiet).rows
    cpu = run_curve(load_config(None, [*tiny_overrides, "train.device=cpu"]), tmp_path / "cpu", **quiet).rows
    assert len(gpu) == len(cpu)
    for g, c in zip(gpu, cpu):
        assert g["sparsity"] == pytest.approx(c["sparsity"], abs=1e-6)
        assert abs(g["test_acc"] - c["test_acc"]) <= 0.15
