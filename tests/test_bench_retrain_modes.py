"""benchmarks/retrain_modes.py: the demo's config per mode, the summary's SDD verdicts, a --tiny run in two workers."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import retrain_modes as rm  # noqa: E402
from benchmarks.common import parse_tables  # noqa: E402


def test_full_fidelity_is_the_demos_base_config_with_each_mode(tmp_path):
    args = rm._parse_args(["--root", str(tmp_path), "--device", "cpu"])
    assert args.mode_list == ["rewind", "finetune", "lr_rewind@12"] and args.seed_list == [0, 1, 2]
    cfgs = {m: rm.config(m, 2, args) for m in args.mode_list}
    for cfg in cfgs.values():
        assert (cfg.train.epochs, cfg.prune.rate, cfg.prune.n_levels, cfg.data.noise) == (40, 0.4, 7, 0.2)
        assert cfg.data.name == "mnist1d" and cfg.prune.collapse_floor == 0.5 and cfg.seed == 2
        assert cfg.train.threads == 1 and cfg.train.weight_decay == 0.0 and not cfg.distill.enabled
    assert [(c.prune.retrain, c.prune.rewind_to) for c in cfgs.values()] == \
        [("rewind", 0), ("finetune", 0), ("lr_rewind", 12)]
    assert rm.config("rewind", 0, rm._parse_args(["--epochs", "10", "--levels", "3"])).train.epochs == 10


def test_a_curve_summary_says_whether_sdd_appears_and_the_best_at_90_percent():
    def rows(accs):
        sp = [0.0, 0.4, 0.64, 0.784, 0.87, 0.922, 0.953, 0.972]
        return [{"level": i, "sparsity": s, "test_acc": a, "epochs": 40} for i, (s, a) in enumerate(zip(sp, accs))]

    sdd = rm.curve_summary(rows([0.75, 0.73, 0.71, 0.72, 0.76, 0.80, 0.79, 0.70]))
    assert sdd["sdd"] and sdd["gap"] == pytest.approx(0.09) and sdd["dip"] == 0.71 and sdd["peak"] == 0.80
    assert sdd["high"] == 0.80 and sdd["high_sparsity"] == 0.922 and sdd["epochs"] == 320
    flat = rm.curve_summary(rows([0.85, 0.85, 0.84, 0.83, 0.84, 0.82, 0.80, 0.70]))
    assert not flat["sdd"] and flat["gap"] < rm.SDD_GAP and flat["high"] == 0.82


def test_bad_modes_are_refused_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        rm.main(["--modes", "rewind,bogus", "--root", str(tmp_path)])
    assert exc.value.code == 2 and "unknown retrain mode 'bogus'" in capsys.readouterr().err
    assert rm.main(["--tiny", "--modes", "lr_rewind@5", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "prune.rewind_to" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_tiny_run_in_two_workers_writes_the_curves_and_the_summary_and_resumes(tmp_path, capsys):
    argv = ["--tiny", "--seeds", "0", "--root", str(tmp_path), "--device", "cpu"]
    assert rm.main(argv + ["--workers", "2"]) == 0
    out = capsys.readouterr().out
    with (tmp_path / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["mode"], r["level"]) for r in rows] == [(m, str(k)) for m in rm.TINY_MODES for k in range(3)]
    assert {r["retrain"] for r in rows} == {"rewind", "finetune", "lr_rewind"}
    per_curve, per_mode, mean = parse_tables((tmp_path / "summary.md").read_text())
    assert [r["mode"] for r in per_curve] == list(rm.TINY_MODES)
    assert {r["SDD (gap >= 0.05)"] for r in per_curve} <= {"yes", "no"}
    assert [r["epochs"] for r in per_curve] == ["6", "6", "4"]  # lr_rewind@1 retrains 1 of the 2 epochs
    assert [r["SDD seeds"][-2:] for r in per_mode] == ["/1"] * 3 and len(mean) == 3
    assert "REDUCED fidelity" in out
    before = (tmp_path / "curves.csv").read_text()
    assert rm.main(argv + ["--workers", "1"]) == 0  # again: every run directory is finished, nothing trains
    assert "reusing the finished run" in capsys.readouterr().out
    assert (tmp_path / "curves.csv").read_text() == before
