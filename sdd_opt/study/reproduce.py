"""The commands that reproduce a study: the one place that spells them.

The dashboard note, the HTML report, the end of ``study run`` and ``sdd-opt demo``, ``study
create``'s hint and the exported configs' headers all print or store a command for the user, and
each must re-make what the study holds when run as written. So a run command carries every flag
that changes the result: ``--storage`` (without its password, which comes from
``$SDD_OPT_STORAGE_PASSWORD``: what is stored holds none), ``--name`` when it was given, the
command line's ``--set``, ``--seed-with-paper``, ``--replay TABLE``, ``--n-trials`` / ``--timeout`` /
``--jobs`` when given. How a study was run is stored with it (:data:`HOW_ATTR`), so a command printed later
(the report, a resumed run's summary) carries the same flags. ``tests/study/test_reproduce.py``
runs every such command at tiny scale and compares the result with the original.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Optional

from sdd_opt.errors import url_without_password

if TYPE_CHECKING:
    import optuna

    from sdd_opt.study.spec import StudySpec

HOW_ATTR = "sdd_opt.how"


@dataclass(frozen=True)
class HowRun:
    """The command-line flags a study was run with that change what it holds."""

    overrides: tuple[str, ...] = ()       # the command line's --set (the file's own `set:` is in the file)
    name: Optional[str] = None             # --name, when given
    seed_with_paper: bool = False
    replay: Optional[str] = None           # --replay TABLE, as given
    n_trials: Optional[int] = None         # --n-trials / --timeout, when given (else the file's budget)
    timeout: Optional[float] = None
    jobs: Optional[int] = None             # --jobs, when given (--jobs 1 runs the trials in a fixed order)
    stored: bool = field(default=True, compare=False)  # False: an older study that recorded none of this

    def to_attr(self) -> dict:
        data = asdict(self)
        data.pop("stored")
        data["overrides"] = list(self.overrides)
        return data

    @classmethod
    def from_attr(cls, data: dict) -> "HowRun":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "stored"}
        return cls(**{**known, "overrides": tuple(known.get("overrides", ()))})

    def merged(self, later: "HowRun") -> "HowRun":
        """What a resumed run adds: paper trials, a replay table, a new budget (overrides and name stay)."""
        return replace(self, seed_with_paper=self.seed_with_paper or later.seed_with_paper,
                       replay=later.replay or self.replay, n_trials=later.n_trials or self.n_trials,
                       timeout=later.timeout or self.timeout, jobs=later.jobs or self.jobs)


def stored_how(study: "optuna.Study", spec: "StudySpec") -> HowRun:
    """The flags stored with ``study``; for a study stored before they were, its overrides and name."""
    data = study.user_attrs.get(HOW_ATTR)
    if isinstance(data, dict):
        return HowRun.from_attr(data)
    return HowRun(overrides=tuple(spec.overrides), name=spec.name, stored=False)


def remember(study: "optuna.Study", how: HowRun) -> bool:
    """Store ``how`` (merged into what the study holds); True when that changed anything."""
    data = study.user_attrs.get(HOW_ATTR)
    old = HowRun.from_attr(data) if isinstance(data, dict) else None
    new = old.merged(how) if old is not None else how
    if new == old:
        return False
    study.set_user_attr(HOW_ATTR, new.to_attr())
    return True


def _q(text: str) -> str:
    return shlex.quote(str(text))


def storage_arg(url: str) -> str:
    """``--storage 'URL'`` with no password at all (it comes from ``$SDD_OPT_STORAGE_PASSWORD``)."""
    bare = url_without_password(url)
    return f"--storage '{bare}'" if "'" not in bare else f"--storage {_q(bare)}"


def needs_password(url: str) -> bool:
    """Whether the commands' URL lost a password: then they need ``$SDD_OPT_STORAGE_PASSWORD``."""
    return bool(url) and url_without_password(url) != url


def run_command(spec: "StudySpec", url: str, how: HowRun) -> str:
    """``sdd-opt study run FILE --storage URL ...``: re-makes the study (in a new storage, the same trials)."""
    parts = [f"sdd-opt study run {_q(spec.source)} {storage_arg(url)}"]
    if how.name is not None:
        parts.append(f"--name {_q(how.name)}")
    parts += [f"--set {_q(o)}" for o in how.overrides]
    if how.seed_with_paper:
        parts.append("--seed-with-paper")
    if how.replay:
        parts.append(f"--replay {_q(how.replay)}")
    if how.n_trials is not None:
        parts.append(f"--n-trials {how.n_trials}")
    if how.timeout is not None:
        parts.append(f"--timeout {how.timeout:g}")
    if how.jobs is not None:
        parts.append(f"--jobs {how.jobs}")
    return " ".join(parts)


def export_command(spec: "StudySpec", url: str, levels: bool = False, weights: bool = False) -> str:
    """``weights``: the front's models too (``study export --weights``), into their own folder."""
    out = f"exported/{spec.name}" + ("-models" if weights else "")
    return (f"sdd-opt study export {_q(spec.name)} {storage_arg(url)} --out {_q(out)}"
            + (" --levels" if levels else "") + (" --weights" if weights else ""))


def pareto_command(spec: "StudySpec", url: str, levels: bool = False) -> str:
    return f"sdd-opt study pareto {_q(spec.name)} {storage_arg(url)}" + (" --levels" if levels else "")


def curves_command(spec: "StudySpec", url: str) -> str:
    return f"sdd-opt study curves {_q(spec.name)} {storage_arg(url)} --out curves.png"


def report_command(spec: "StudySpec", url: str) -> str:
    return f"sdd-opt report {_q(spec.name)} {storage_arg(url)} --out report.html"


def dashboard_command(url: str) -> str:
    return f"sdd-opt dashboard {storage_arg(url)}"


def worker_command(spec: "StudySpec", url: str) -> str:
    return f"sdd-opt study worker {_q(spec.name)} {storage_arg(url)} --n-trials N"


def train_command(config_name: str, stem: str) -> str:
    """An exported config's re-run, from the export folder (the config is named as it sits there)."""
    return f"sdd-opt train --config {_q(config_name)} --out {_q(f'storage/runs/{stem}')}"


def password_note(url: str) -> list[str]:
    """One line for the user when the printed commands lost the URL's password."""
    return ["(the commands leave the password out: set $SDD_OPT_STORAGE_PASSWORD before running them)"] \
        if needs_password(url) else []
