"""Helpers for tests of code built on sdd-opt (as ``optuna.testing``): run the CLI in-process."""

from __future__ import annotations


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``sdd-opt ARGS`` in this process; return (exit code, stdout, stderr) via pytest's capsys."""
    from sdd_opt.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
