"""Search spaces: the parameters a search samples, and sampling a run config from them.

A ``Space`` is a tuple of ``Param`` (a fixed value, a range or a choice, each with an
optional condition and prior); ``search.core.space_files`` reads one from a TOML file.
Optuna parameter names are the keys, except ``optimizer.name`` -> ``optimizer``,
``schedule.name`` -> ``schedule`` and ``model.kind`` -> ``model``.

Only ``sample`` touches the trial, and it works with any ``BaseTrial``: replaying a
stored trial's params through ``optuna.trial.FixedTrial`` rebuilds its config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from search.core.config import MODEL_KINDS, SECTIONS, RunConfig, is_text_dataset
from search.core.validate import field_names

if typing.TYPE_CHECKING:
    import optuna

__all__ = ["Param", "Space", "NOT_IN_SPACES", "RENAMED"]

# Set by the command line, not by a space: where the data comes from, and run length.
NOT_IN_SPACES = {
    "data": {"dataset", "data_dir", "val_split", "limit_train", "split_seed"},
    "train": {"epochs", "monitor"},
}
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
            section = (
                MODEL_KINDS[kind]() if p.section == "model" and kind != base.model.kind else getattr(base, p.section)
            )
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
                if (
                    p.section == "model"
                    and p.key != "kind"
                    and p.key not in field_names(MODEL_KINDS.get(kind, type(base.model)))
                ):
                    continue
                out.append(p.name)
            return out

        return names

    def sample(
        self, trial: optuna.trial.BaseTrial, base: RunConfig, epochs: tuple[int, int] | None = None
    ) -> RunConfig:
        """Draw a run config: ``base`` supplies data settings, epochs, seed and defaults.

        With ``epochs`` (low, high) the trial's schedule length is a parameter too,
        ``epochs``: a budgeted search (``search.study.budget``) sets it per trial."""
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
