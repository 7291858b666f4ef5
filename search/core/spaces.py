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
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search.core.config import MODEL_KINDS, SECTIONS, CustomModelConfig, RunConfig, is_text_dataset
from search.core.params import ABSENT, RENAMED, Param
from search.core.validate import field_names

if typing.TYPE_CHECKING:
    import optuna

__all__ = ["Param", "Space", "NOT_IN_SPACES", "RENAMED"]

# Set by the command line, not by a space: where the data comes from, and run length.
NOT_IN_SPACES = {
    "data": {"dataset", "data_dir", "val_split", "limit_train", "split_seed"},
    "train": {"epochs", "monitor"},
}


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
            value = _value_of(section, p.key)
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
            kind = "custom" if isinstance(base.model, CustomModelConfig) else centre.get("model", base.model.kind)
            out = []
            for p in self.params:
                if p.kind == "fixed" or not p.applies(centre) or (text and (p.section, p.key) == TEXT_SKIPS):
                    continue
                if p.section == "model" and not _belongs(p, kind):
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
        drawn = {}
        if isinstance(base.model, CustomModelConfig):  # the model's own function asks for its values
            from search.core.custom import draw

            reserved = frozenset(p.name for p in self.params if p.section != "model")
            drawn["model"], optimizer = draw(trial, base.model, reserved)
            if optimizer is not None:  # a model its function compiled: its optimizer is the trial's
                drawn["optimizer"] = optimizer
        for p in self.params:
            if p.section == "model" and (isinstance(base.model, CustomModelConfig) or not _belongs(p, kind)):
                continue  # a key of another model kind, or a custom model's (drawn above)
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
        sections.update(drawn)
        if epochs is not None:
            n = trial.suggest_int("epochs", epochs[0], max(epochs))
            sections["train"] = dataclasses.replace(sections.get("train", base.train), epochs=n)
        return base.replace(**sections)

    def with_model(self, params: tuple[Param, ...], compiled: bool = False) -> Space:
        """This space around a model of its user's own (``search.core.custom.declare``): its
        ``params`` in place of any ``model`` section, and without the optimizer section
        when the model's function compiled it (its optimizer is then the trial's)."""
        kept = [p for p in self.params if p.section != "model" and not (compiled and p.section == "optimizer")]
        return Space(self.name, (*kept, *params), self.source)


_ABSENT = ABSENT


def _value_of(section: Any, key: str) -> Any:
    """A section's value of a space parameter's key (a custom model's: its ``hp`` value)."""
    if isinstance(section, CustomModelConfig):
        return section.hp.get(key, _ABSENT)
    return getattr(section, key, _ABSENT)


def _belongs(p: Param, kind: str) -> bool:
    """Whether model parameter ``p`` is one of model kind ``kind``'s (a custom model's are all its own)."""
    if kind == "custom":
        return p.key != "kind"
    return p.key == "kind" or (kind in MODEL_KINDS and p.key in field_names(MODEL_KINDS[kind]))


TEXT_SKIPS = ("augment", "horizontal_flip")  # not sampled for text data: a mirrored text is not its text
