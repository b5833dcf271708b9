"""benchmarks/storage_overhead.py and benchmarks/worker_scaling.py at a tiny size: they run real
worker processes and print their tables (no timing assertions: only content)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import storage_overhead, worker_scaling  # noqa: E402
from benchmarks.common import parse_tables  # noqa: E402

TINY = ["--data", "synthetic1d", "--epochs", "1", "--levels", "1", "--width", "8"]


def test_storage_overhead_prints_both_tables(tmp_path, capsys):
    storage_overhead.main(["--storages", "sqlite", "--workers", "1", "--trials", "1", "--latency-reps", "2",
                           "--data-dir", str(tmp_path / "data"), *TINY])
    out = capsys.readouterr().out
    e2e, latency = parse_tables(out)
    assert [r["storage"] for r in e2e] == ["sqlite"] and e2e[0]["trials"] == "1"
    assert float(e2e[0]["training s/trial"]) > 0 and float(e2e[0]["storage ms in trial"]) > 0
    assert float(e2e[0]["calls/trial"]) > 5
    assert "target: storage < 1%" in out
    assert [r["storage"] for r in latency] == ["sqlite"] and float(latency[0]["ms per trial (median)"]) > 0


@pytest.mark.slow  # four fresh worker processes
def test_worker_scaling_prints_rates_for_1_and_2_workers(tmp_path, capsys):
    worker_scaling.main(["--workers", "1,2", "--trials", "2", "--data-dir", str(tmp_path / "data"), *TINY])
    rows = parse_tables(capsys.readouterr().out)[0]
    assert [r["workers"] for r in rows] == ["1", "2"]
    assert [r["threads each"] for r in rows][1] == "1"
    assert float(rows[0]["speed-up (end to end)"]) == 1.0
    for r in rows:
        assert float(r["trials/hour (end to end)"]) > 0 and float(r["trials/hour (steady)"]) > 0
