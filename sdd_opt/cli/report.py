"""``sdd-opt report NAME --out report.html`` and ``sdd-opt study curves NAME --out curves.png``.

Importing this module registers nothing: ``sdd_opt.cli`` adds ``report`` to the top level and
``curves`` to the ``study`` group (its ``SUBCOMMANDS`` table).
"""

from __future__ import annotations

from pathlib import Path

import click

from sdd_opt.cli.study import STORAGE_HELP
from sdd_opt.errors import UserError

CURVE_METRICS = ("test_acc", "val_acc", "train_acc")


def _load(name: str, storage):
    from sdd_opt.study.runner import load_stored
    from sdd_opt.study.storage import StorageSettings, open_storage, resolve_url

    url = resolve_url(storage)
    st = open_storage(url, StorageSettings(heartbeat_interval=None, grace_period=None, max_retry=None,
                                              must_exist=True))
    s, spec = load_stored(name, st)
    return s, spec, url


def _writable(out: str, suffixes: tuple[str, ...]) -> Path:
    """``out`` checked as a file to write (type, folder, permissions) -- created only once there is
    something to write."""
    from sdd_opt.paths import check_output_file

    return check_output_file(out, "--out", suffixes)


@click.command("report")
@click.argument("name")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="HTML file to write. Default: <NAME>-report.html in the current directory.")
@click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)
@click.option("--trial-figures/--no-trial-figures", default=True, show_default=True,
              help="Embed each Pareto-optimal trial's curve figure.")
def report(name, out, storage, trial_figures) -> None:
    """Write one self-contained HTML report of study NAME (opens offline, in any browser).

    \b
    Settings, the Pareto front of the selected points and the front over all levels (plots and
    table), all curves overlaid by remedy and l2 weight, the SDD gap against the l2 weight,
    parameter importances per objective, the hypervolume over trials, every trial.
    """
    from sdd_opt.paths import safe_stem
    from sdd_opt.report.html import write_report

    path = _writable(out or f"{safe_stem(name)}-report.html", (".html", ".htm"))
    s, spec, url = _load(name, storage)
    write_report(path, s, spec, url, trial_figures=trial_figures)
    n = sum(1 for t in s.get_trials(deepcopy=False) if t.state.name == "COMPLETE")
    click.echo(f"wrote {path} ({n} complete trials, {path.stat().st_size / 1e6:.1f} MB, self-contained)")


@click.command("curves")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Figure file: .png, .pdf or .svg.")
@click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)
@click.option("--metric", "metrics", multiple=True, type=click.Choice(CURVE_METRICS),
              help="One panel per metric (repeatable). Default: test_acc and train_acc (noisy labels), as in the "
                   "papers.")
@click.option("--front", "front_only", is_flag=True, help="Only the Pareto-optimal trials.")
@click.option("--trials", default=None, metavar="N,N,...", help="Only these trial numbers.")
@click.option("--title", default=None, help="Figure title (default: the study name).")
def curves(name, out, storage, metrics, front_only, trials, title) -> None:
    """Accuracy vs remaining weights of study NAME's trials, overlaid, in the papers' style.

    Log-scaled remaining weights, grey for no remedy, blues for l2 and oranges for distillation
    (darker = larger l2 weight); Pareto-optimal trials drawn thick.
    """
    from sdd_opt.plots import plot_curves
    from sdd_opt.report.data import complete, curve_items

    path = _writable(out, (".png", ".pdf", ".svg"))
    wanted = None
    if trials:
        try:
            wanted = {int(x) for x in trials.split(",") if x.strip()}
        except ValueError:
            raise UserError(f"--trials {trials}: expected comma-separated trial numbers") from None
    s, spec, _ = _load(name, storage)
    done = complete(s)
    try:
        front = {t.number for t in s.best_trials} if done and len(s.directions) > 1 else \
            ({s.best_trial.number} if done else set())
    except ValueError:
        front = set()
    chosen = [t for t in done if (not front_only or t.number in front) and (wanted is None or t.number in wanted)]
    items = curve_items(chosen)
    if not items:
        raise UserError(f"study {name!r}: no complete trial with a curve to plot"
                        + (" among the selected ones" if (front_only or wanted) else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(items, path, metrics=metrics or ("test_acc", "train_acc"), title=title or f"{spec.name}",
                highlight=sorted(front))
    click.echo(f"wrote {path} ({len(items)} curves)")

