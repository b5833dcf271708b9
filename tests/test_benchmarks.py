"""The benchmarks run at a tiny size and print their tables. No timing assertions: only content."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# benchmarks/ is a top-level folder beside sdd_opt/, not part of the installed package: `python -m
# pytest` finds it from the working directory, a bare `pytest` needs the repository root on the path.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import mask_overhead, precision, run_all, throughput  # noqa: E402
from benchmarks.common import parse_tables, table  # noqa: E402

# One torch thread, as conftest sets: the benchmarks would otherwise set their default of 2.
COMMON = ["--threads", "1", "--device", "cpu"]


def _positive(value: str) -> float:
    x = float(value)
    assert x > 0, value
    return x


def test_table_round_trips_through_the_parser():
    text = "title\n\n" + table(["a", "ratio"], [["x", 1.5], ["y", float("nan")]]) + "\n\nafter"
    assert parse_tables(text)[0] == [{"a": "x", "ratio": "1.500"}, {"a": "y", "ratio": "-"}]
    assert len(parse_tables(text + "\n" + table(["b"], [[1]]))) == 2


def test_throughput_on_1d_data_prints_speedups(tmp_path, capsys):
    throughput.main(["--data", "synthetic1d", "--width", "8", "--train-size", "256", "--epochs", "1", "--reps", "2",
                     "--data-dir", str(tmp_path), *COMMON])
    out = capsys.readouterr().out
    rows = parse_tables(out)[0]
    assert [r["variant"] for r in rows] == ["plain:fp32", "sdd:fp32", "sdd:bf16"]
    for r in rows:
        _positive(r["s/epoch (median)"])
        _positive(r["samples/s"])
        _positive(r["speed-up vs plain"])
    assert float(rows[0]["speed-up vs plain"]) == 1.0
    assert rows[0]["masks"] == "none (dense)" and rows[1]["masks"] == "80% kept"
    assert "TensorDataset" in rows[0]["pipeline"] and "train_model" in rows[1]["pipeline"]
    assert "target:" in out and "machine: CPU" in out


def test_throughput_on_images_uses_per_sample_transforms(tmp_path, capsys):
    throughput.main(["--data", "synthetic_images", "--model", "resnet18", "--width", "4", "--train-size", "64",
                     "--batch-size", "32", "--epochs", "1", "--reps", "1", "--variants", "plain:fp32,sdd:fp32",
                     "--data-dir", str(tmp_path), *COMMON])
    out = capsys.readouterr().out
    rows = parse_tables(out)[0]
    assert len(rows) == 2
    assert "PIL per-sample" in rows[0]["pipeline"] and "channels_last" in rows[1]["pipeline"]
    _positive(rows[1]["speed-up vs plain"])
    assert "+ crop/flip" in out


def test_throughput_rejects_an_unreadable_variant():
    with pytest.raises(SystemExit):
        throughput.Variant.parse("sdd:fp8")


def test_mask_overhead_compares_three_ways(tmp_path, capsys):
    mask_overhead.main(["--data", "synthetic1d", "--width", "8", "--steps", "3", "--reps", "2",
                        "--data-dir", str(tmp_path), *COMMON])
    out = capsys.readouterr().out
    rows = parse_tables(out)[0]
    assert [r["masking"] for r in rows] == ["unmasked", "in-place (sdd-opt)", "torch prune hooks"]
    for r in rows:
        _positive(r["ms/step (median)"])
        float(r["overhead % vs unmasked"])  # signed percentage
    assert float(rows[0]["overhead % vs unmasked"]) == 0.0
    assert "target: in-place overhead < 5%" in out and "MaskApplier call alone" in out


def test_precision_reports_steps_and_curves(tmp_path, capsys):
    precision.main(["--data", "synthetic1d", "--width", "8", "--reps", "1", "--step-variants", "fp32,bf16",
                    "--curve-variants", "fp32,bf16", "--seeds", "0,1", "--epochs", "1", "--levels", "1",
                    "--data-dir", str(tmp_path), *COMMON])
    out = capsys.readouterr().out
    steps, curves, levels = parse_tables(out)
    assert [r["variant"] for r in steps] == ["fp32", "bf16"]
    for r in steps:
        _positive(r["ms/step (median)"])
        _positive(r["speed-up vs fp32"])
    assert [r["variant"] for r in curves] == ["fp32", "bf16"]
    for r in curves:
        _positive(r["curve s (median)"])
        _positive(r["speed-up vs fp32"])
        assert float(r["max abs Δ mean acc"]) >= 0
    assert curves[0]["verdict"] == "reference"
    assert curves[1]["verdict"] in ("within seed noise", "OUTSIDE seed noise")
    assert [int(r["level"]) for r in levels] == [0, 1]
    assert {"fp32 mean", "bf16 mean", "fp32 std"} <= set(levels[0])


def test_run_all_prints_each_command_and_table(tmp_path, capsys):
    run_all.main(["--tiny", "--only", "mask_overhead", "--threads", "1", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "$ python -m benchmarks.mask_overhead" in out
    assert parse_tables(out)[0][0]["masking"] == "unmasked"
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nonsense"])


def test_contention_prints_idle_busy_and_ratio(tmp_path, capsys):
    from benchmarks import contention

    contention.main(["--variants", "default", "--epochs", "1", "--levels", "1", "--data-dir", str(tmp_path),
                     "--set", "data.name=synthetic1d", "--set", "model.width=8"])
    out = capsys.readouterr().out
    (row,) = parse_tables(out)[0]
    assert row["variant"] == "default (train.threads unset)"
    assert _positive(row["idle s/level"]) and _positive(row["busy s/level"]) and _positive(row["ratio"])
    assert "target: <= 2.5x for default (train.threads unset)" in out
    assert contention._variant("2:passive") == ("2 threads + OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"},
                                                ["train.threads=2"])
    with pytest.raises(SystemExit):
        contention._variant("two")
