"""``study run --jobs N``: N workers on this machine, sharing its cores and GPUs.

Apart from the CLI (``commands``) because it is process management, not argument handling:
how many threads and which GPU each worker gets, and how the storage URL reaches them.
``study run`` itself is worker 0 (it keeps the per-epoch bar and prints the study's progress);
workers 1..N-1 are child processes.

The default layout is the one measured best on a shared CPU (docs/performance.md, "threads";
``python -m benchmarks.contention``): one torch thread per CPU worker and as many workers as
cores (one per GPU on a CUDA machine). With two OpenMP threads on two cores, a training beside
one other CPU-bound process ran 15x slower (each barrier waits for a descheduled partner); with
one thread per process it keeps a fair share. The thread count is never chosen from the load:
it changes a run's numbers (float summation order), so it is fixed unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click


def local_cores() -> int:
    """Cores this process may use (the CPU affinity set by SLURM/cgroups, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _wants_gpu(device, config_device, gpus: int) -> bool:
    return gpus > 0 and (device in (None, "cuda", "auto") and (device or config_device) in ("auto", "cuda"))


def count_gpus(device=None, config_device="auto") -> int:
    if device == "cpu" or config_device == "cpu":
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def default_jobs(device=None, config_device="auto", gpus: int = 0) -> int:
    """One worker per GPU on a CUDA run, else one per core."""
    return gpus if _wants_gpu(device, config_device, gpus) else local_cores()


def plan_workers(jobs: int, *, threads=None, device=None, config_device="auto", gpus: int = 0) -> list[dict]:
    """How ``jobs`` local workers share this machine: torch threads each, and one GPU each.

    CPU workers get one thread each (see the module docstring); GPU workers split the cores
    evenly. On a CUDA run, worker k gets GPU ``k mod gpus`` alone through CUDA_VISIBLE_DEVICES
    (more workers than GPUs share them round robin).
    """
    wants_gpu = _wants_gpu(device, config_device, gpus)
    threads = threads or (max(1, local_cores() // jobs) if wants_gpu else 1)
    plans = []
    for k in range(jobs):
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        dev = device
        if wants_gpu:
            env["CUDA_VISIBLE_DEVICES"] = str(k % gpus)
            dev = "cuda:0"
        elif device and device.startswith("cuda:"):
            dev = device
        plans.append({"threads": threads, "device": dev, "env": env})
    return plans


def spawn_workers(name, url, plans, *, n_trials, timeout, artifacts, hb, grace, storage_timeout) -> list:
    """Start a worker process for each plan (workers 1..N-1; ``study run`` is worker 0); returns them.

    The storage URL (with its password) goes to the workers through the environment, never
    their command line, which every user of the machine can read in ``ps``.
    """
    from sdd_opt.study.storage import ENV_URL

    cmd = [sys.executable, "-m", "sdd_opt", "study", "worker", name, "--heartbeat-interval", str(hb),
           "--grace-period", str(grace), "--storage-timeout", str(storage_timeout), "--no-progress"]
    for flag, value in (("--n-trials", n_trials), ("--timeout", timeout), ("--artifacts", artifacts)):
        if value is not None:
            cmd += [flag, str(value)]
    procs = []
    for plan in plans:
        c = list(cmd) + ["--threads", str(plan["threads"])]
        if plan["device"]:
            c += ["--device", plan["device"]]
        env = {**os.environ, **plan["env"], ENV_URL: url, "SDD_OPT_LOCAL_WORKER": "1"}
        procs.append(subprocess.Popen(c, env=env))
    return procs


def describe_layout(plans: list[dict], gpus: int) -> str:
    jobs = len(plans)
    share = f", {jobs} workers on {gpus} GPU(s)" if gpus else ""
    if gpus and jobs > gpus:
        click.echo(f"warning: {jobs} workers share {gpus} GPU(s); use --jobs {gpus} for one GPU per worker", err=True)
    return f"started {jobs} worker{'s' if jobs > 1 else ''} with {plans[0]['threads']} thread(s) each{share}"


def stop_workers(procs: list, *, wait_only: bool, tick=None, every: float = 2.0) -> None:
    """Wait for the child workers (after worker 0 finished), or stop them (worker 0 was interrupted).

    While waiting, ``tick()`` is called every ``every`` seconds (the study's progress lines).
    """
    if not wait_only:
        for p in procs:
            p.terminate()
    while wait_only and tick and any(p.poll() is None for p in procs):
        time.sleep(every)
        tick()
    codes = [p.wait() for p in procs]
    if wait_only and tick and procs:
        tick()
    if wait_only and any(codes):
        click.echo(f"warning: worker exit codes {codes}", err=True)
