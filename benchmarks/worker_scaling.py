"""Trials per hour with 1 and 2 local workers on this machine (``study run --jobs J``'s split).

Each run creates a fresh copy of a small synthetic study and starts J worker processes on it
(``study worker`` loops, as ``--jobs J`` does: the cores split evenly, ``cores // J`` torch
threads each) until the study holds ``--trials`` complete trials. Two rates per run:

* ``end to end``: trials / wall time from starting the processes to the last one's exit
  (process start-up included: what a short study sees);
* ``steady``: trials / (last trial's end - first trial's start), from the trials' own times
  (what a long study sees).

Runs alternate (1, 2, 2, 1, ... workers) over ``--reps`` rounds; the table gives medians and the
speed-up over one worker.

    python -m benchmarks.worker_scaling                          # SQLite, 1 and 2 workers
    python -m benchmarks.worker_scaling --workers 1,2,4 --trials 12
    python -m benchmarks.worker_scaling --storage postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks import common
from benchmarks.storage_overhead import (
    _cpu,
    add_run_args,
    collect,
    common_cores,
    create_study,
    delete_study,
    reachable,
    spawn_workers,
    study_dict,
)


def trial_span(url: str, name: str) -> tuple[int, float]:
    """(complete trials, seconds from the first start to the last completion)."""
    import optuna
    from optuna.trial import TrialState

    storage = optuna.storages.RDBStorage(url)
    try:
        trials = [t for t in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
                  if t.state == TrialState.COMPLETE]
    finally:
        storage.engine.dispose()
    if not trials:
        return 0, float("nan")
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return len(trials), (end - start).total_seconds()


def one_run(args, url: str, n_workers: int, tmp: Path) -> dict:
    threads = args.worker_threads or max(1, common_cores() // n_workers)
    name = f"scale-{uuid.uuid4().hex[:10]}"
    create_study(url, study_dict(name, args.data_dir, epochs=args.epochs, levels=args.levels, width=args.width,
                                 train_size=args.train_size, data=args.data, batch_size=args.batch_size), tmp)
    try:
        t0 = time.perf_counter()
        results = collect(spawn_workers(url, name, n_workers, args.trials, tmp, threads=threads,
                                        heartbeat=args.heartbeat, tag=name))
        wall = time.perf_counter() - t0
        n, span = trial_span(url, name)
    finally:
        delete_study(url, name)
    return {"threads": threads, "trials": n, "wall": wall, "span": span,
            "ran": [r["ran"] for r in results], "training": sum(r["training_s"] for r in results) / max(n, 1)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.worker_scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", default=None, metavar="URL", help="database (default: a fresh SQLite file)")
    add_run_args(p, trials=6, epochs=10, levels=6, worker_threads=0)
    p.add_argument("--reps", type=int, default=1, help="rounds over the worker counts (alternating order)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    import warnings

    warnings.filterwarnings("ignore", message=r".*experimental.*")
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sdd-scale-") as tmp_s:
        tmp = Path(tmp_s)
        url = args.storage or f"sqlite:///{tmp / 'scale.db'}"
        if not url.startswith("sqlite"):
            why = reachable(url)
            if why:
                raise SystemExit(f"error: --storage not reachable ({why})")
        label = "sqlite" if url.startswith("sqlite") else url.split("+")[0].split(":")[0]
        print(f"## worker scaling: {args.data}, cnn1d width {args.width}, {args.epochs} epochs x {args.levels + 1} "
              "levels, "
              f"{args.trials} trials per run, storage {label}")
        print(f"machine: {common.machine(_cpu(), common_cores())}")
        print(flush=True)
        runs: dict[int, list[dict]] = {w: [] for w in args.workers}
        for rep in range(args.reps):
            order = args.workers if rep % 2 == 0 else list(reversed(args.workers))
            for w in order:
                r = one_run(args, url, w, tmp)
                runs[w].append(r)
                print(f"  {w} worker(s): {r['trials']} trials in {r['wall']:.1f}s (trials run per worker {r['ran']})",
                      flush=True)
        rows = []
        base_e2e = base_steady = None
        for w in args.workers:
            rs = runs[w]
            e2e = common.median(r["trials"] / r["wall"] * 3600 for r in rs)
            steady = common.median(r["trials"] / r["span"] * 3600 for r in rs)
            base_e2e = base_e2e or e2e
            base_steady = base_steady or steady
            rows.append([w, rs[0]["threads"], common.median(r["training"] for r in rs),
                         common.median(r["wall"] for r in rs),
                         e2e, steady, e2e / base_e2e, steady / base_steady])
        headers = ["workers", "threads each", "training s/trial", "wall s", "trials/hour (end to end)",
                   "trials/hour (steady)", "speed-up (end to end)", "speed-up (steady)"]
        print()
        print(common.table(headers, rows))
        sys.stdout.flush()
        return {"rows": rows, "headers": headers}


if __name__ == "__main__":
    main()
