"""benchmarks/weights_disk.py: a level checkpoint's size as measured is what run_curve writes, and
the replayed count of front levels matches the study's front."""

from pathlib import Path

from benchmarks.weights_disk import checkpoint_bytes, main, replay_front
from sdd_opt.imp import run_curve

ROOT = Path(__file__).resolve().parents[1]


def test_checkpoint_bytes_is_the_size_of_a_written_level_checkpoint(tiny_cfg, tmp_path):
    run_curve(tiny_cfg, tmp_path / "run", progress=False, log=lambda m: None)
    written = (tmp_path / "run" / "checkpoints" / "level_1.pt").stat().st_size
    measured, weights = checkpoint_bytes(tiny_cfg)
    assert abs(measured - written) <= 1024 and weights > 0  # the zip entries are named after the file


def test_replayed_default_study_keeps_far_fewer_levels_than_it_trains(capsys):
    r = replay_front(ROOT / "studies/mnist1d_search.yaml", ROOT / "benchmarks/data/mnist1d_curves.csv", 4)
    assert r["trials"] == 4 and 1 <= r["front"] <= r["uploaded"] < r["levels"]
    main(["--n-trials", "4"])  # the documented command, on 4 trials
    out = capsys.readouterr().out
    assert "KiB per level checkpoint" in out and "100 trials x 25 levels = 2500 levels" in out
