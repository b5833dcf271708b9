"""sdd-opt: search for the antidote to sparse double descent with Optuna.

Public API (everything else is an implementation detail)::

    from sdd_opt import RunConfig, load_config, run_curve, sdd_metrics
"""

from sdd_opt.config import RunConfig, load_config
from sdd_opt.curve import SDDMetrics, sdd_metrics, select_level
from sdd_opt.errors import UserError

__all__ = ["RunConfig", "load_config", "run_curve", "sdd_metrics", "SDDMetrics", "select_level", "UserError"]
__version__ = "0.1.0"


def __getattr__(name: str):  # torch-heavy pieces load lazily so `sdd-opt --help` stays fast
    if name == "run_curve":
        from sdd_opt.imp import run_curve

        return run_curve
    raise AttributeError(name)
