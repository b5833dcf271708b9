"""Several workers on one study, on the real local PostgreSQL and MariaDB servers (skipped with the
reason when they are not running): exact budgets, SIGKILL and SIGTERM in the middle of a trial,
the gRPC storage proxy, divergence, stale trials."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sdd_opt.testing import run_cli

from .conftest import tiny_study
from .db import db_url, server_url, tracked_studies, tracked_study, unique_name  # noqa: F401  (db_url is a fixture)

HB = ["--heartbeat-interval", "1", "--grace-period", "3"]


def write_study(tmp_path: Path, *, epochs: int = 2, levels: int = 2, **changes) -> Path:
    study = tiny_study(tmp_path, **changes)
    study["base"]["train"]["epochs"] = epochs
    study["base"]["prune"]["levels"] = levels
    path = tmp_path / f"study_{epochs}_{levels}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def create(capsys, path, url, name):
    code, out, err = run_cli(capsys, "study", "create", str(path), "--storage", url, "--name", name)
    assert code == 0, err


class Worker:
    """``python -m sdd_opt study worker`` as a separate process, its output in a file."""

    def __init__(self, tmp_path: Path, name: str, url: str, n_trials: int, tag: str, *extra: str):
        self.log = tmp_path / f"worker_{tag}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SDD_OPT_STORAGE": url}  # the URL never on the command line
        cmd = [sys.executable, "-m", "sdd_opt", "study", "worker", name, "--n-trials", str(n_trials),
               "--artifacts", str(tmp_path / "art"), "--threads", "1", "--no-progress", *HB, *extra]
        self._fh = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)

    def text(self) -> str:
        return self.log.read_text()

    def trials_started(self) -> list[int]:
        return [int(n) for n in re.findall(r"^trial (\d+): (?!val )", self.text(), re.M)]

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._fh.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def worker_here(capsys, tmp_path, name, url, n_trials, *extra):
    """A worker in this process (warm imports: no start-up cost); returns (exit code, output)."""
    code, out, err = run_cli(capsys, "study", "worker", name, "--storage", url, "--n-trials", str(n_trials),
                             "--artifacts", str(tmp_path / "art"), "--threads", "1", "--no-progress", *HB, *extra)
    return code, out + err


def kill_when(pred, worker: "Worker", timeout: float = 60) -> threading.Thread:
    """SIGKILL ``worker`` from a helper thread as soon as ``pred()`` holds."""
    def run():
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred():
            time.sleep(0.05)
        worker.kill()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


_STORAGES: dict = {}


def load(url, name):
    """The study, through one plain RDB storage per URL (polling must not open an engine each time)."""
    if url not in _STORAGES:
        _STORAGES[url] = optuna.storages.RDBStorage(url)
    return optuna.load_study(study_name=name, storage=_STORAGES[url])


def by_state(study, state):
    return [t for t in study.get_trials(deepcopy=False) if t.state == state]


def wait_for(pred, timeout: float, what: str, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def running_with_levels(url, name, worker: Worker, min_levels: int = 1):
    """The RUNNING trial of ``worker`` once it has recorded ``min_levels`` finished levels."""
    mine = set(worker.trials_started())
    for t in load(url, name).get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in mine and len(t.user_attrs.get("curve_seed0", [])) >= min_levels:
            return t
    return None


def assert_no_duplicate_params(complete):
    seen = [tuple(sorted(t.params.items())) for t in complete]
    assert len(seen) == len(set(seen)), seen


# --- budgets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["postgresql", pytest.param("mysql", marks=pytest.mark.slow)])
def test_two_workers_complete_exactly_n_trials(kind, tmp_path, capsys):
    """One worker process and one in this process share a budget of 4: exactly 4 complete trials.
    (On MySQL the SIGKILL test below covers two workers by default; this one runs with -m slow.)"""
    db_url = server_url(kind)
    path = write_study(tmp_path, epochs=4)
    with tracked_study(db_url) as name:
        create(capsys, path, db_url, name)
        other = Worker(tmp_path, name, db_url, 4, "b")
        try:
            wait_for(lambda: other.trials_started(), 60, "the other worker's first trial")
            code, out = worker_here(capsys, tmp_path, name, db_url, 4)
            assert code == 0, out
            assert other.wait() == 0, other.text()[-2000:]
        finally:
            other.kill()
        study = load(db_url, name)
        assert len(by_state(study, TrialState.COMPLETE)) == 4
        assert not by_state(study, TrialState.RUNNING) and not by_state(study, TrialState.WAITING)
        ran = [int(re.search(r"(\d+) trial\(s\) run here", text).group(1)) for text in (out, other.text())]
        assert sum(ran) == len(study.trials) and all(r >= 1 for r in ran), ran
        assert_no_duplicate_params(by_state(study, TrialState.COMPLETE))


# --- a worker killed in the middle of a trial ---------------------------------------------------

def test_sigkill_mid_trial_is_failed_retried_and_resumed_at_its_level(db_url, tmp_path, capsys):
    """Worker b is SIGKILLed while its trial is half done (a level recorded); the surviving worker
    fails that trial after the 3 s grace period, re-queues it, resumes its run directory at the
    checkpointed level, and the study ends with exactly n complete trials and no duplicates."""
    n = 2
    path = write_study(tmp_path, epochs=15, levels=6)
    with tracked_studies(db_url) as names:
        name = unique_name()
        names.append(name)
        create(capsys, path, db_url, name)
        b = Worker(tmp_path, name, db_url, n, "b")
        try:
            victim = wait_for(lambda: running_with_levels(db_url, name, b), 90, "a level of worker b's trial")
            # the survivor (this process) starts while b is mid-trial; b dies a moment later
            killer = kill_when(lambda: len(load(db_url, name).trials) > 1, b)
            code, out = worker_here(capsys, tmp_path, name, db_url, n)
            killer.join()
        finally:
            b.kill()
        assert code == 0, out
        study = load(db_url, name)
        killed = study.trials[victim.number]
        levels_done = len(killed.user_attrs["curve_seed0"])
        assert 1 <= levels_done < 7, "b was killed mid-trial"
        complete = by_state(study, TrialState.COMPLETE)
        assert len(complete) == n and not by_state(study, TrialState.RUNNING)
        assert killed.state == TrialState.FAIL and "no heartbeat" in killed.user_attrs["fail_reason"]
        retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
        retry = retries[0]
        assert retry.params == killed.params and retry.user_attrs["retry_of"] == victim.number
        assert_no_duplicate_params(complete)
        # the survivor resumed the dead trial's run directory instead of starting over
        resumed = [int(k) for k in re.findall(r"resuming .* at level (\d+)/", out)]
        assert resumed and resumed[0] >= levels_done, out[-3000:]
        assert f"trial {retry.number}: val" in out
        assert len(retry.user_attrs["curve"]) == 7  # every level is in the retried trial's curve


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_fails_the_running_trial_queues_it_and_a_rerun_resumes_it(sig, tmp_path, capsys):
    url = server_url("postgresql")
    path = write_study(tmp_path, epochs=60, levels=6)  # levels of ~1-2 s: the signal lands mid-trial
    with tracked_studies(url) as names:
        name = unique_name()
        names.append(name)
        create(capsys, path, url, name)
        w = Worker(tmp_path, name, url, 2, "a")
        try:
            victim = wait_for(lambda: running_with_levels(url, name, w), 90, "a level of the worker's trial")
            w.proc.send_signal(sig)
            assert w.wait(60) == (143 if sig == signal.SIGTERM else 130), w.text()[-2000:]
        finally:
            w.kill()
        study = load(url, name)
        assert not by_state(study, TrialState.RUNNING)  # nothing is left RUNNING, no grace period needed
        failed = study.trials[victim.number]
        reason = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
        assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == f"interrupted ({reason})"
        waiting = by_state(study, TrialState.WAITING)
        assert len(waiting) == 1 and waiting[0].params == failed.params
        assert "queued again" in w.text()
        # the same command again: takes the queued trial first and resumes it at its level
        code, out = worker_here(capsys, tmp_path, name, url, 1)
        assert code == 0, out
        assert re.search(r"resuming .* at level [1-9]", out), out[-2000:]
        study = load(url, name)
        complete = by_state(study, TrialState.COMPLETE)
        assert len(complete) == 1 and complete[0].params == failed.params
        assert not by_state(study, TrialState.RUNNING) and not by_state(study, TrialState.WAITING)


# --- stale trials, in process ------------------------------------------------------------------

def test_a_worker_fails_stale_trials_even_when_the_budget_is_already_met(tmp_path, sqlite_url):
    from sdd_opt.study.objective import Objective
    from sdd_opt.study.runner import create_or_resume, work
    from sdd_opt.study.spec import load_study_spec
    from sdd_opt.study.storage import StorageSettings, open_storage

    spec = load_study_spec(write_study(tmp_path), [])
    storage = open_storage(sqlite_url, StorageSettings(heartbeat_interval=1, grace_period=1, log=lambda m: None))
    study = create_or_resume(spec, storage, sqlite_url)
    study.add_trial(optuna.create_trial(params={"prune.rate": 0.3}, distributions={
        "prune.rate": optuna.distributions.FloatDistribution(0.2, 0.4, step=0.1)}, values=[0.9, 0.3]))
    dead = study.ask()  # a worker that died: one heartbeat, then nothing
    storage.record_heartbeat(dead._trial_id)
    time.sleep(2.2)
    res = work(study, Objective(spec, tmp_path / "art", log=lambda m: None), n_trials=1, log=lambda m: None)
    assert res.ran == 0 and "budget 1" in res.stop
    t = study._storage.get_trial(dead._trial_id)
    assert t.state == TrialState.FAIL and "no heartbeat for more than 1s" in t.user_attrs["fail_reason"]
    assert [x.system_attrs["failed_trial"] for x in by_state(study, TrialState.WAITING)] == [dead.number]


def test_a_diverging_trial_fails_with_its_reason_and_the_worker_goes_on(tmp_path, sqlite_url, capsys):
    path = write_study(tmp_path, search_space={"train.lr": {"type": "categorical", "choices": [0.05, 1.0e6]}})
    create(capsys, path, sqlite_url, "div")
    study = load(sqlite_url, "div")
    study.enqueue_trial({"train.lr": 1.0e6})
    study.enqueue_trial({"train.lr": 0.05})
    code, out, err = run_cli(capsys, "study", "worker", "div", "--storage", sqlite_url, "--n-trials", "1",
                             "--artifacts", str(tmp_path / "art"))
    assert code == 0, err
    study = load(sqlite_url, "div")
    failed = by_state(study, TrialState.FAIL)
    assert len(failed) == 1 and "diverged" in failed[0].user_attrs["fail_reason"]
    assert "nan" in failed[0].user_attrs["fail_reason"].lower() or "inf" in failed[0].user_attrs["fail_reason"]
    assert len(by_state(study, TrialState.COMPLETE)) == 1
    assert "trial 0 failed: seed 0: training diverged" in out


# --- local workers: study run --jobs ------------------------------------------------------------

@pytest.mark.slow  # two fresh worker processes: ~20 s on 2 cores
def test_run_with_jobs_shares_the_budget_on_sqlite(tmp_path, sqlite_url, capsys):
    path = write_study(tmp_path, epochs=1, levels=1)
    code, out, err = run_cli(capsys, "study", "run", str(path), "--storage", sqlite_url, "--jobs", "2",
                             "--n-trials", "3", "--artifacts", str(tmp_path / "art"))
    assert code == 0, err
    assert "started 2 workers with 1 thread(s) each" in out
    study = load(sqlite_url, "tiny")
    assert len(by_state(study, TrialState.COMPLETE)) == 3 and not by_state(study, TrialState.RUNNING)


def test_plan_workers_gives_each_worker_its_cores_and_gpu(monkeypatch):
    from sdd_opt.study import local_workers

    monkeypatch.setattr(local_workers, "local_cores", lambda: 16)
    plans = local_workers.plan_workers(3, gpus=2)
    assert [p["threads"] for p in plans] == [5, 5, 5]
    assert [p["env"]["CUDA_VISIBLE_DEVICES"] for p in plans] == ["0", "1", "0"]
    assert all(p["device"] == "cuda:0" and p["env"]["OMP_NUM_THREADS"] == "5" for p in plans)
    cpu = local_workers.plan_workers(4, gpus=2, device="cpu")
    assert all("CUDA_VISIBLE_DEVICES" not in p["env"] and p["device"] == "cpu" for p in cpu)
    assert [p["threads"] for p in local_workers.plan_workers(2, gpus=0)] == [1, 1]  # CPU: one thread per worker
    assert local_workers.plan_workers(2, gpus=0, threads=3)[1]["env"]["OMP_NUM_THREADS"] == "3"
    assert local_workers.default_jobs(gpus=0) == 16 and local_workers.default_jobs(gpus=2) == 2
    assert local_workers.default_jobs(device="cpu", gpus=2) == 16


# --- gRPC storage proxy ---------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_workers_through_the_grpc_proxy_complete_n_and_survive_a_kill(tmp_path, capsys):
    """Workers on grpc://: the proxy records their heartbeats, fails the killed worker's trial and
    re-queues it; the survivor resumes it."""
    pytest.importorskip("grpc", reason="the gRPC proxy needs grpcio and protobuf (pip install -e '.[grpc]')")
    url = server_url("postgresql")
    port = _free_port()
    path = write_study(tmp_path, epochs=15, levels=6)
    with tracked_studies(url) as names:
        name = unique_name()
        names.append(name)
        create(capsys, path, url, name)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SDD_OPT_STORAGE": url}
        serve_log = open(tmp_path / "serve.log", "w")
        server = subprocess.Popen(
            [sys.executable, "-c", "import sys; from sdd_opt.cli.study import storage; storage(sys.argv[1:])",
             "serve", "--port", str(port), "--threads", "4", *HB],
            stdout=serve_log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        grpc_url = f"grpc://127.0.0.1:{port}"
        try:
            wait_for(lambda: "listening on" in (tmp_path / "serve.log").read_text(), 60, "the proxy to listen")
            b = Worker(tmp_path, name, grpc_url, 2, "b")
            try:
                victim = wait_for(lambda: running_with_levels(url, name, b), 90, "a level of worker b's trial")
                killer = kill_when(lambda: len(load(url, name).trials) > 1, b)
                code, out = worker_here(capsys, tmp_path, name, grpc_url, 2)
                killer.join()
            finally:
                b.kill()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
            serve_log.close()
        assert code == 0, out
        study = load(url, name)
        assert len(by_state(study, TrialState.COMPLETE)) == 2 and not by_state(study, TrialState.RUNNING)
        killed = study.trials[victim.number]
        assert killed.state == TrialState.FAIL and "no heartbeat" in killed.user_attrs["fail_reason"]
        retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
        assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
        assert re.search(r"resuming .* at level [1-9]", out), out[-2000:]
        assert all("sdd_opt:heartbeat" not in t.system_attrs for t in study.trials)


def test_a_trial_failed_by_another_worker_does_not_crash_its_worker(sqlite_url):
    """A late heartbeat lets another worker fail a trial that is still running: the running
    worker's next write fails; it reports that and goes on with the next trial."""
    from sdd_opt.study.runner import work
    from sdd_opt.study.storage import StorageSettings, open_storage

    storage = open_storage(sqlite_url, StorageSettings(heartbeat_interval=1, grace_period=1, log=lambda m: None))
    study = optuna.create_study(study_name="late", storage=storage)
    logs = []

    class Obj:
        calls = 0

        def __call__(self, trial, budget=None):
            Obj.calls += 1
            x = trial.suggest_float("x", 0, 1)
            if Obj.calls == 1:  # "another worker" fails it meanwhile
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                trial.set_user_attr("level", 1)
            return x

    res = work(study, Obj(), n_trials=1, log=logs.append)
    assert res.ran == 2 and res.completed == 1
    assert any("marked fail by another worker" in m for m in logs)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
