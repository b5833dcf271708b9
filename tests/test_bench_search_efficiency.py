"""benchmarks/search_efficiency.py: its HV bookkeeping on hand-made points, then the benchmark at --tiny size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# benchmarks/ sits beside sdd_opt/ and is not installed: a bare `pytest` needs the repository root on the path.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import search_efficiency as se  # noqa: E402
from benchmarks.common import parse_tables  # noqa: E402


def test_hv_history_is_the_front_area_after_each_trial():
    # (acc, sparsity): the second point dominates nothing new, the third extends the front.
    hist = se.hv_history([(0.8, 0.5), (0.7, 0.4), (0.6, 0.9)])
    assert hist[0] == pytest.approx(0.4)
    assert hist[1] == pytest.approx(0.4)
    assert hist[2] == pytest.approx(0.8 * 0.5 + 0.6 * 0.4)


def test_trials_to_reach_and_epoch_budgets():
    hist = [0.1, 0.3, 0.3, 0.5]
    assert se.trials_to_reach(hist, 0.3) == 2
    assert se.trials_to_reach(hist, 0.5) == 4
    assert se.trials_to_reach(hist, 0.51) is None
    spent = se.cumulative([10, 5, 5, 20])
    assert spent == [10, 15, 20, 40]
    assert se.hv_at_budget(hist, spent, 9) == 0.0
    assert se.hv_at_budget(hist, spent, 15) == 0.3
    assert se.hv_at_budget(hist, spent, 40) == 0.5


def test_checkpoints_end_at_the_last_trial():
    assert se.checkpoints(24) == [4, 8, 12, 16, 20, 24]
    assert se.checkpoints(3)[-1] == 3


def test_tiny_run_prints_consistent_tables(tmp_path, capsys):
    out = se.main(["--tiny", "--jobs", "1", "--n-trials", "3", "--seeds", "0,1", "--samplers", "nsga2,random",
                   "--data-dir", str(tmp_path / "data"), "--workdir", str(tmp_path / "work")])
    text = capsys.readouterr().out
    finals, by_k, by_epochs, reach = parse_tables(text)
    assert [r["sampler"] for r in finals] == ["nsga2", "random"]
    for res in out["results"]:
        assert len(res["points"]) == 3
        assert all(b >= a for a, b in zip(res["history"], res["history"][1:]))  # HV never shrinks
        assert res["final"] > 0
    for r in by_k:  # the median HV after k trials grows with k
        values = [float(v) for k, v in r.items() if k.startswith("k=")]
        assert values == sorted(values)
    # Random reaches its own final HV at the latest on its last trial.
    rand = next(r for r in reach if r["sampler"] == "random")
    assert all(int(k) <= 3 for k in rand["trials, per seed (vs same-seed random)"].split(" / "))
    assert (tmp_path / "work" / "nsga2-0" / "study.db").exists()


def test_bad_options_stop_with_a_message(capsys):
    with pytest.raises(SystemExit):
        se.main(["--samplers", "bogus"])
    assert "--samplers" in capsys.readouterr().err
