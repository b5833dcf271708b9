"""What the study storage costs a trial: seconds in Optuna storage calls vs seconds of training.

Real ``study worker`` loops (``sdd_opt.study.runner.work`` with the real objective) run a study
shaped like the quick study (mnist1d_quick) (MNIST-1D, cnn1d width 64, 20 epochs per level; 11 levels) to its
budget, as separate processes, on each storage:

* ``sqlite``: a local file (WAL, busy timeout), the default storage;
* ``postgresql``: a server database, direct connections (``--postgres URL``);
* ``grpc -> postgresql``: the same database behind ``sdd-opt storage serve`` (the gRPC proxy);
* ``mysql``: only with ``--mysql URL``.

with 1 and 2 workers. Each worker times every call on its study's storage object from the
trial loop's thread (asking, every recorded level, the artifacts' records, telling, the budget
checks between trials) and the time inside ``run_curve`` (training and evaluating the levels).
The heartbeat thread's calls run beside the training and are counted apart. The table gives,
per trial, storage seconds and their share of the training time. Target: < 1 %.

A second table times the storage calls of one trial on their own (create, 12 attribute writes,
tell, read all trials), the contenders alternating in one process: direct connections vs the
gRPC proxy, and the database connections each way holds.

    python -m benchmarks.storage_overhead                       # sqlite + postgresql + grpc, 1 and 2 workers
    python -m benchmarks.storage_overhead --data synthetic1d --width 16 --epochs 4 --levels 4   # quick
    python -m benchmarks.storage_overhead --mysql mysql+pymysql://root@127.0.0.1:3306/test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

from benchmarks import common

TARGET_PCT = 1.0
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# --- the study the workers run -------------------------------------------------------------------

def study_dict(name: str, data_dir: str, *, epochs: int, levels: int, width: int, train_size: Optional[int],
               data: str = "synthetic1d", batch_size: int = 128) -> dict:
    """The benchmark's study: by default shaped like the quick study (mnist1d_quick) (studies/mnist1d_quick.yaml):
    MNIST-1D, cnn1d width 64, 20 epochs per level, rewinding IMP."""
    d = {"name": data, "data_dir": data_dir, "noise": 0.2}
    if train_size:
        d["train_size"] = train_size
    return {
        "name": name,
        "base": {
            "data": d,
            "model": {"name": "cnn1d", "width": width},
            "train": {"epochs": epochs, "batch_size": batch_size},
            "prune": {"levels": levels, "rate": 0.3},
        },
        "search_space": {
            "train.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "zero": True},
            "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "step": 0.05},
        },
        "sampler": {"name": "random", "seed": 0},
        "select": {"rule": "best"},
    }


def create_study(url: str, spec_dict: dict, tmp: Path) -> None:
    import yaml

    from sdd_opt.study.runner import create_or_resume
    from sdd_opt.study.spec import load_study_spec
    from sdd_opt.study.storage import StorageSettings, open_storage

    path = tmp / f"{spec_dict['name']}.yaml"
    path.write_text(yaml.safe_dump(spec_dict))
    spec = load_study_spec(str(path), [])
    storage = open_storage(url, StorageSettings(heartbeat_interval=None, log=lambda m: None))
    create_or_resume(spec, storage, url)
    _dispose(storage)


def delete_study(url: str, name: str) -> None:
    import optuna

    if url.startswith("grpc://"):
        return
    storage = optuna.storages.RDBStorage(url)
    try:
        with contextlib.suppress(KeyError):  # already gone
            optuna.delete_study(study_name=name, storage=storage)
    finally:
        storage.engine.dispose()


def _dispose(storage) -> None:
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def reachable(url: str) -> Optional[str]:
    """None when the database answers, else why not."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:120]


# --- one worker process --------------------------------------------------------------------------

class CallTimer:
    """Times the calls made on one storage object, per thread (outermost calls only)."""

    def __init__(self, storage):
        self.by_thread: dict[int, list] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        from sdd_opt.study.storage.faults import RDB_METHODS  # the calls that reach the database

        for name in RDB_METHODS:
            fn = getattr(storage, name, None)
            if fn is not None:
                setattr(storage, name, self._wrap(fn))

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            if getattr(self._local, "busy", False):
                return fn(*args, **kwargs)
            self._local.busy = True
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self._local.busy = False
                with self._lock:
                    e = self.by_thread.setdefault(threading.get_ident(), [0, 0.0])
                    e[0] += 1
                    e[1] += dt

        return timed


def run_worker(args) -> None:
    """``--worker``: join the study, run trials to the budget, write what was measured as JSON."""
    import warnings

    import torch

    warnings.simplefilter("ignore")

    from sdd_opt.imp import run_curve
    from sdd_opt.study._optuna_compat import storage_of
    from sdd_opt.study.objective import Objective
    from sdd_opt.study.runner import load_stored, work
    from sdd_opt.study.storage import StorageSettings, open_storage

    torch.set_num_threads(args.threads)
    storage = open_storage(args.storage, StorageSettings(heartbeat_interval=args.heartbeat,
                                                         grace_period=args.heartbeat * 2,
                                                         log=lambda m: print(m, file=sys.stderr)))
    study, spec = load_stored(args.worker, storage)
    timer = CallTimer(storage_of(study))
    training = [0.0]

    def timed_run_curve(*a, **kw):
        t0 = time.perf_counter()
        try:
            return run_curve(*a, **kw)
        finally:
            training[0] += time.perf_counter() - t0

    main_id = threading.get_ident()
    in_trials = [0, 0.0, 0.0]  # storage calls and seconds inside study.optimize (one trial each), trial wall time
    optimize = study.optimize

    def timed_optimize(*a, **kw):
        c0, s0 = timer.by_thread.get(main_id, [0, 0.0])
        t0 = time.perf_counter()
        try:
            return optimize(*a, **kw)
        finally:
            c1, s1 = timer.by_thread.get(main_id, [0, 0.0])
            in_trials[0] += c1 - c0
            in_trials[1] += s1 - s0
            in_trials[2] += time.perf_counter() - t0

    study.optimize = timed_optimize
    obj = Objective(spec, Path(args.artifacts), threads=args.threads, log=lambda m: None, run_curve=timed_run_curve)
    t0 = time.perf_counter()
    res = work(study, obj, n_trials=args.n_trials, log=lambda m: None)
    wall = time.perf_counter() - t0
    main_calls, main_s = timer.by_thread.get(main_id, [0, 0.0])
    other = [v for k, v in timer.by_thread.items() if k != main_id]
    from sdd_opt.study.storage.faults import retrier_of

    r = retrier_of(storage_of(study))
    out = {"ran": res.ran, "completed": res.completed, "training_s": training[0], "wall_s": wall,
           "trial_s": in_trials[2], "storage_s": main_s, "storage_calls": main_calls,
           "trial_storage_s": in_trials[1], "trial_storage_calls": in_trials[0],
           "heartbeat_calls": sum(v[0] for v in other), "heartbeat_s": sum(v[1] for v in other),
           "retries": r.stats.retries if r else {}}
    Path(args.out).write_text(json.dumps(out))


def spawn_workers(url: str, name: str, n_workers: int, n_trials: int, tmp: Path, *, threads: int,
                  heartbeat: int, tag: str) -> list[subprocess.Popen]:
    procs = []
    for k in range(n_workers):
        out = tmp / f"{tag}_w{k}.json"
        cmd = [sys.executable, "-m", "benchmarks.storage_overhead", "--worker", name, "--storage", url,
               "--n-trials", str(n_trials), "--artifacts", str(tmp / tag / "art"), "--out", str(out),
               "--threads", str(threads), "--heartbeat", str(heartbeat)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": _root_path()}
        procs.append(subprocess.Popen(cmd, env=env, cwd=_root_path()))
        procs[-1].out_path = out  # type: ignore[attr-defined]
    return procs


def _root_path() -> str:
    return str(Path(__file__).resolve().parents[1])


def collect(procs) -> list[dict]:
    results = []
    for p in procs:
        code = p.wait()
        if code != 0:
            raise SystemExit(f"error: a benchmark worker exited with code {code}")
        results.append(json.loads(Path(p.out_path).read_text()))
    return results


# --- the gRPC proxy ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """``sdd-opt storage serve`` in a child process for the duration of a ``with`` block."""

    def __init__(self, url: str, threads: int = 4, heartbeat: int = 5):
        self.port = free_port()
        self.url = f"grpc://127.0.0.1:{self.port}"
        code = "import sys; from sdd_opt.cli.study import storage; storage(sys.argv[1:])"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--port", str(self.port), "--threads", str(threads),
             "--heartbeat-interval", str(heartbeat), "--grace-period", str(heartbeat * 2)],
            env={**os.environ, "SDD_OPT_STORAGE": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> "Proxy":
        import grpc

        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
                    grpc.channel_ready_future(ch).result(timeout=1)
                return self
            except grpc.FutureTimeoutError:
                if self.proc.poll() is not None:
                    break
        raise SystemExit("error: the gRPC storage proxy did not start")

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pg_connections(url: str) -> Optional[int]:
    """Connections of sdd-opt processes on the PostgreSQL server (application_name 'sdd-opt')."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(url)
        with engine.connect() as c:
            n = c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sdd-opt'")).scalar()
        engine.dispose()
        return int(n)
    except Exception:
        return None


class ConnectionSampler:
    """Largest number of sdd-opt connections seen on the server while a block runs."""

    def __init__(self, url: Optional[str]):
        self.url = url
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        if self.url and self.url.startswith("postgresql"):
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.5):
            n = pg_connections(self.url)
            if n is not None:
                self.peak = max(self.peak, n)

    def __exit__(self, *exc):
        self._stop.set()


# --- the end-to-end table ------------------------------------------------------------------------

def end_to_end(args, contenders: list[tuple[str, str, bool]], tmp: Path) -> list[list]:
    """(label, database URL, through the gRPC proxy?) -> one row per worker count."""
    rows = []
    cores = common_cores()
    for label, db, via_grpc in contenders:
        for n_workers in args.workers:
            threads = args.worker_threads or max(1, cores // n_workers)
            name = f"bench-{uuid.uuid4().hex[:10]}"
            create_study(db, study_dict(name, args.data_dir, epochs=args.epochs, levels=args.levels,
                                        width=args.width, train_size=args.train_size, data=args.data,
                                        batch_size=args.batch_size), tmp)
            try:
                with (Proxy(db, heartbeat=args.heartbeat) if via_grpc else _Null(db)) as px, \
                        ConnectionSampler(db) as conns:
                    procs = spawn_workers(px.url, name, n_workers, args.trials, tmp, threads=threads,
                                          heartbeat=args.heartbeat, tag=name)
                    results = collect(procs)
            finally:
                delete_study(db, name)
            ran = max(1, sum(r["ran"] for r in results))
            training = sum(r["training_s"] for r in results) / ran
            in_trial = sum(r["trial_storage_s"] for r in results) / ran
            between = (sum(r["storage_s"] for r in results) - sum(r["trial_storage_s"] for r in results)) / ran
            calls = sum(r["storage_calls"] for r in results) / ran
            hb = sum(r["heartbeat_calls"] for r in results)
            retries = sum(sum(r["retries"].values()) for r in results)
            pct = (in_trial + between) / training * 100 if training else float("nan")
            rows.append([label, n_workers, threads, ran, training, in_trial * 1e3, between * 1e3, f"{pct:.2f}",
                         round(calls), hb, retries, conns.peak if db.startswith("postgresql") else "-"])
            print(f"  {label}, {n_workers} worker(s): {pct:.2f}% ({(in_trial + between) * 1e3:.0f} ms per trial)",
                  flush=True)
    return rows


class _Null:
    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def common_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- calls alone: direct vs proxy ---------------------------------------------------------------

def call_latency(args, contenders: list[tuple[str, str, bool]], tmp: Path) -> list[list]:
    """One trial's storage traffic alone (no training), the contenders alternating."""
    import optuna
    from optuna.distributions import FloatDistribution

    from sdd_opt.study.storage import StorageSettings, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runners, cleanup, proxies = {}, [], []
    try:
        for label, db, via_grpc in contenders:
            url = db
            if via_grpc:
                px = Proxy(db, heartbeat=args.heartbeat).__enter__()
                proxies.append(px)
                url = px.url
            storage = open_storage(url, StorageSettings(heartbeat_interval=None, log=lambda m: None))
            name = f"bench-{uuid.uuid4().hex[:10]}"
            study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "maximize"])
            cleanup.append((db, name, storage))
            dist = FloatDistribution(0.0, 1.0)
            row = {"level": 0, "sparsity": 0.0, "train_acc": 0.9, "val_acc": 0.9, "test_acc": 0.9, "loss": 0.1,
                   "epochs": 10, "seconds": 1.0}

            def one_trial(study=study, dist=dist, row=row):
                trial = study.ask({"x": dist, "y": dist})
                curve = []
                for level in range(args.levels + 1):
                    curve.append(dict(row, level=level))
                    trial.set_user_attr("curve_seed0", curve)
                for k in range(max(0, 12 - (args.levels + 1))):
                    trial.set_user_attr(f"attr{k}", k)
                study.tell(trial, [0.9, 0.5])
                study.get_trials(deepcopy=False)

            one_trial()  # warm-up: connections, caches
            runners[label] = one_trial
        times = common.alternate(runners, args.latency_reps, _cpu())
    finally:
        for db, name, storage in cleanup:
            _dispose(storage)
            delete_study(db, name)
        for px in proxies:
            px.__exit__(None, None, None)
    base = times.get("postgresql")
    rows = []
    for label, ts in times.items():
        ms = [t * 1e3 for t in ts]
        rows.append([label, common.median(ms), min(ms), common.median_ratio(ts, base) if base else float("nan")])
    return rows


def _cpu():
    import torch

    return torch.device("cpu")


# --- main ----------------------------------------------------------------------------------------

def add_run_args(p: argparse.ArgumentParser, *, trials: int, epochs: int, levels: int, worker_threads: int) -> None:
    """The size of the benchmark's study and of its workers (shared with ``worker_scaling``)."""
    p.add_argument("--workers", type=common.int_list, default="1,2", help="worker counts (default: 1,2)")
    p.add_argument("--trials", type=int, default=trials, help=f"complete trials per run (the study's budget; "
                                                              f"default {trials})")
    p.add_argument("--data", default="mnist1d", choices=["mnist1d", "synthetic1d"])
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs per level (default {epochs})")
    p.add_argument("--levels", type=int, default=levels, help=f"pruning levels after the dense one (default {levels})")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--heartbeat", type=int, default=10, help="heartbeat interval of the workers (s)")
    p.add_argument("--worker-threads", type=int, default=worker_threads,
                   help=f"torch threads per worker (default {worker_threads}; 0: cores // workers, as study run "
                        "--jobs)")
    p.add_argument("--data-dir", default="storage/data")
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.storage_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--storages", default="sqlite,postgresql,grpc",
                   help="comma list of sqlite, postgresql, grpc (proxy in front of --postgres), mysql")
    p.add_argument("--postgres", default=os.environ.get("SDD_OPT_BENCH_POSTGRES", DEFAULT_PG), metavar="URL")
    p.add_argument("--mysql", default=None, metavar="URL", help="also measure this MySQL/MariaDB database")
    add_run_args(p, trials=3, epochs=20, levels=10, worker_threads=1)  # epochs as the quick study (mnist1d_quick)
    p.add_argument("--latency-reps", type=int, default=20, help="reps of the calls-alone table (0: skip it)")
    # internal: one worker process
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--storage", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n-trials", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--artifacts", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    import warnings

    warnings.filterwarnings("ignore", message=r".*(experimental|Heartbeat of storage).*")
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return {}
    wanted = [s.strip() for s in args.storages.split(",") if s.strip()]
    if args.mysql and "mysql" not in wanted:
        wanted.append("mysql")
    with tempfile.TemporaryDirectory(prefix="sdd-bench-") as tmp_s:
        tmp = Path(tmp_s)
        contenders: list[tuple[str, str, bool]] = []
        notes = []
        pg_why = reachable(args.postgres) if {"postgresql", "grpc"} & set(wanted) else None
        for s in wanted:
            if s == "sqlite":
                contenders.append(("sqlite", f"sqlite:///{tmp / 'bench.db'}", False))
            elif s in ("postgresql", "grpc") and pg_why:
                notes.append(f"{s}: skipped, PostgreSQL not reachable at {args.postgres} ({pg_why})")
            elif s == "postgresql":
                contenders.append(("postgresql", args.postgres, False))
            elif s == "grpc":
                try:
                    import grpc  # noqa: F401
                except ImportError:
                    notes.append("grpc: skipped, grpcio is not installed (pip install -e '.[grpc]')")
                    continue
                contenders.append(("grpc -> postgresql", args.postgres, True))
            elif s == "mysql":
                url = args.mysql or "mysql+pymysql://root@127.0.0.1:3306/test"
                why = reachable(url)
                if why:
                    notes.append(f"mysql: skipped, not reachable ({why})")
                    continue
                contenders.append(("mysql", url, False))
            else:
                raise SystemExit(f"error: --storages: unknown storage {s!r} (sqlite, postgresql, grpc, mysql)")
        print(f"## storage overhead per trial: {args.data}, cnn1d width {args.width}, {args.epochs} epochs x "
              f"{args.levels + 1} levels, {args.trials} trials per run, {args.worker_threads or 'cores // workers'} "
              f"torch thread(s) per worker, heartbeat every {args.heartbeat}s")
        print(f"machine: {common.machine(_cpu(), common_cores())}")
        for n in notes:
            print(f"note: {n}")
        print(flush=True)
        rows = end_to_end(args, contenders, tmp)
        headers = ["storage", "workers", "threads each", "trials", "training s/trial", "storage ms in trial",
                   "storage ms between trials", "storage % of training", "calls/trial", "heartbeats", "retries",
                   "peak db connections"]
        print()
        print(common.table(headers, rows))
        print()
        worst = max((float(r[7]) for r in rows), default=float("nan"))
        print(f"target: storage < {TARGET_PCT:.0f}% of the training time per trial: worst {worst:.2f}% -> "
              f"{'MET' if worst < TARGET_PCT else 'NOT MET'}")
        lat_rows = []
        if args.latency_reps and contenders:
            lat = list(contenders)
            if any(g for _, _, g in lat) and not any(lbl == "postgresql" for lbl, _, _ in lat):
                lat.append(("postgresql", args.postgres, False))  # the proxy's baseline
            lat_rows = call_latency(args, lat, tmp)
            print()
            print(f"## one trial's storage calls alone (ask, {args.levels + 1} level records + "
                  f"{max(0, 12 - args.levels - 1)} attributes, tell, read all trials), {args.latency_reps} reps, "
                  f"alternating")
            print()
            print(common.table(["storage", "ms per trial (median)", "ms (min)", "x direct postgresql"], lat_rows))
        sys.stdout.flush()
        return {"rows": rows, "headers": headers, "latency": lat_rows}


if __name__ == "__main__":
    main()
