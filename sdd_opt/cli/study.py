"""``sdd-opt study ...``, ``sdd-opt dashboard`` and ``sdd-opt storage``: the CLI face of the study package.

The local worker processes of ``study run --jobs N`` are started by ``local_workers``.

Everything the user typed is validated (study file, overrides, storage URL) before the storage
is opened for writing, so a mistake never leaves a half-created study behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sdd_opt.errors import UserError

STORAGE_HELP = "Storage URL (sqlite:///..., postgresql+psycopg://..., mysql+pymysql://..., grpc://HOST:PORT). " \
               "Default: $SDD_OPT_STORAGE or sqlite:///storage/sdd_opt.db."
ARTIFACTS_HELP = "Artifact store (curves, front weights) and trial run directories: DIR, or s3://BUCKET[/PREFIX] " \
                 "or " \
                 "gs://BUCKET[/PREFIX] for workers on several machines (run directories then stay local). " \
                 "Default: $SDD_OPT_ARTIFACTS or 'artifacts' beside the SQLite file (storage/artifacts)."


def _storage_option(f):
    return click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)(f)


def _open(storage_url, **settings):
    """Open the storage; ``must_exist=True`` for commands that only read stored studies (creates nothing)."""
    from sdd_opt.study.storage import StorageSettings, open_storage, resolve_url

    url = resolve_url(storage_url)
    return open_storage(url, StorageSettings(**settings) if settings else None), url


def _log_err(msg: str) -> None:
    click.echo(msg, err=True)


@click.group()
def study() -> None:
    """Create, run, inspect and export Optuna studies over l2, distillation and pruning schedules."""


def _load_spec(file, overrides, name):
    from sdd_opt.overrides import refuse_lost_study_overrides
    from sdd_opt.preflight import check_new_study
    from sdd_opt.study.spec import load_study_spec

    spec = load_study_spec(file, list(overrides), name=name)
    refuse_lost_study_overrides(spec, overrides)
    check_new_study(spec, file, name_given=bool(name))
    return spec


def _study_file_options(set_help: str):
    """FILE, --storage, --name and --set: how ``study create`` and ``study run`` name their study."""
    def wrap(f):
        f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=set_help)(f)
        f = click.option("--name", default=None, help="Study name (default: the file's 'name').")(f)
        return click.argument("file", type=click.Path(dir_okay=False))(_storage_option(f))
    return wrap


@study.command("create")
@_study_file_options("Override a base-config key for every trial.")
@click.option("--seed-with-paper", is_flag=True, help="Enqueue the paper's reference points as the first trials.")
def create(file, storage, name, overrides, seed_with_paper) -> None:
    """Store the study FILE (its settings, search space and objectives) without running anything."""
    from sdd_opt.study import reproduce as rp
    from sdd_opt.study.paper import enqueue_paper_trials
    from sdd_opt.study.runner import create_or_resume
    from sdd_opt.study.storage import masked

    spec = _load_spec(file, overrides, name)
    st, url = _open(storage)
    how = rp.HowRun(overrides=tuple(overrides), name=name, seed_with_paper=seed_with_paper)
    s = create_or_resume(spec, st, url, create_only=True, how=how)
    if seed_with_paper:
        enqueue_paper_trials(s, spec, log=click.echo)
    click.echo(f"created study {spec.name!r} in {masked(url)}")
    click.echo(f"add workers with: {rp.worker_command(spec, url)}")
    for line in rp.password_note(url):
        click.echo(line)


def _worker_options(f):
    f = click.option("--n-trials", type=click.IntRange(min=1), default=None,
                     help="Total complete trials the STUDY should hold (shared by all workers).")(f)
    f = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop starting "
                                                                                                  "trials after S "
                                                                                                  "seconds.")(f)
    f = click.option("--device", default=None, help="cpu, cuda or cuda:K for this worker (default: the config's).")(f)
    f = click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads for this worker "
                                                                                 "(default 1: see "
                                                                                 "docs/performance.md, threads).")(f)
    f = click.option("--artifacts", default=None, metavar="DIR", help=ARTIFACTS_HELP)(f)
    f = click.option("--heartbeat-interval", type=click.IntRange(min=1), default=60, show_default=True,
                     help="Seconds between a running trial's heartbeats.")(f)
    f = click.option("--grace-period", type=click.IntRange(min=1), default=120, show_default=True,
                     help="A trial without heartbeat for this long is failed and retried.")(f)
    f = click.option("--storage-timeout", type=click.FloatRange(min=1), default=600, show_default=True,
                     help="Seconds a lost database connection (or a lock) is retried before this worker exits.")(f)
    f = click.option("--progress/--no-progress", default=None, help="Epoch progress bars (default: when on a "
                                                                    "terminal).")(f)
    return f


def _worker_storage(storage, heartbeat_interval, grace_period, storage_timeout, *, note: bool = False,
                    joining: bool = False):
    from sdd_opt.study.storage import is_sqlite, resolve_url

    url = resolve_url(storage)
    if note and is_sqlite(url):
        click.echo("note: SQLite serves workers on this machine only; for several machines use PostgreSQL or MySQL "
                   "(docs/distributed.md)")
    return _open(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                 storage_timeout=storage_timeout, log=_log_err, must_exist=joining)


def _study_progress(s, spec, n_trials, *, on_change: bool = False):
    """A callable printing the study's progress lines (with ``on_change``: only when the trial counts changed)."""
    from sdd_opt.study.progress import StudyProgress

    tracker, last = StudyProgress(s, spec, n_trials), [None]

    def show() -> None:
        try:
            st = tracker.state()
            key = (st["complete"], st["running"], st["failed"])
            if on_change and key == last[0]:
                return
            last[0] = key
            lines = [tracker.count_line(st), tracker.front_line()]
        except Exception as exc:  # progress must never stop a study
            lines = [f"(study progress unavailable: {type(exc).__name__}: {exc})"]
        for line in lines:
            click.echo(line)
    return show


def _check_device(device) -> None:
    if device:
        from pydantic import ValidationError

        from sdd_opt.config import TrainConfig

        try:
            TrainConfig(device=device)
        except ValidationError:
            raise UserError(f"--device: must be cpu, cuda or cuda:K (got {device!r})") from None


def _work(s, spec, url, *, n_trials, timeout, device, threads, artifacts, progress, replay=None):
    from sdd_opt.study.objective import Objective
    from sdd_opt.study.runner import work
    from sdd_opt.study.storage import resolve_artifacts

    _check_device(device)
    from sdd_opt.plugins import check_study

    check_study(s, spec)  # a plug-in that does not import here, or changed: stop before anything is written
    progress = sys.stderr.isatty() if progress is None else progress
    if replay is not None:
        from sdd_opt.study.replay import ReplayObjective

        obj = ReplayObjective(spec, replay, log=click.echo)
    else:
        from sdd_opt.study.artifact_stores import open_artifact_store

        obj = Objective(spec, resolve_artifacts(url, artifacts), device=device, threads=threads, progress=progress,
                        log=click.echo, store=open_artifact_store(url, artifacts))
    # worker 0 of `study run --jobs N` speaks for all
    on_trial = _study_progress(s, spec, n_trials) if os.environ.get("SDD_OPT_LOCAL_WORKER") != "1" else None
    try:
        res = work(s, obj, n_trials=n_trials, timeout=timeout, log=click.echo, on_trial=on_trial)
        obj.sweep_weights(s)  # the last trials' dominated front weights (study/front_models.py)
    except KeyboardInterrupt as exc:
        term = "signal" in str(exc)
        click.echo(f"\n{'terminated' if term else 'interrupted'}: the running trial was marked failed with its reason "
                   f"and queued again (it resumes at its last finished level); finished trials are stored. "
                   f"Resume with the same command.", err=True)
        sys.exit(143 if term else 130)
    click.echo(f"worker done: {res.ran} trial(s) run here, {res.completed} complete, {res.failed} failed; {res.stop}")
    return res


def run_study(spec, storage, *, jobs, seed_with_paper, n_trials, timeout, device, threads, artifacts,
              heartbeat_interval, grace_period, storage_timeout, progress, replay=None, overrides=None, name=None):
    """Create or resume ``spec``'s study and work on it with ``jobs`` local workers; returns (study, url).

    This process is worker 0; workers 1..jobs-1 are child processes (``local_workers``). Default
    layout: one worker per core with one torch thread each (one per GPU on a CUDA machine).
    ``overrides`` / ``name``: the command line's ``--set`` and ``--name``, stored for the reproduce
    commands with the other flags that change the result (``reproduce.HowRun``).
    """
    from sdd_opt.study import local_workers as lw
    from sdd_opt.study.artifact_stores import check_artifacts
    from sdd_opt.study.paper import enqueue_paper_trials
    from sdd_opt.study.reproduce import HowRun
    from sdd_opt.study.runner import create_or_resume

    _check_device(device)
    check_artifacts(artifacts)
    how = HowRun(overrides=tuple(spec.overrides if overrides is None else overrides), name=name,
                 seed_with_paper=seed_with_paper, replay=replay, n_trials=n_trials, timeout=timeout, jobs=jobs)
    n_trials = n_trials or spec.file.budget.n_trials
    timeout = timeout or spec.file.budget.timeout
    if n_trials is None and timeout is None:
        raise UserError("no budget: give --n-trials or --timeout, or budget.n_trials in the study file")
    table = None
    if replay is not None:
        from sdd_opt.study.replay import CurveTable

        if jobs not in (None, 1):
            raise UserError("--replay runs in one process: drop --jobs")
        jobs = 1
        table = CurveTable.load(replay)
    st, url = _worker_storage(storage, heartbeat_interval, grace_period, storage_timeout)
    s = create_or_resume(spec, st, url, how=how)
    if seed_with_paper:
        enqueue_paper_trials(s, spec, log=click.echo)
    click.echo(f"study {spec.name!r}: {len(spec.search_space)} searched keys, objectives "
               f"{', '.join(f'{m} ({d})' for m, d in zip(spec.metric_names, spec.directions))}, sampler "
               f"{spec.sampler_name}")
    cfg_device = spec.base.train.device
    gpus = lw.count_gpus(device, cfg_device) if jobs != 1 else 0
    plans = lw.plan_workers(jobs or lw.default_jobs(device, cfg_device, gpus), threads=threads, device=device,
                            config_device=cfg_device, gpus=gpus)
    click.echo(lw.describe_layout(plans, gpus))
    procs = lw.spawn_workers(spec.name, url, plans[1:], n_trials=n_trials, timeout=timeout, artifacts=artifacts,
                             hb=heartbeat_interval, grace=grace_period, storage_timeout=storage_timeout)
    finished = False
    try:
        _work(s, spec, url, n_trials=n_trials, timeout=timeout, device=plans[0]["device"] or device,
              threads=plans[0]["threads"], artifacts=artifacts, progress=progress, replay=table)
        finished = True
    finally:
        lw.stop_workers(procs, wait_only=finished, tick=_study_progress(s, spec, n_trials, on_change=True))
    return s, url


@study.command("run")
@_study_file_options("Override a base-config key for every trial (stored with the study).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Local workers (this process and jobs-1 children). Default: one per core, one torch thread "
                   "each (one per GPU on a CUDA machine).")
@click.option("--seed-with-paper", is_flag=True, help="Enqueue the paper's reference points as the first trials.")
@click.option("--replay", default=None, metavar="TABLE",
              help="Serve trials from a recorded-curve table instead of training (benchmarks/data/mnist1d_curves.csv): "
                   "the same study in seconds, charged the epochs real trials would cost (docs/studies.md).")
@_worker_options
def run(file, storage, name, overrides, jobs, seed_with_paper, replay, n_trials, timeout, device, threads, artifacts,
        heartbeat_interval, grace_period, storage_timeout, progress) -> None:
    """Create or resume the study FILE and run trials until its budget is met.

    The budget is --n-trials (else the file's budget.n_trials) complete trials in the whole study.
    Prints the study's progress after each trial and ends by printing the Pareto front and the
    commands to open the dashboard and to export.
    """
    spec = _load_spec(file, overrides, name)
    s, url = run_study(spec, storage, jobs=jobs, seed_with_paper=seed_with_paper, n_trials=n_trials, timeout=timeout,
                       device=device, threads=threads, artifacts=artifacts, heartbeat_interval=heartbeat_interval,
                       grace_period=grace_period, storage_timeout=storage_timeout, progress=progress, replay=replay,
                       overrides=list(overrides), name=name)
    _print_summary(s, spec, url)


@study.command("worker")
@click.argument("name")
@_storage_option
@_worker_options
def worker(name, storage, n_trials, timeout, device, threads, artifacts, heartbeat_interval, grace_period,
           storage_timeout, progress) -> None:
    """Join the stored study NAME from any machine and run trials until its budget is met.

    Start as many as you like, on any machines that reach the storage (and share --artifacts):
    --n-trials is the study's total, so all of them stop once it holds N complete trials.
    """
    from sdd_opt.study.runner import load_stored

    st, url = _worker_storage(storage, heartbeat_interval, grace_period, storage_timeout,
                              note=os.environ.get("SDD_OPT_LOCAL_WORKER") != "1", joining=True)
    s, spec = load_stored(name, st)
    n_trials = n_trials or spec.file.budget.n_trials
    if n_trials is None and timeout is None:
        raise UserError("no budget: give --n-trials or --timeout")
    _work(s, spec, url, n_trials=n_trials, timeout=timeout, device=device, threads=threads, artifacts=artifacts,
          progress=progress)


@study.command("list")
@_storage_option
def list_(storage) -> None:
    """List the studies in the storage with their trial counts."""
    import optuna

    from sdd_opt.study.storage import masked

    st, url = _open(storage, must_exist=True)
    summaries = optuna.get_all_study_summaries(st, include_best_trial=False)
    click.echo(f"storage: {masked(url)}")
    if not summaries:
        click.echo("no studies")
        return
    for s in summaries:
        dirs = ",".join(d.name.lower()[:3] for d in s.directions)
        click.echo(f"{s.study_name:<40} {s.n_trials:>5} trials  directions {dirs}  started {s.datetime_start or '-'}")


def _load(name, storage):
    from sdd_opt.study.runner import load_stored

    st, url = _open(storage, must_exist=True)
    s, spec = load_stored(name, st)
    return s, spec, url


def _measure_line(s, spec) -> str:
    from sdd_opt.study.measure import measure_of
    from sdd_opt.study.pareto import hypervolume

    hv = hypervolume(s, spec)
    return ("hypervolume " + (f"{hv:.4f}" if hv is not None else "-") + " (front of all levels selected on "
            f"validation, test accuracy x decades of weights removed, reference accuracy {measure_of(spec).ref_acc:g})")


def _print_summary(s, spec, url) -> None:
    from sdd_opt.study import reproduce as rp
    from sdd_opt.study.pareto import front_of_levels, front_table, levels_front
    from sdd_opt.study.runner import counts

    c = counts(s)
    click.echo(f"\n{spec.name}: {c['COMPLETE']} complete, {c['FAIL']} failed, {c['RUNNING']} running, {c['PRUNED']} "
               "pruned")
    if c["COMPLETE"]:
        if front_of_levels(spec):
            click.echo("Pareto front over every level of every trial (validation accuracy x sparsity):")
            click.echo(_format(levels_front(s, spec), "table"))
        else:
            click.echo("Pareto front (selected points):")
            click.echo(_format(front_table(s, spec), "table"))
        click.echo(_measure_line(s, spec))
    click.echo(f"\nopen the dashboard:  {rp.dashboard_command(url)}")
    click.echo(f"export the front:    {rp.export_command(spec, url)}")
    click.echo(f"export its models:   {rp.export_command(spec, url, weights=True)}")
    click.echo(f"reproduce the study: {rp.run_command(spec, url, rp.stored_how(s, spec))}")
    for line in rp.password_note(url):
        click.echo(line)


@study.command("status")
@click.argument("name")
@_storage_option
def status(name, storage) -> None:
    """Trials by state, front size and hypervolume of study NAME."""
    from sdd_opt.study.pareto import front_of_levels, levels_front
    from sdd_opt.study.runner import counts

    s, spec, url = _load(name, storage)
    c = counts(s)
    click.echo(f"study {name}: " + ", ".join(f"{k.lower()} {v}" for k, v in c.items() if v or k == "COMPLETE"))
    if c["COMPLETE"]:
        click.echo(f"front size {len(levels_front(s, spec)) if front_of_levels(spec) else len(s.best_trials)}; "
                   + _measure_line(s, spec))


def _format(df, fmt: str) -> str:
    if fmt == "csv":
        return df.to_csv(index=False).rstrip()
    if fmt == "json":
        return df.to_json(orient="records", indent=1)
    if df.empty:
        return "(empty)"
    return df.to_string(index=False, float_format=lambda v: f"{v:.4g}")


@study.command("pareto")
@click.argument("name")
@_storage_option
@click.option("--levels", is_flag=True, help="Front over every level of every trial instead of the selected points "
              "(the default for a study whose objectives are not val_acc and sparsity, e.g. curve_hv).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def pareto(name, storage, levels, fmt) -> None:
    """Print the Pareto front of study NAME."""
    from sdd_opt.study.pareto import front_of_levels, front_table, levels_front

    s, spec, _ = _load(name, storage)
    df = levels_front(s, spec) if levels or front_of_levels(spec) else front_table(s, spec)
    click.echo(_format(df, fmt))


@study.command("export")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for configs and front.csv.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--levels", is_flag=True, help="One config per Pareto-optimal level (over all levels of all trials; "
              "the default for a study whose objectives are not val_acc and sparsity, e.g. curve_hv).")
@click.option("--weights", is_flag=True, help="One folder per point of the front over all levels: config.yaml, "
              "model.pt (load with sdd_opt.load_model), metrics.json, provenance.json. Weights come from the "
              "artifact store; a level without them is retrained from its config (the output says which).")
@click.option("--artifacts", default=None, metavar="DIR", help=ARTIFACTS_HELP)
@_storage_option
def export(name, out, fmt, levels, weights, artifacts, storage) -> None:
    """Write one run config per Pareto-optimal trial of NAME, plus front.csv (with --weights: the models).

    Each config re-runs with `sdd-opt train --config FILE` and ends at the trial's selected point.
    """
    from sdd_opt.paths import check_output_dir

    check_output_dir(out)
    s, spec, url = _load(name, storage)
    if weights:
        _export_weights(s, spec, url, Path(out), artifacts)
        return
    from sdd_opt.study.export import export_front
    from sdd_opt.study.pareto import front_of_levels

    table = export_front(s, spec, Path(out), fmt, levels or front_of_levels(spec))
    click.echo(f"wrote {len(table)} config(s) and front.csv to {out}")


def _export_weights(s, spec, url, out: Path, artifacts) -> None:
    from sdd_opt.study.artifact_stores import open_artifact_store
    from sdd_opt.study.export_models import export_models

    table = export_models(s, spec, out, open_artifact_store(url, artifacts), log=click.echo)
    retrained = int((table["weights"] == "retrained").sum())
    click.echo(f"wrote {len(table)} model folder(s) (front over all levels) and front.csv to {out}: "
               f"{len(table) - retrained} from the artifact store, {retrained} retrained")


@click.command()
@_storage_option
@click.option("--artifacts", default=None, metavar="DIR", help=ARTIFACTS_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; keep 127.0.0.1 unless you "
                                                                     "mean to share it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
def dashboard(storage, artifacts, host, port) -> None:
    """Open optuna-dashboard on the study storage, with the trials' curve artifacts attached."""
    from sdd_opt.report.dashboard import serve

    serve(storage, artifacts, host, port, log=click.echo)


@click.group()
def storage() -> None:
    """Serve the study storage to many workers (gRPC proxy)."""


@storage.command("serve")
@_storage_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; the proxy has no authentication, so open it only on a trusted network.")
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=8, show_default=True,
              help="Server threads (= database connections, plus one).")
@click.option("--heartbeat-interval", type=click.IntRange(min=1), default=60, show_default=True,
              help="Seconds between checks for trials of dead workers.")
@click.option("--grace-period", type=click.IntRange(min=1), default=120, show_default=True,
              help="A trial without heartbeat for this long is failed and retried.")
@click.option("--storage-timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds a lost database connection is retried before a call fails.")
def serve(storage, host, port, threads, heartbeat_interval, grace_period, storage_timeout) -> None:
    """Run Optuna's gRPC storage proxy for --storage; workers use --storage grpc://HOST:PORT.

    One process holds the database connections for all workers (the database's connection
    limit no longer caps the number of workers), records their heartbeats and fails and
    re-queues the trials of dead workers.
    """
    from sdd_opt.study.storage.grpc_proxy import serve_storage

    serve_storage(storage, host, port, threads=threads, heartbeat_interval=heartbeat_interval,
                  grace_period=grace_period, storage_timeout=storage_timeout, log=click.echo)
