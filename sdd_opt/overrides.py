"""Refuse an override that would be silently lost, naming both keys.

Two ways a ``--set`` (or a study file's ``set:``) used to be accepted and then ignored:

* the key is searched: every trial replaces it with the sampled value
  (``study create studies/mnist1d_search.yaml --set prune.rate=0.3``);
* ``prune.levels`` while ``prune.target_sparsity`` is set: the target decides the number of
  levels (``--set prune.levels=3`` on a study whose base has a target sparsity).

Both stop with one line (exit 2) before anything is written.
"""

from __future__ import annotations

from typing import Iterable, Optional

from sdd_opt.config import RunConfig, parse_override
from sdd_opt.errors import UserError


def _overlaps(a: str, b: str) -> bool:
    """Same key, or one is a section holding the other (``distill`` and ``distill.alpha``)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def refuse_lost_overrides(cfg: RunConfig, overrides: Iterable[str], searched: Iterable[str] = (),
                          label: str = "--set") -> None:
    """Raise UserError if an override of ``cfg`` is replaced by a search or by ``prune.target_sparsity``.

    ``cfg`` is the config after every override; ``searched`` the study's searched keys.
    """
    searched = list(searched)
    if "prune.target_sparsity" in searched:
        target, fix = "search_space.prune.target_sparsity", "search one of the two keys"
    elif cfg.prune.target_sparsity is not None:
        target = f"prune.target_sparsity ({cfg.prune.target_sparsity})"
        fix = "set prune.target_sparsity= (empty: none) too, or change the target"
    else:
        target = fix = None
    for item in overrides:
        key = parse_override(item)[0]
        hit: Optional[str] = next((s for s in searched if _overlaps(key, s)), None)
        if hit is not None:
            raise UserError(f"{label} {key}: conflicts with search_space.{hit}, which every trial samples "
                            f"(the override would be lost); remove one of them")
        if _overlaps(key, "prune.levels") and key != "prune" and target is not None:
            raise UserError(f"{label} {key}: {target} decides the number of levels, so prune.levels would be "
                            f"ignored; {fix}")


def refuse_lost_study_overrides(spec, cli_overrides: Iterable[str]) -> None:
    """The check for a study: its file's ``set:`` and the command line's ``--set``."""
    space = list(spec.search_space)
    file_set = [f"{k}=" for k in spec.file.set]  # only the keys matter
    refuse_lost_overrides(spec.base, file_set, space, label=f"{spec.source}: set:")
    refuse_lost_overrides(spec.base, cli_overrides, space)
    if "prune.levels" in space and spec.base.prune.target_sparsity is not None:
        raise UserError(f"{spec.source}: search_space.prune.levels: prune.target_sparsity "
                        f"({spec.base.prune.target_sparsity}) decides the number of levels; search one of them")
