"""``--warm-start STUDY[,STUDY...]``: start a search from what earlier studies found.

The best completed trials of each earlier study (their stored run configs) are
translated into this space's params; those the space can take are queued as the new
study's first trials (after the recipe), and the best of them becomes the centre of
the prior-guided sampler.  Those it cannot take are reported with the first value
that does not fit.  Everything is read before anything is written: a study that does
not exist is one line and exit 2, with no database created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search.core.config import MODEL_KINDS, RunConfig
from search.core.spaces import Space
from search.core.validate import field_names
from search.errors import ConfigError, UsageError
from search.study.objectives import is_multi_objective
from search.study.record import WARM_START, TrialRecord, attrs

__all__ = ["WarmStart", "Taken", "read_warm_start", "TOP_PER_STUDY"]

TOP_PER_STUDY = 3  # best completed trials taken from each earlier study


@dataclass(frozen=True)
class Candidate:
    label: str  # "study#trial"
    value: float
    config: RunConfig
    score: float  # the value, signed so that higher is better whatever the study's direction


@dataclass
class WarmStart:
    """Configurations read from earlier studies, best first."""

    studies: list[str]
    candidates: list[Candidate]

    def for_space(self, space: Space) -> Taken:
        taken = Taken(self.studies)
        for c in self.candidates:
            params, reason = params_for(space, c.config)
            if reason is None and any(params == other for _, other in taken.params):
                taken.left_out.append(f"{c.label}: the same configuration as one already taken")
            elif reason is None:
                taken.params.append((c.label, params))
            else:
                taken.left_out.append(f"{c.label}: {reason}")
        return taken


@dataclass
class Taken:
    """What a warm start queues, and what it left out and why."""

    studies: list[str]
    params: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    queued: int | None = None  # how many apply() queued: a resumed study may hold some already

    def apply(self, study: optuna.Study) -> None:
        """Queue the configurations (those the study does not hold already) and record the
        prior centre (the best of them)."""

        before = len(study.get_trials(deepcopy=False))
        for label, params in self.params:
            study.enqueue_trial(params, user_attrs=attrs(warm_start=label), skip_if_exists=True)
        self.queued = len(study.get_trials(deepcopy=False)) - before
        record = {"studies": self.studies, "taken": [label for label, _ in self.params], "left_out": self.left_out}
        if self.params:
            record["prior"] = self.params[0][1]
        study.set_user_attr(WARM_START, record)

    def describe(self) -> str:
        total = len(self.params) + len(self.left_out)
        text = f"warm start from {', '.join(self.studies)}: took {len(self.params)} of {total} configurations" + (
            f" (prior centred on {self.params[0][0]})" if self.params else ""
        )
        if self.queued is not None and self.queued < len(self.params):
            held = len(self.params) - self.queued
            text += f"; queued {self.queued}: this study already holds {held} of them"
        for line in self.left_out:
            text += f"\n  not taken: {line}"
        return text


def read_warm_start(spec: str, storage: str | None, studies_dir: Path, this_study: str) -> WarmStart:
    """Read the best trials of the studies named in ``spec`` (comma-separated)."""
    from search.study.storage import check_study_name, default_storage, load_study_for_reading

    names = list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))  # a study named twice is read once
    candidates: list[Candidate] = []
    for name in names:
        check_study_name(name)
        if name == this_study:
            raise UsageError(f"--warm-start {name}: that is the study being run; name an earlier study")
        study = load_study_for_reading(name, storage or default_storage(name, studies_dir))
        if is_multi_objective(study):
            raise UsageError(
                f"--warm-start {name}: a multi-objective study has no single best trials; pick its trial "
                "with 'export --trial N' and train it, or name a single-objective study"
            )
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
        done.sort(key=lambda t: t.value, reverse=maximize)
        for t in done[:TOP_PER_STUDY]:
            try:
                config = RunConfig.from_dict(TrialRecord.of(t).config, where=f"{name} trial {t.number} config")
            except ConfigError:
                continue  # not a cnn-search trial config: nothing to translate
            candidates.append(
                Candidate(f"{name}#{t.number}", float(t.value), config, float(t.value) * (1 if maximize else -1))
            )
        if not done:
            raise UsageError(f"--warm-start {name}: the study has no completed trial to start from; name another study")
    candidates.sort(key=lambda c: c.score, reverse=True)  # best first across studies
    return WarmStart(names, candidates)


def params_for(space: Space, config: RunConfig) -> tuple[dict[str, Any], str | None]:
    """``config`` as params of ``space``, or the first value the space cannot take."""
    params = space.baseline(config)
    kind = config.model.kind
    for p in space.params:
        if p.kind == "fixed":
            value = getattr(_section(config, p.section), p.key, None)
            if value is not None and p.value != value and _applies(p, kind):
                return params, f"{p.section}.{p.key} is {value!r}, which this space fixes at {p.value!r}"
            continue
        if not _applies(p, kind) or not p.applies(params) or p.name in params:
            continue
        value = getattr(_section(config, p.section), p.key, None)
        return params, f"{p.section}.{p.key} is {value!r}, outside this space ({p.describe()})"
    return params, None


def _section(config: RunConfig, section: str) -> Any:
    return getattr(config, section)


def _applies(p: Any, kind: str) -> bool:
    return p.section != "model" or kind == "custom" or p.key == "kind" or p.key in field_names(MODEL_KINDS[kind])
