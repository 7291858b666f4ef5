"""Search spaces as TOML files: read, validate, describe, and sample a run config.

A space file has one table per run-config section (``data``, ``augment``, ``model``,
``optimizer``, ``schedule``, ``train``).  Each entry is one of

* a plain value: the parameter is fixed (``batch_norm = true``);
* ``{ low = A, high = B }`` with optional ``log = true`` and ``step = S``: a range, int
  or float as the config field is;
* ``{ choices = [...] }``: a categorical choice;

and a range or choice may add ``when = { other = value-or-list }``: the parameter is
sampled only when every named parameter took one of the listed values (otherwise the
config default applies).  Parameters the file leaves out keep the config defaults.
``extends = "cnn"`` (a built-in name or a path) starts from another space;
``drop = ["section.key", ...]`` then removes entries of the base.

Optuna parameter names are the keys, except ``optimizer.name`` -> ``optimizer``,
``schedule.name`` -> ``schedule`` and ``model.kind`` -> ``model``.  Model keys apply
only to the model kinds that have them, so a space mixing ``cnn`` and ``resnet`` needs
no conditions for kind-specific keys.  On a text dataset ``augment.horizontal_flip`` is
never sampled (it stays false): a mirrored text is not its text.

Only ``sample`` touches the trial, and it works with any ``BaseTrial``: replaying a
stored trial's params through ``optuna.trial.FixedTrial`` rebuilds its config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from search.config import MODEL_KINDS, SECTIONS, RunConfig, check_value, field_names, field_type, is_text_dataset
from search.errors import ConfigError, SpaceError

if typing.TYPE_CHECKING:
    import optuna

__all__ = ["Param", "Space", "builtin_spaces", "load_space"]

# Set by the command line, not by a space: where the data comes from, and run length.
NOT_IN_SPACES = {"data": {"dataset", "data_dir", "val_split", "limit_train"}, "train": {"epochs"}}
RENAMED = {("optimizer", "name"): "optimizer", ("schedule", "name"): "schedule", ("model", "kind"): "model"}


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
        return all(taken.get(k, _ABSENT) in allowed for k, allowed in self.when)

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


@dataclass(frozen=True)
class Space:
    name: str
    params: tuple[Param, ...]
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (lists, not tuples), equal to what storage gives back."""
        return json.loads(json.dumps({"name": self.name, "params": [dataclasses.asdict(p) for p in self.params]}))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "") -> Space:
        params = []
        for p in raw["params"]:
            p = dict(p)
            p["choices"] = tuple(p["choices"])
            p["when"] = tuple((k, tuple(v)) for k, v in p["when"])
            params.append(Param(**p))
        return cls(raw["name"], tuple(params), source)

    @property
    def fingerprint(self) -> str:
        """Hash of what the space samples; two files that sample the same agree.  Priors
        are left out: they move where a sampler looks, not what a trial can be."""
        plain = [{k: v for k, v in dataclasses.asdict(p).items() if k != "prior"} for p in self.params]
        canonical = json.dumps(plain, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def describe(self) -> list[str]:
        return [f"  {p.section + '.' + p.key:<26} {p.describe()}" for p in self.params]

    def baseline(self, base: RunConfig) -> dict[str, Any]:
        """Optuna params that make ``base``'s own values the trial's, wherever the space
        can take them; a parameter whose default lies outside its range, or whose
        condition the other defaults do not meet, is left out (the sampler draws it)."""
        taken: dict[str, Any] = {}
        kind: str | None = base.model.kind
        for p in self.params:
            if p.section == "model" and p.key == "kind":  # the defaults of the kind the trial will build
                kind = p.value if p.kind == "fixed" else kind if p.allows(kind) else None
            if p.kind == "fixed" or not p.applies(taken):
                continue
            if p.section == "model" and kind is None:
                continue  # the sampler picks the model kind, and with it these parameters
            section = MODEL_KINDS[kind]() if p.section == "model" and kind != base.model.kind else getattr(base, p.section)
            value = getattr(section, p.key, _ABSENT)
            if value is not _ABSENT and p.allows(value):
                taken[p.name] = value
        return taken

    def priors(self, base: RunConfig) -> dict[str, Any]:
        """Each parameter's prior as Optuna params: the space file's ``prior`` where it
        gives one, else ``base``'s value where the space can take it (``baseline``)."""
        centre = self.baseline(base)
        for p in self.params:
            if p.prior is not None:
                centre[p.name] = p.prior
        return centre

    def changeable(self, base: RunConfig) -> Callable[[dict[str, Any]], list[str]]:
        """For the prior sampler: the sampled parameters that apply around a centre (their
        ``when`` conditions hold, they belong to its model kind, and a text dataset's flip is never one)."""
        text = is_text_dataset(base.data.dataset)

        def names(centre: dict[str, Any]) -> list[str]:
            kind = centre.get("model", base.model.kind)
            out = []
            for p in self.params:
                if p.kind == "fixed" or not p.applies(centre) or (text and (p.section, p.key) == TEXT_SKIPS):
                    continue
                if p.section == "model" and p.key != "kind" and p.key not in field_names(MODEL_KINDS.get(kind, type(base.model))):
                    continue
                out.append(p.name)
            return out

        return names

    def sample(
        self, trial: optuna.trial.BaseTrial, base: RunConfig, epochs: tuple[int, int] | None = None
    ) -> RunConfig:
        """Draw a run config: ``base`` supplies data settings, epochs, seed and defaults.

        With ``epochs`` (low, high) the trial's schedule length is a parameter too,
        ``epochs``: a budgeted search (``search.budget``) sets it per trial."""
        taken: dict[str, Any] = {}
        values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        kind = base.model.kind
        text = is_text_dataset(base.data.dataset)
        for p in self.params:
            if p.section == "model" and p.key != "kind" and p.key not in field_names(MODEL_KINDS[kind]):
                continue  # a key of another model kind
            if text and (p.section, p.key) == TEXT_SKIPS:
                continue
            if not p.applies(taken):
                continue
            value = p.suggest(trial)
            taken[p.name] = value
            values[p.section][p.key] = value
            if p.section == "model" and p.key == "kind":
                kind = value
        sections = {}
        for section, changed in values.items():
            current = getattr(base, section)
            if section == "model" and kind != current.kind:
                sections[section] = MODEL_KINDS[kind](**changed)
            elif changed:
                sections[section] = dataclasses.replace(current, **changed)
        if epochs is not None:
            n = trial.suggest_int("epochs", epochs[0], max(epochs))
            sections["train"] = dataclasses.replace(sections.get("train", base.train), epochs=n)
        return base.replace(**sections)


_ABSENT = object()
TEXT_SKIPS = ("augment", "horizontal_flip")  # not sampled for text data: a mirrored text is not its text


def builtin_dir() -> Path:
    """The folder of built-in spaces: ``spaces/`` in a checkout, package data in a wheel."""
    try:
        packaged = Path(str(importlib.resources.files("search._spaces")))
        if packaged.is_dir():
            return packaged
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "spaces"


def builtin_spaces(include_parts: bool = False) -> dict[str, Path]:
    """Built-in spaces by name; names starting with "_" are parts others extend."""
    found = {p.stem: p for p in sorted(builtin_dir().glob("*.toml"))}
    return found if include_parts else {k: v for k, v in found.items() if not k.startswith("_")}


def load_space(spec: str) -> Space:
    """Load a built-in space by name (``cnn``) or a user's space file by path."""
    return _load(spec, seen=())


def _load(spec: str, seen: tuple[str, ...]) -> Space:
    builtins = builtin_spaces()
    path = builtin_spaces(include_parts=True).get(spec) or Path(spec)
    if not path.is_file():
        hint = f"use one of {', '.join(builtins)} or a path to a .toml file"
        raise SpaceError(f"space '{spec}': no such built-in space or file; {hint}")
    where = str(path)
    if where in seen:
        raise SpaceError(f"{where}: 'extends' loops back to itself ({' -> '.join(seen)}); remove the cycle")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"{where}: malformed TOML ({e}); fix the syntax") from e
    except (OSError, UnicodeDecodeError) as e:
        raise SpaceError(f"{where}: cannot read the file ({e}); check the path and encoding") from e
    return _parse(raw, where, path.stem, seen + (where,))


def _parse(raw: dict[str, Any], where: str, name: str, seen: tuple[str, ...]) -> Space:
    base: dict[tuple[str, str], Param] = {}
    if "extends" in raw:
        parent = raw.pop("extends")
        if not isinstance(parent, str):
            raise SpaceError(f"{where}: extends: expected a space name or path, received {parent!r}")
        parent_path = parent if parent in builtin_spaces(include_parts=True) else str(Path(where).parent / parent)
        base = {(p.section, p.key): p for p in _load(parent_path, seen).params}
    drop = raw.pop("drop", [])
    if not isinstance(drop, list) or not all(isinstance(item, str) for item in drop):
        raise SpaceError(f"{where}: drop: expected a list of \"section.key\" strings, received {drop!r}; "
                         "write e.g. drop = [\"augment.translate\"]")
    for item in drop:
        section, _, key = str(item).partition(".")
        if (section, key) not in base:
            raise SpaceError(f"{where}: drop: '{item}' is not an entry of the extended space; remove it from drop")
        del base[(section, key)]
    raw.pop("description", None)
    for section, table in raw.items():
        if section not in SECTIONS:
            raise SpaceError(f"{where}: unknown section [{section}]; use " + ", ".join(f"[{s}]" for s in SECTIONS))
        if not isinstance(table, dict):
            raise SpaceError(f"{where}: '{section}' must be a table [{section}], received {table!r}")
        for key, spec in table.items():
            base[(section, key)] = _param(section, key, spec, where)
    ordered = sorted(base.values(), key=lambda p: (list(SECTIONS).index(p.section), p.key != "kind"))
    _check_space(ordered, where)
    if not seen[1:] and not any(p.kind != "fixed" for p in ordered):  # a file of its own, not a part others extend
        raise SpaceError(f"{where}: samples nothing (no range or choice), so every trial would train the same config; "
                         "add a range or choices, or train one config with 'train --config'")
    return Space(name, tuple(ordered), where)


def _model_kinds_allowed(params: list[Param]) -> tuple[str, ...]:
    for p in params:
        if p.section == "model" and p.key == "kind":
            return tuple(p.possible_values() or ())
    return ("cnn",)


def _param(section: str, key: str, spec: Any, where: str) -> Param:
    at = f"{where}: {section}.{key}"
    if key in NOT_IN_SPACES.get(section, ()):
        raise SpaceError(f"{at}: set by the command line, not by a space; remove it from the file")
    if section == "model":
        owners = [cls for cls in MODEL_KINDS.values() if key in field_names(cls)]
        if not owners:
            known = sorted({f for cls in MODEL_KINDS.values() for f in field_names(cls)})
            raise SpaceError(f"{at}: unknown key; [model] takes {', '.join(known)}")
        annotation = field_type(owners[0], key) if key != "kind" else Literal[tuple(MODEL_KINDS)]  # type: ignore[misc]
    else:
        cls = SECTIONS[section]
        if key not in field_names(cls):
            allowed = [f for f in field_names(cls) if f not in NOT_IN_SPACES.get(section, ())]
            raise SpaceError(f"{at}: unknown key; [{section}] takes {', '.join(allowed)}")
        annotation = field_type(cls, key)

    def check(value: Any, what: str) -> Any:
        try:
            return check_value(annotation, value, what)
        except ConfigError as e:
            raise SpaceError(f"{where}: {e}") from None

    if not isinstance(spec, dict):
        return Param(section, key, "fixed", value=check(spec, f"{section}.{key}"))
    spec = dict(spec)
    when = _when(spec.pop("when", {}), at)
    prior = spec.pop("prior", None)
    param = _param_range(section, key, spec, at, check, annotation, when)
    if prior is not None:
        prior = check(prior, f"{section}.{key}.prior")
        if not param.allows(prior):
            raise SpaceError(f"{at}: prior {prior!r} is outside what the parameter takes ({param.describe()}); "
                             "move the prior inside, or widen the range")
        param = dataclasses.replace(param, prior=prior)
    return param


def _param_range(section: str, key: str, spec: dict[str, Any], at: str, check: Any, annotation: Any, when: Any) -> Param:
    if "choices" in spec:
        choices = spec.pop("choices")
        if spec:
            raise SpaceError(f"{at}: unexpected {sorted(spec)} beside 'choices'; a choice takes only choices, prior and when")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{at}: choices must be a non-empty list, received {choices!r}")
        checked = tuple(check(c, f"{section}.{key} choice") for c in choices)
        if len(set(map(repr, checked))) != len(checked):
            raise SpaceError(f"{at}: choices repeat a value ({list(choices)}); list each once")
        return Param(section, key, "categorical", choices=checked, when=when)
    if "low" in spec or "high" in spec:
        extra = set(spec) - {"low", "high", "log", "step"}
        if extra or "low" not in spec or "high" not in spec:
            raise SpaceError(f"{at}: a range takes low, high and optionally log, step, prior; received keys {sorted(spec)}")
        base_type = typing.get_args(annotation)[0] if typing.get_origin(annotation) is not None else annotation
        if base_type not in (int, float):
            raise SpaceError(f"{at}: a range needs a number, but this setting is {_type_name(annotation)}; use choices")
        low, high = check(spec["low"], f"{section}.{key}.low"), check(spec["high"], f"{section}.{key}.high")
        if low > high:
            raise SpaceError(f"{at}: low {low} > high {high}; swap them")
        log, step = spec.get("log", False), spec.get("step")
        if not isinstance(log, bool):
            raise SpaceError(f"{at}: log must be true or false, received {log!r}")
        if log and low <= 0:
            raise SpaceError(f"{at}: a log range needs low > 0, received {low}; raise low or drop log")
        if step is not None:
            step = check(step, f"{section}.{key}.step")
            if step <= 0 or log:
                raise SpaceError(f"{at}: step must be > 0 and cannot be combined with log, received step {step}")
        for bound in (low, high):  # each end must make a valid config on its own
            _try_section(section, key, bound, at)
        kind = "int" if base_type is int else "float"
        return Param(section, key, kind, low=low, high=high, log=log, step=step, when=when)
    raise SpaceError(f"{at}: expected a value, {{ low, high }} or {{ choices }}, received {spec!r}")


def _try_section(section: str, key: str, value: Any, at: str) -> None:
    classes = [cls for cls in MODEL_KINDS.values() if key in field_names(cls)] if section == "model" else [SECTIONS[section]]
    try:
        classes[0](**{key: value})
    except ConfigError as e:
        raise SpaceError(f"{at}: {value!r} is out of range ({e}); narrow the range") from None


def _when(raw: Any, at: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(raw, dict):
        raise SpaceError(f"{at}: when must be a table like {{ optimizer = \"sgd\" }}, received {raw!r}")
    return tuple((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in raw.items())


def _check_space(params: list[Param], where: str) -> None:
    seen: dict[str, Param] = {}
    kinds = _model_kinds_allowed(params)
    for p in params:
        if p.name in seen:
            other = seen[p.name]
            raise SpaceError(f"{where}: {p.section}.{p.key} and {other.section}.{other.key} share the name '{p.name}'")
        if p.section == "model" and p.key != "kind":
            if not any(p.key in field_names(MODEL_KINDS[k]) for k in kinds):
                raise SpaceError(f"{where}: model.{p.key} belongs to no model kind this space builds ({', '.join(kinds)}); remove it or add the kind")
        for ref, allowed in p.when:
            if ref not in seen:
                raise SpaceError(
                    f"{where}: {p.section}.{p.key}: when refers to '{ref}', which is not sampled before it; "
                    "name a parameter of an earlier section or earlier in [model]"
                )
            possible = seen[ref].possible_values()
            if possible is not None:
                bad = [v for v in allowed if v not in possible]
                if bad:
                    raise SpaceError(f"{where}: {p.section}.{p.key}: when {ref} = {bad!r}, but {ref} takes only {list(possible)}")
        seen[p.name] = p


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return "a choice of " + ", ".join(map(repr, typing.get_args(annotation)))
    return getattr(annotation, "__name__", str(annotation))
