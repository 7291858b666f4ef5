"""A search of a model function of the user's own (``--model``, ``search.core.custom``):
its spec, and the space around it.  ``search.study.setup`` calls these before the study
is created, so every problem with the function is one line and nothing is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.core.space_files import load_space
from search.errors import StorageError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from search.core.custom import Declared
    from search.core.spaces import Space
    from search.study.settings import StudySettings

__all__ = ["DEFAULT_MODEL_SPACE", "model_spec", "declare_model"]

DEFAULT_MODEL_SPACE = "_training"  # with --model: the training sections, around the user's model


def model_spec(model: str | Callable[..., Any] | None) -> str | None:
    """``--model``'s function as a spec (``FILE.py:NAME``, the path made absolute), or None."""
    if model is None:
        return None
    from search.core.custom import normalize_spec, spec_of

    return normalize_spec(model) if isinstance(model, str) else spec_of(model)


def declare_model(
    spec: str,
    space: Space | None,
    recorded: StudySettings | None,
    name: str,
    before: Callable[[], None] | None = None,
) -> tuple[Declared, dict[str, Any]]:
    """Run the model function at its defaults (``search.core.custom.declare``) and put its
    parameters into the space: the given one, the resumed study's, or ``_training``.
    Returns what it declared and the study settings it gives (the model, the space).  A
    resumed study of another model, or whose function now declares other parameters, is
    refused.  ``before`` runs first (the command line's check that TensorFlow is installed)."""
    from search.core.custom import declare

    if before is not None:
        before()
    if recorded is not None and recorded.model != spec:
        raise StorageError(
            f"study '{name}' was created with model={recorded.model or 'the built-in models'}, not {spec}; "
            "drop that option to resume it, or start a new --study"
        )
    around = space if space is not None else recorded.space_obj if recorded is not None else None
    if around is None:
        around = load_space(DEFAULT_MODEL_SPACE)
    elif space is not None and any(p.section == "model" for p in space.params):
        raise UsageError(
            f"--model {spec}: the space '{space.name}' samples [model] keys of the built-in models; give a space "
            f"without a [model] section (the default with --model is {DEFAULT_MODEL_SPACE})"
        )
    reserved = frozenset(p.name for p in around.params if p.section not in ("model", "optimizer"))
    declared = declare(spec, reserved)
    compiled = declared.optimizer is not None
    if not compiled:
        declared.refuse_names(spec, {p.name for p in around.params if p.section == "optimizer"})
    merged = around.with_model(declared.params, compiled=compiled)
    if recorded is not None and space is None and merged.fingerprint != recorded.space_obj.fingerprint:
        raise StorageError(
            f"study '{name}': the model function {spec} now asks for other hyperparameters (names, ranges or "
            "choices) than when the study was created; start a new --study, or restore the function"
        )
    given: dict[str, Any] = {"model": spec}
    if recorded is None or space is not None:  # resumed without --space: the study's space, checked above
        given["space"] = merged.to_dict()
    return declared, given
