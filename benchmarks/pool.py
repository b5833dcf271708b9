"""Curves trained in worker processes (the curve table, the retrain-mode comparison): one place for
the pool, its spawn context (CUDA-safe) and what Ctrl-C leaves behind (finished curves, resumable)."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence


def run_jobs(work: Callable[[Any], Any], jobs: Sequence[Any], workers: int,
             on_result: Callable[[Any], None]) -> int:
    """Run ``work`` over ``jobs`` in ``workers`` processes (one torch thread each; in this process
    when 1), calling ``on_result`` as each finishes; 130 when interrupted, else 0."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if workers == 1 or len(jobs) <= 1:
        results, pool = map(work, jobs), None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, len(jobs)), maxtasksperchild=1)
        results = pool.imap_unordered(work, jobs)
    try:
        for result in results:
            on_result(result)
    except KeyboardInterrupt:
        print("interrupted: finished curves are kept; run the same command to resume", file=sys.stderr)
        return 130
    finally:
        if pool is not None:
            pool.terminate()
    return 0
