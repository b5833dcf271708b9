"""benchmarks.curve_table: the grid covers the search space, each point is a distinct run, and the
table is rebuilt from run directories while keeping curves it already holds."""

import json

import pytest

from benchmarks import curve_table as ct
from sdd_opt.config import load_config
from sdd_opt.rundir import result_hash, write_curve


def test_grid_is_seed_major_and_every_point_is_a_distinct_run():
    points = ct.grid((0, 1))
    per_seed = (len(ct.L2_VALUES) + len(ct.TEMPERATURES) * len(ct.ALPHAS) * len(ct.TEACHER_L2)) * len(ct.RATES)
    assert len(points) == 2 * per_seed
    assert [p["seed"] for p in points[:39]] == [0] * 39  # a partial table still covers the grid
    hashes = {result_hash(load_config(ct.BASE, ct.overrides(p))) for p in points}
    assert len(hashes) == len(points)
    # the grid spans the search space of studies/mnist1d_search.yaml
    assert {p["train.weight_decay"] for p in points if not p["distill.enabled"]} >= {0.0, 1e-4, 1e-2}
    assert {p["prune.rate"] for p in points} == {0.2, 0.3, 0.4}
    assert any(p["distill.enabled"] for p in points)


def test_command_reruns_the_same_config():
    point = ct.grid((1,))[7]
    cmd = ct.command(point)
    assert cmd.startswith(f"sdd-opt train --config {ct.BASE} ")
    sets = [tok for tok in cmd.split() if "=" in tok]
    cfg = load_config(ct.BASE, sets)
    assert cfg.seed == 1 and cfg.prune.target_sparsity == 0.98 and cfg.train.epochs == 40
    assert cfg.prune.rate == point["prune.rate"]


def _fake_run(root, point, accs):
    d = ct.run_dir(root, point)
    d.mkdir(parents=True)
    rows = [{"level": i, "sparsity": 1 - 0.7 ** i, "train_acc": 0.9, "val_acc": a, "test_acc": a - 0.01,
             "loss": 0.1, "epochs": 40, "seconds": 1.0} for i, a in enumerate(accs)]
    write_curve(rows, d / "curve.csv")
    (d / "metrics.json").write_text(json.dumps({"levels_done": len(rows), "levels_planned": len(rows)}))


def test_table_rows_from_finished_runs_and_kept_without_them(tmp_path):
    points = ct.grid((0,))[:3]
    _fake_run(tmp_path, points[0], [0.8, 0.7, 0.75])
    unfinished = ct.run_dir(tmp_path, points[1])
    unfinished.mkdir(parents=True)
    (unfinished / "metrics.json").write_text(json.dumps({"levels_done": 1, "levels_planned": 12}))
    out = tmp_path / "table.csv"
    assert ct.write_table(tmp_path, points, out) == 1
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == [*ct.KEYS, "seed", *ct.LEVEL_COLUMNS]
    assert len(lines) == 4 and lines[1].split(",")[-6:] == ["0", "0.000000", "0.9000", "0.8000", "0.7900", "40"]
    # the run directories are gone (a fresh machine): the table keeps the curve it holds
    import shutil

    shutil.rmtree(tmp_path / "runs")
    assert ct.write_table(tmp_path, points, out) == 1
    assert out.read_text().splitlines() == lines
    assert set(ct.read_table(out)) == {ct._key(points[0])}


def test_foreign_csv_is_refused(tmp_path):
    out = tmp_path / "t.csv"
    out.write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit, match="not a curve table"):
        ct.read_table(out)


def _machine() -> tuple[str, str]:
    import hashlib

    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        model = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
        flags = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("flags"))
    except (OSError, StopIteration):
        return ("unknown", "")
    return model, hashlib.sha256(flags.encode()).hexdigest()[:16]


# How far a re-run on another CPU may land from the table: float kernels differ between CPUs and 40
# epochs of SGD amplify it. Measured on an Intel Xeon against the table (levels 0-1): up to 0.0175 on
# the curve tested here, 0.026 on a no-remedy curve; two training seeds of one grid point differ by a
# median 0.0135 (test) / 0.0175 (val), at most 0.05 / 0.07, at levels 0-1.
OTHER_CPU_TOLERANCE = 0.03


def test_the_committed_table_covers_the_grid_and_reruns_to_the_same_levels(tmp_path):
    """Every (grid point, seed) of benchmarks/data/mnist1d_curves.csv is there, and a group re-runs with
    the engine of this tree (levels 0 and 1 of one curve: ~25 s at one thread) to the same 4-digit
    numbers on the machine kind that trained it, and within seed noise on any other CPU."""
    from pathlib import Path

    from sdd_opt.imp import run_curve

    path = Path(ct.__file__).parent / "data" / "mnist1d_curves.csv"
    groups = ct.read_table(path)
    points = ct.grid()
    assert {ct._key(p) for p in points} == set(groups)
    for rows in groups.values():  # each curve runs to the table's 98 % target
        assert float(rows[-1][len(ct.KEYS) + 2]) >= 0.98 and [int(r[len(ct.KEYS) + 1]) for r in rows] == list(range(len(rows)))
    machine = json.loads((path.parent / "mnist1d_curves.machine.json").read_text())
    same_cpu = _machine() == (machine["cpu"], machine["cpu_flags_sha256"])
    point = next(p for p in points if p["seed"] == 1 and p.get("distill.temperature") == 10.0
                 and p.get("distill.alpha") == 0.9 and p.get("distill.teacher.weight_decay") == 5e-3
                 and p["prune.rate"] == 0.4)  # one of the curves trained on that machine
    cfg = load_config(ct.BASE, ct.overrides(point) + ["prune.target_sparsity=null", "prune.levels=1",
                                                      f"data.data_dir={tmp_path / 'data'}"])
    res = run_curve(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    table = groups[ct._key(point)][:2]
    cols = list(ct.LEVEL_COLUMNS)
    assert len(res.rows) == len(table) == 2
    for got, row in zip(res.rows, table):
        want = dict(zip(cols, row[len(ct.KEYS) + 1:]))
        assert f"{got['sparsity']:.6f}" == want["sparsity"]  # the pruning itself is exact everywhere
        for c in ("train_acc", "val_acc", "test_acc"):
            if same_cpu:
                assert f"{got[c]:.4f}" == want[c], (c, got, want)
            else:
                assert abs(got[c] - float(want[c])) <= OTHER_CPU_TOLERANCE, (c, got[c], want[c], machine["cpu"])
