"""Command line: ``sdd-opt train | study ... | dashboard | report``.

Every user mistake surfaces as one line ``error: <field>: <reason>`` with exit code 2, before
training starts; Ctrl-C (or SIGTERM, as a batch scheduler sends) leaves finished work on disk and
says how to resume.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sdd_opt.errors import EXIT_USAGE, DivergedError, UserError, mask_secrets
from sdd_opt.study.signals import Terminated, sigterm_as_interrupt

SET_HELP = "Override a config key, e.g. --set train.epochs=5 --set distill.enabled=true (repeatable)."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sdd-opt")
def cli() -> None:
    """Search for the antidote to sparse double descent: l2, distillation and pruning schedules,
    explored by Optuna studies stored in SQLite, PostgreSQL or MySQL.

    \b
    Quick start:
      sdd-opt train --config studies/mnist1d_baseline.yaml --out storage/runs/baseline
      sdd-opt study run studies/mnist1d_search.yaml
      sdd-opt dashboard
    """


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Run config YAML (a study file's base config works too). Default: built-in MNIST-1D defaults.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory. Default: storage/runs/<hash of the config>.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last finished level.")
@click.option("--checkpoints", type=click.Choice(["all", "last"]), default="all", show_default=True,
              help="Keep every level's checkpoint or only the last one.")
@click.option("--quiet", is_flag=True, help="No progress bar; one line per level.")
def train(config_path, out, overrides, resume, checkpoints, quiet) -> None:
    """Train one configuration through every pruning level and write its SDD curve.

    Writes config.yaml, curve.csv, metrics.json, curve.png and checkpoints/ into --out, and
    prints the sparse-double-descent metrics (dip, peak, gap) at the end.
    """
    from sdd_opt.config import apply_overrides, build_config, load_config, read_yaml
    from sdd_opt.imp import run_curve
    from sdd_opt.overrides import refuse_lost_overrides
    from sdd_opt.paths import check_output_dir
    from sdd_opt.preflight import check_run

    if config_path is not None:
        raw = read_yaml(config_path)
        if "base" in raw or "search_space" in raw:  # a study file: train its base config
            from sdd_opt.study.spec import load_study_spec

            spec = load_study_spec(config_path, list(overrides))
            cfg = spec.base
        else:
            cfg = build_config(apply_overrides(raw, list(overrides)), source=str(config_path), blame=list(overrides))
    else:
        cfg = load_config(None, list(overrides))
    refuse_lost_overrides(cfg, overrides)
    check_run(cfg)
    out_dir = Path(out) if out else Path("storage/runs") / cfg.hash()
    check_output_dir(out_dir)
    if resume and not ((out_dir / "config.yaml").is_file() or (out_dir / "curve.csv").is_file()):
        raise UserError(f"--resume: {out_dir} holds no run (no config.yaml or curve.csv); drop --resume to start one "
                        "there")
    click.echo(f"run {cfg.hash()} -> {out_dir}")
    try:
        with sigterm_as_interrupt():
            result = run_curve(cfg, out_dir, resume=resume, keep_checkpoints=checkpoints, progress=not quiet,
                               log=click.echo)
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        click.echo(f"\n{how}: finished levels are saved in {out_dir}; continue with --resume", err=True)
        sys.exit(128 + exc.signum if isinstance(exc, Terminated) else 130)
    except DivergedError as exc:
        click.echo(f"error: {exc}; finished levels are saved in {out_dir} (lower train.lr or add l2)", err=True)
        sys.exit(1)
    m = result.metrics.get("test") or result.metrics.get("val") or {}
    if m:
        click.echo(
            f"dense {m['dense_acc']:.3f} | dip {m['dip_acc']:.3f} @ {m['dip_sparsity']:.3f} | "
            f"peak {m['peak_acc']:.3f} @ {m['peak_sparsity']:.3f} | sdd_gap {m['sdd_gap']:.3f} | "
            f"sdd_present: {str(m['sdd_present']).lower()} (test accuracy)")
    if result.stopped_early:
        click.echo(f"stopped early: {result.stop_reason}")
    click.echo(f"wrote {out_dir}/curve.csv, metrics.json, curve.png")


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--label", "labels", multiple=True, help="Legend label per run (default: directory name).")
@click.option("--metric", type=click.Choice(["test_acc", "val_acc", "train_acc"]), default="test_acc",
              show_default=True)
@click.option("--title", default="", help="Figure title.")
def plot(runs, out, labels, metric, title) -> None:
    """Overlay the curves of several run directories (paper style: log scale of remaining weights)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from sdd_opt.paths import check_output_file
    from sdd_opt.plots import format_sparsity_axis
    from sdd_opt.rundir import read_curve

    if labels and len(labels) != len(runs):
        raise UserError(f"--label: give one per run ({len(runs)}), got {len(labels)}")
    check_output_file(out, suffixes=tuple(sorted(f".{k}" for k in FigureCanvasAgg.get_supported_filetypes())))
    curves = []
    for run in runs:  # every curve is read (and checked) before anything is drawn or written
        rows = read_curve(Path(run) / "curve.csv")
        if not rows:
            raise UserError(f"{run}: no curve.csv (not a finished sdd-opt run directory)")
        curves.append(rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for i, (run, rows) in enumerate(zip(runs, curves)):
        x = [max(1.0 - r["sparsity"], 1e-6) * 100 for r in rows]
        ax.plot(x, [r[metric] for r in rows], marker="o", markersize=3, label=labels[i] if labels else Path(run).name)
    format_sparsity_axis(ax)
    ax.set_ylabel(metric.replace("_acc", " accuracy"))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    click.echo(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2, never a traceback."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*(is experimental|experimental feature).*")
    try:
        cli.main(args=argv, prog_name="sdd-opt", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {mask_secrets(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {mask_secrets(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # the filesystem refused (full disk, a file vanished): one line naming the file
        where = exc.filename if exc.filename is not None else type(exc).__name__
        click.echo(f"error: {mask_secrets(str(where))}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)


# (module, command, group it joins: None for the top level). The CLI composes study/ and report/
# here; no module adds itself to another's group on import.
SUBCOMMANDS = (
    ("sdd_opt.cli.study", "study", None),
    ("sdd_opt.cli.study", "dashboard", None),
    ("sdd_opt.cli.study", "storage", None),
    ("sdd_opt.cli.demo", "demo", None),
    ("sdd_opt.cli.report", "report", None),
    ("sdd_opt.cli.report", "curves", "study"),
)


def _register_subcommands() -> None:
    """Attach the commands defined in their own modules (study, dashboard, storage, demo, report, study curves)."""
    import importlib

    for module, name, group in SUBCOMMANDS:  # a module or command that is not there fails here, loudly
        mod = importlib.import_module(module)
        parent = cli if group is None else cli.commands[group]
        if name not in parent.commands:
            parent.add_command(getattr(mod, name))


_register_subcommands()
