"""``study run --jobs N``: start N worker processes on this machine, sharing its cores and GPUs.

Apart from the CLI (``commands``) because it is process management, not argument handling:
how many threads and which GPU each worker gets, and how the storage URL reaches them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click


def local_cores() -> int:
    """Cores this process may use (the CPU affinity set by SLURM/cgroups, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def plan_workers(jobs: int, *, threads=None, device=None, config_device="auto", gpus: int = 0) -> list[dict]:
    """How ``jobs`` local workers share this machine: torch threads each, and one GPU each.

    Cores are split evenly (at least one thread per worker). On a CUDA run, worker k gets GPU
    ``k mod gpus`` alone through CUDA_VISIBLE_DEVICES (more workers than GPUs share them round robin).
    """
    threads = threads or max(1, local_cores() // jobs)
    wants_gpu = gpus > 0 and (device in (None, "cuda", "auto") and (device or config_device) in ("auto", "cuda"))
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


def spawn_workers(name, url, jobs, *, n_trials, timeout, device, threads, artifacts, hb, grace, storage_timeout,
                   config_device="auto"):
    """Start ``jobs`` local worker processes sharing the cores and GPUs, and wait for them.

    The storage URL (with its password) goes to the workers through the environment, never
    their command line, which every user of the machine can read in ``ps``.
    """
    from sdd_opt.study.storage import ENV_URL

    gpus = 0
    if device != "cpu" and config_device != "cpu":
        try:
            import torch

            gpus = torch.cuda.device_count()
        except Exception:
            gpus = 0
    plans = plan_workers(jobs, threads=threads, device=device, config_device=config_device, gpus=gpus)
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
    share = f", {jobs} workers on {gpus} GPU(s)" if gpus else ""
    click.echo(f"started {jobs} workers with {plans[0]['threads']} thread(s) each{share}")
    if gpus and jobs > gpus:
        click.echo(f"warning: {jobs} workers share {gpus} GPU(s); use --jobs {gpus} for one GPU per worker", err=True)
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    if any(codes):
        click.echo(f"warning: worker exit codes {codes}", err=True)
