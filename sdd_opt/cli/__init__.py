"""The ``sdd-opt`` command line: ``app`` (the root group, ``train``, ``plot``) composes ``study``,
``demo`` and ``report``. Importing this package builds no command, so importing one command module
registers nothing."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``sdd-opt`` and ``python -m sdd_opt``."""
    from sdd_opt.cli.app import main as run

    run(argv)
