"""Search-space files (TOML): read, validate and check them into a ``Space``.

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
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from search.core.config import MODEL_KINDS, SECTIONS
from search.core.spaces import NOT_IN_SPACES, Param, Space
from search.core.validate import check_value, field_names, field_type
from search.errors import ConfigError, SpaceError

__all__ = ["builtin_dir", "builtin_spaces", "load_space"]


def builtin_dir() -> Path:
    """The folder of built-in spaces: ``spaces/`` in a checkout, package data in a wheel."""
    try:
        packaged = Path(str(importlib.resources.files("search._spaces")))
        if packaged.is_dir():
            return packaged
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "spaces"


def builtin_spaces(include_parts: bool = False) -> dict[str, Path]:
    """Built-in spaces by name; names starting with "_" are parts others extend."""
    found = {p.stem: p for p in sorted(builtin_dir().glob("*.toml"))}
    return found if include_parts else {k: v for k, v in found.items() if not k.startswith("_")}


def load_space(spec: str) -> Space:
    """Load a built-in space by name (``cnn``) or a user's space file by path."""
    return _load(spec, seen=())


MAX_EXTENDS = 32  # files in one chain of 'extends': a longer one is a mistake, and would exhaust the stack


def _load(spec: str, seen: tuple[str, ...]) -> Space:
    builtins = builtin_spaces()
    path = builtin_spaces(include_parts=True).get(spec) or Path(spec)
    if not path.is_file():
        hint = f"use one of {', '.join(builtins)} or a path to a .toml file"
        raise SpaceError(f"space '{spec}': no such built-in space or file; {hint}")
    where = str(path)
    if where in seen:
        raise SpaceError(f"{where}: 'extends' loops back to itself ({' -> '.join(seen)}); remove the cycle")
    if len(seen) >= MAX_EXTENDS:
        raise SpaceError(
            f"{seen[0]}: 'extends' chains more than {MAX_EXTENDS} files (at {where}); merge some of them into one file"
        )
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
        raise SpaceError(
            f'{where}: drop: expected a list of "section.key" strings, received {drop!r}; '
            'write e.g. drop = ["augment.translate"]'
        )
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
        raise SpaceError(
            f"{where}: samples nothing (no range or choice), so every trial would train the same config; "
            "add a range or choices, or train one config with 'train --config'"
        )
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
            raise SpaceError(
                f"{at}: prior {prior!r} is outside what the parameter takes ({param.describe()}); "
                "move the prior inside, or widen the range"
            )
        param = dataclasses.replace(param, prior=prior)
    return param


def _param_range(
    section: str, key: str, spec: dict[str, Any], at: str, check: Any, annotation: Any, when: Any
) -> Param:
    if "choices" in spec:
        choices = spec.pop("choices")
        if spec:
            raise SpaceError(
                f"{at}: unexpected {sorted(spec)} beside 'choices'; a choice takes only choices, prior and when"
            )
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{at}: choices must be a non-empty list, received {choices!r}")
        checked = tuple(check(c, f"{section}.{key} choice") for c in choices)
        if len(set(map(repr, checked))) != len(checked):
            raise SpaceError(f"{at}: choices repeat a value ({list(choices)}); list each once")
        return Param(section, key, "categorical", choices=checked, when=when)
    if "low" in spec or "high" in spec:
        extra = set(spec) - {"low", "high", "log", "step"}
        if extra or "low" not in spec or "high" not in spec:
            raise SpaceError(
                f"{at}: a range takes low, high and optionally log, step, prior; received keys {sorted(spec)}"
            )
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
    classes = (
        [cls for cls in MODEL_KINDS.values() if key in field_names(cls)] if section == "model" else [SECTIONS[section]]
    )
    try:
        classes[0](**{key: value})
    except ConfigError as e:
        raise SpaceError(f"{at}: {value!r} is out of range ({e}); narrow the range") from None


def _when(raw: Any, at: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(raw, dict):
        raise SpaceError(f'{at}: when must be a table like {{ optimizer = "sgd" }}, received {raw!r}')
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
                raise SpaceError(
                    f"{where}: model.{p.key} belongs to no model kind this space "
                    f"builds ({', '.join(kinds)}); remove it or add the kind"
                )
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
                    raise SpaceError(
                        f"{where}: {p.section}.{p.key}: when {ref} = {bad!r}, but {ref} takes only {list(possible)}"
                    )
        seen[p.name] = p


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return "a choice of " + ", ".join(map(repr, typing.get_args(annotation)))
    return getattr(annotation, "__name__", str(annotation))
