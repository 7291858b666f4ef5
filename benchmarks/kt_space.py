"""A cnn-search ``Space`` as KerasTuner hyperparameters, and KerasTuner values back to a
run config.

``declare`` registers every sampled parameter of the space on a KerasTuner
``HyperParameters`` object, in the space's order: a choice of booleans becomes
``hp.Boolean``, any other choice ``hp.Choice``, an int or float range ``hp.Int`` /
``hp.Float`` (``sampling="log"`` for log ranges, with the space's step).  A parameter's
``when`` conditions become nested ``hp.conditional_scope(parent, values)`` blocks, and a
model key that only some model kinds have is conditional on ``model`` being one of
them, exactly as ``Space.sample`` skips it.  Fixed entries are not hyperparameters:
the space supplies their values.  Conditions on a fixed entry are decided here, once.

``config_from_values`` then replays the active values through ``Space.sample`` with an
Optuna ``FixedTrial``, so KerasTuner trials become run configs by the same code that
samples them for Optuna.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from optuna.trial import FixedTrial

from search.core.config import MODEL_KINDS, RunConfig
from search.core.spaces import Param, Space
from search.core.validate import field_names

__all__ = ["declare", "conditions", "config_from_values"]


def _model_kinds(space: Space, base: RunConfig) -> tuple[Param | None, tuple[str, ...]]:
    for p in space.params:
        if (p.section, p.key) == ("model", "kind"):
            return p, tuple(p.possible_values() or ())
    return None, (base.model.kind,)


def conditions(space: Space, base: RunConfig) -> dict[str, tuple[tuple[str, tuple[Any, ...]], ...] | None]:
    """For each sampled parameter, the (parent, values) conditions KerasTuner must see;
    None for a parameter that is never active (it depends on a fixed value it never has)."""
    kind_param, kinds = _model_kinds(space, base)
    fixed = {p.name: p.value for p in space.params if p.kind == "fixed"}
    if kind_param is None:
        fixed["model"] = base.model.kind
    out: dict[str, tuple[tuple[str, tuple[Any, ...]], ...] | None] = {}
    for p in space.params:
        if p.kind == "fixed":
            continue
        conds: list[tuple[str, tuple[Any, ...]]] = list(p.when)
        if p.section == "model" and p.key != "kind":
            owners = tuple(k for k in kinds if p.key in field_names(MODEL_KINDS[k]))
            if set(owners) != set(kinds):
                conds.append(("model", owners))
        active: bool | None = True
        kept: list[tuple[str, tuple[Any, ...]]] = []
        for parent, allowed in conds:
            if parent in fixed:
                active = active and fixed[parent] in allowed
            elif out.get(parent, ()) is None:
                active = False  # the parent itself is never active
            else:
                kept.append((parent, tuple(allowed)))
        out[p.name] = tuple(kept) if active else None
    return out


def declare(hp: Any, space: Space, base: RunConfig) -> None:
    """Register the space's parameters on KerasTuner ``hp`` (inside their conditions)."""
    conds = conditions(space, base)
    for p in space.params:
        if p.kind == "fixed" or conds[p.name] is None:
            continue
        with ExitStack() as stack:
            for parent, allowed in conds[p.name]:
                stack.enter_context(hp.conditional_scope(parent, list(allowed)))
            _declare_one(hp, p)


def _declare_one(hp: Any, p: Param) -> None:
    if p.kind == "categorical":
        if all(isinstance(c, bool) for c in p.choices):
            hp.Boolean(p.name, default=p.choices[0])
        else:
            hp.Choice(p.name, list(p.choices))
    elif p.kind == "int":
        step = int(p.step) if p.step else None
        hp.Int(p.name, int(p.low), int(p.high), step=step, sampling="log" if p.log else "linear")
    else:
        hp.Float(p.name, float(p.low), float(p.high), step=p.step, sampling="log" if p.log else "linear")


def config_from_values(values: dict[str, Any], space: Space, base: RunConfig) -> RunConfig:
    """The run config of KerasTuner's active ``values`` (extra keys such as
    ``tuner/epochs`` are ignored); choices come back as the space's own values, so a
    KerasTuner int 1 never stands in for ``True``."""
    params = dict(values)
    for p in space.params:
        if p.kind == "categorical" and p.name in params:
            params[p.name] = next((c for c in p.choices if c == params[p.name]), params[p.name])
    return space.sample(FixedTrial(params), base)
