"""Helpers for tests of code built on sdd-opt (as ``optuna.testing``): run the CLI in-process."""

from __future__ import annotations


def cli_exit_code(*args: str) -> int:
    """Run ``sdd-opt ARGS`` in this process and return its exit code (output left to the caller)."""
    from sdd_opt.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code
    return 0


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``sdd-opt ARGS`` in this process; return (exit code, stdout, stderr) via pytest's capsys."""
    code = cli_exit_code(*args)
    out = capsys.readouterr()
    return code, out.out, out.err


def tiny_study(tmp, *, levels: int = 2, rate: float = 0.3, **changes) -> dict:
    """A study mapping over a tiny synthetic problem (2 epochs a level): trials take about a second.

    ``changes`` replace top-level keys (name, search_space, sampler, budget, ...).
    """
    study = {
        "name": "tiny",
        "base": {
            "data": {"name": "synthetic1d", "data_dir": str(tmp / "data"), "noise": 0.2},
            "model": {"name": "cnn1d", "width": 8},
            "train": {"epochs": 2, "batch_size": 64, "threads": 1},
            "prune": {"levels": levels, "rate": rate},
        },
        "search_space": {
            "train.weight_decay": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "zero": True},
            "distill.enabled": {"type": "categorical", "choices": [False, True]},
            "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "step": 0.1},
        },
        "sampler": {"name": "random", "seed": 0},
        "select": {"rule": "best"},
        "budget": {"n_trials": 3},
    }
    study.update(changes)
    return study
