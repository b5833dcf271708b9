"""A searched parameter: its schema (``Param``), the order keys are sampled in, and how a config value
is spelled as Optuna parameters (the one place that knows the ``.off`` encoding).

A float searched with ``zero: true`` is two parameters: ``<key>.off`` (categorical False/True)
and, only when it is False, ``<key>`` itself -- so a sampler can search "no l2, or l2 in a log
range". Sampling (``space``), grids, the paper's enqueued trials and reports all go through here.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdd_opt.config import get_dotted
from sdd_opt.errors import UserError

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One searched config key."""

    type: Literal["float", "int", "categorical"]
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    zero: bool = Field(False, description="float only: 0 is also a choice (e.g. no l2), beside the log range")
    choices: Optional[list[Any]] = None
    zero_below: Optional[float] = Field(None, gt=0.0, description="float only: a sampled value below this means 0 "
                                        "(e.g. no l2), so that 'none' lies inside one range the sampler sees whole")
    when: Optional[dict[str, Any]] = Field(None, description="only applies when these keys have these values")
    sample_always: bool = Field(False, description="with 'when': draw it in every trial (the sampler sees the whole "
                                "space) but set it in the config only when 'when' holds")

    def applies(self, data: dict) -> bool:
        """Whether this key's ``when`` holds for the config mapping ``data`` (always, without ``when``)."""
        return all(get_dotted(data, k) == v for k, v in (self.when or {}).items())

    @model_validator(mode="after")
    def _check(self) -> "Param":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            if any(v is not None for v in (self.low, self.high, self.step)) or self.log or self.zero:
                raise ValueError("categorical takes 'choices' only (no low/high/step/log/zero)")
            if any(not isinstance(c, (type(None), bool, int, float, str)) for c in self.choices):
                raise ValueError("categorical choices must be plain values (number, string, true/false, null)")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.type} takes low/high, not 'choices'")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) > high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log range needs low > 0 (got {self.low}); use zero: true to also try 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0 (got {self.step})")
        if self.zero and self.type != "float":
            raise ValueError("zero: true is for float parameters")
        if self.zero_below is not None:
            if self.type != "float":
                raise ValueError("zero_below is for float parameters")
            if self.zero:
                raise ValueError("zero and zero_below cannot be combined")
            if not self.low < self.zero_below <= self.high:
                raise ValueError(f"zero_below ({self.zero_below}) must lie in ({self.low}, {self.high}]")
        if self.sample_always and not self.when:
            raise ValueError("sample_always goes with 'when'")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("int range needs whole numbers")
        return self


def sampling_order(space: dict[str, Param], source: str = "study") -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in order:
            return
        if key in visiting:
            raise UserError(f"{source}: search_space.{key}: 'when' conditions form a cycle")
        visiting.add(key)
        for cond in (space[key].when or {}):
            if cond in space:
                visit(cond)
        visiting.discard(key)
        order.append(key)

    for key in space:
        visit(key)
    return order
