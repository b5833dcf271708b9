"""How a config value is spelled as Optuna parameters (the one place that knows the ``.off`` encoding).

A float searched with ``zero: true`` is two parameters: ``<key>.off`` (categorical False/True)
and, only when it is False, ``<key>`` itself -- so a sampler can search "no l2, or l2 in a log
range". Sampling (``space``), grids, the paper's enqueued trials and reports all go through here.
"""

from __future__ import annotations

from typing import Any, Mapping

OFF_SUFFIX = ".off"


def off_name(key: str) -> str:
    """The categorical parameter that switches a ``zero: true`` float to exactly 0."""
    return f"{key}{OFF_SUFFIX}"


def encode_zeroable(key: str, value: float) -> dict[str, Any]:
    """The parameters that make a ``zero: true`` float ``value`` (for ``enqueue_trial``)."""
    if value == 0.0:
        return {off_name(key): True}
    return {off_name(key): False, key: value}


def decode(params: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """The config value ``key`` that ``params`` stands for (0.0 when its ``.off`` switch is on)."""
    if params.get(off_name(key)) is True:
        return 0.0
    return params.get(key, default)
