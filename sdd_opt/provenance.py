"""What a result was made with: library versions, machine and device.

Recorded with every run and every trial so that a number can be traced back to its software.
"""

from __future__ import annotations

import importlib.metadata
import platform
import socket
from datetime import datetime, timezone

_PACKAGES = ("sdd-opt", "torch", "torchvision", "optuna", "numpy", "pandas", "sqlalchemy", "mnist1d")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def provenance(device: str | None = None, threads: int | None = None) -> dict:
    info = {
        "versions": versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        info["device"] = device
    if threads is not None:
        info["threads"] = threads
    return info
