"""The hyperparameter object a model function of the user's own asks for its values
(``search.core.custom``): KerasTuner's names (``Int``, ``Float``, ``Choice``,
``Boolean``, ``Fixed``, ``conditional_scope``, ``values``, ``get``) and Optuna's
(``suggest_int``, ``suggest_float``, ``suggest_categorical``).  Each value it gives is
also declared as a space parameter (``Param``, section ``model``) with its default as its
prior, so the prior-guided sampler, warm start and the dashboard treat it as any other."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from search.core.params import Param
from search.errors import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = ["HyperParameters"]


class HyperParameters:
    """What a model function asks for its values.  With ``trial`` each new name is drawn by
    the study's sampler; without, it is ``values[name]`` where given, else its default.
    ``values`` (after the call): the values asked for, by name; ``declared``: each as a
    space parameter (``Param``) with its default as its prior; ``reserved``: names the
    space already uses (asking for one is an error: rename it in your function)."""

    def __init__(
        self,
        trial: optuna.trial.BaseTrial | None = None,
        values: dict[str, Any] | None = None,
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        self._trial = trial
        self._given = dict(values or {})
        self._reserved = reserved
        self._scopes: list[tuple[str, tuple[Any, ...]]] = []
        self.values: dict[str, Any] = {}
        self.declared: dict[str, Param] = {}

    # -- KerasTuner's names -----------------------------------------------------------

    def Int(  # noqa: N802 (KerasTuner's name)
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> int | None:
        log = _log(sampling, name)
        low, high = int(min_value), int(max_value)
        step_ = None if log or not step or step == 1 else int(step)
        prior = int(default) if default is not None else low
        return self._take(Param("model", name, "int", low=low, high=high, log=log, step=step_, prior=prior),
                          parent_name, parent_values)  # fmt: skip

    def Float(  # noqa: N802
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> float | None:
        log = _log(sampling, name)
        low, high = float(min_value), float(max_value)
        prior = float(default) if default is not None else low
        param = Param("model", name, "float", low=low, high=high, log=log, step=None if log else step, prior=prior)
        return self._take(param, parent_name, parent_values)

    def Choice(  # noqa: N802
        self,
        name: str,
        values: Any,
        ordered: bool | None = None,
        default: Any = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        choices = tuple(values)
        if not choices:
            raise ConfigError(f"hp.Choice('{name}'): no values to choose from; give at least one")
        prior = default if default is not None else choices[0]
        return self._take(Param("model", name, "categorical", choices=choices, prior=prior), parent_name, parent_values)

    def Boolean(  # noqa: N802
        self, name: str, default: bool = False, parent_name: str | None = None, parent_values: Any = None
    ) -> bool | None:
        param = Param("model", name, "categorical", choices=(False, True), prior=bool(default))
        return self._take(param, parent_name, parent_values)

    def Fixed(self, name: str, value: Any, parent_name: str | None = None, parent_values: Any = None) -> Any:  # noqa: N802
        if not self._active(parent_name, parent_values):
            return None
        self.values[name] = value
        return value

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """The values asked for inside are active only while ``parent_name``'s value is one of
        ``parent_values``; an inactive one is None, as in KerasTuner."""
        self._scopes.append((parent_name, _as_tuple(parent_values)))
        try:
            yield
        finally:
            self._scopes.pop()

    def get(self, name: str) -> Any:
        if name not in self.values:
            raise KeyError(f"hp.get('{name}'): no value of that name was asked for yet")
        return self.values[name]

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    # -- Optuna's names ----------------------------------------------------------------

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self.Int(name, low, high, step=step, sampling="log" if log else "linear")  # type: ignore[return-value]

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        return self.Float(name, low, high, step=step, sampling="log" if log else "linear")  # type: ignore[return-value]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.Choice(name, choices)

    # -- one value ---------------------------------------------------------------------

    def _active(self, parent_name: str | None, parent_values: Any) -> bool:
        conditions = [*self._scopes]
        if parent_name is not None:
            conditions.append((parent_name, _as_tuple(parent_values)))
        return all(self.values.get(parent) in allowed for parent, allowed in conditions)

    def _take(self, param: Param, parent_name: str | None, parent_values: Any) -> Any:
        name = param.name
        if param.key == "kind":
            raise ConfigError(
                "hp 'kind': cnn-search keeps that name for its model families; rename it in your function"
            )
        if name in self._reserved or name == "epochs":
            raise ConfigError(
                f"hp '{name}': the search space already samples a parameter of that name; rename it in your model "
                "function"
            )
        if not self._active(parent_name, parent_values):
            return None
        when = tuple(self._scopes) + ((parent_name, _as_tuple(parent_values)),) if parent_name else tuple(self._scopes)
        param = Param(param.section, param.key, param.kind, low=param.low, high=param.high, log=param.log,
                      step=param.step, choices=param.choices, when=when, prior=param.prior)  # fmt: skip
        if param.kind != "categorical" and param.low > param.high:
            raise ConfigError(f"hp '{name}': its lowest value {param.low} is above its highest {param.high}")
        if name in self.values:
            before = self.declared.get(name)
            if before is not None and _declaration(before) != _declaration(param):
                raise ConfigError(f"hp '{name}' is asked for twice with different ranges or choices; use one name each")
            return self.values[name]
        self.declared[name] = param
        if self._trial is not None:
            value = param.suggest(self._trial)
        elif name in self._given:
            value = self._given[name]
        else:
            value = param.prior
        self.values[name] = value
        return value


def _declaration(p: Param) -> tuple:
    return (p.kind, p.low, p.high, p.log, p.step, p.choices)


def _log(sampling: str, name: str) -> bool:
    sampling = (sampling or "linear").lower()
    if sampling not in ("linear", "log", "reverse_log"):
        raise ConfigError(f"hp '{name}': sampling {sampling!r} is not one of 'linear', 'log', 'reverse_log'")
    return sampling != "linear"  # reverse_log is drawn as log


def _as_tuple(values: Any) -> tuple[Any, ...]:
    return tuple(values) if isinstance(values, (list, tuple, set, frozenset)) else (values,)
