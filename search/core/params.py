"""One parameter of a search space: a fixed value, a range or a choice, with an optional
condition (``when``) and prior.  ``search.core.spaces`` gathers them into a ``Space``;
``search.core.custom`` declares them from a model function's ``hp`` calls."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

if typing.TYPE_CHECKING:
    import optuna

__all__ = ["Param", "RENAMED", "ABSENT"]

RENAMED = {("optimizer", "name"): "optimizer", ("schedule", "name"): "schedule", ("model", "kind"): "model"}
ABSENT = object()


@dataclass(frozen=True)
class Param:
    """One entry of a space: fixed, an int/float range, or a categorical choice."""

    section: str
    key: str
    kind: Literal["fixed", "int", "float", "categorical"]
    value: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    prior: Any = None  # where the prior-guided sampler centres its draws (None: the recipe's value)

    @property
    def name(self) -> str:
        return RENAMED.get((self.section, self.key), self.key)

    def possible_values(self) -> tuple[Any, ...] | None:
        """The finite set of values this parameter can take, or None for a range."""
        if self.kind == "fixed":
            return (self.value,)
        if self.kind == "categorical":
            return self.choices
        return None

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter can take (for a range: inside it, on its step)."""
        if self.kind in ("fixed", "categorical"):
            return any(type(value) is type(v) and value == v for v in self.possible_values() or ())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        if self.kind == "int" and value != int(value):
            return False
        return not self.step or math.isclose((value - self.low) / self.step, round((value - self.low) / self.step))

    def applies(self, taken: dict[str, Any]) -> bool:
        """Whether this parameter's ``when`` conditions hold for the values ``taken`` so far."""
        return all(taken.get(k, ABSENT) in allowed for k, allowed in self.when)

    def describe(self) -> str:
        if self.kind == "fixed":
            text = f"= {self.value!r}"
        elif self.kind == "categorical":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = f"{self.kind} in [{self.low}, {self.high}]" + (" log" if self.log else "")
            text += f" step {self.step}" if self.step else ""
        if self.when:
            text += "  when " + " and ".join(f"{k} in {list(v)}" for k, v in self.when)
        if self.prior is not None:
            text += f"  prior {self.prior!r}"
        return text

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
