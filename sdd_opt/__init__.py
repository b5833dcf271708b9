"""sdd-opt: search for the antidote to sparse double descent with Optuna.

Public API (everything else, every module included, is an implementation detail)::

    from sdd_opt import RunConfig, load_config, run_curve, sdd_metrics, SDDMetrics, select_level, UserError
    from sdd_opt import open_study, run_study, Study     # a study as DataFrames and models (docs/python.md)
    from sdd_opt import load_model, evaluate_model       # a folder of `sdd-opt study export --weights`

``import sdd_opt`` stays light (no torch, no Optuna): the pieces that need them load on first use.
"""

from sdd_opt.config import RunConfig, load_config
from sdd_opt.curve import SDDMetrics, sdd_metrics, select_level
from sdd_opt.errors import UserError

__all__ = [
    "RunConfig",
    "SDDMetrics",
    "Study",
    "UserError",
    "evaluate_model",
    "load_config",
    "load_model",
    "open_study",
    "run_curve",
    "run_study",
    "sdd_metrics",
    "select_level",
]
__version__ = "0.1.0"

_LAZY = {"run_curve": "sdd_opt.imp", "open_study": "sdd_opt.api", "run_study": "sdd_opt.api", "Study": "sdd_opt.api",
         "load_model": "sdd_opt.exported", "evaluate_model": "sdd_opt.exported"}


def __getattr__(name: str):  # torch- and Optuna-heavy pieces load lazily so `sdd-opt --help` stays fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdd_opt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
