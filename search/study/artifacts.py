"""Per-trial artifacts for optuna-dashboard: the learning curves (PNG) and the model
summary (text), written to Optuna's file-system artifact store.

Saving artifacts is a courtesy, never a reason to fail a trial: every error becomes a
warning and the trial goes on.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from search.core.plots import save_curves

if TYPE_CHECKING:
    import keras
    import optuna

__all__ = ["ArtifactWarning", "model_summary", "write_trial_files", "upload_trial_artifacts", "artifact_store"]


class ArtifactWarning(UserWarning):
    """A trial's artifacts could not be saved; the trial itself is unaffected."""


def model_summary(model: keras.Model) -> str:
    """Keras' layer-by-layer summary as text."""
    parts: list[str] = []
    model.summary(print_fn=lambda text, **_: parts.append(text), line_length=100)
    return "\n".join(parts)


def artifact_store(folder: str | Path) -> optuna.artifacts.FileSystemArtifactStore:
    """Optuna's file-system artifact store in ``folder`` (created if needed)."""
    import optuna

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(folder)


def write_trial_files(
    number: int, history: Mapping[str, Sequence[float]], model: keras.Model | None, folder: Path
) -> list[Path]:
    """Write ``trial-N-curves.png`` and ``trial-N-model.txt`` (what exists) into ``folder``."""
    files = []
    if history:
        files.append(save_curves(history, folder / f"trial-{number}-curves.png", title=f"trial {number}"))
    if model is not None:
        summary = folder / f"trial-{number}-model.txt"
        summary.write_text(model_summary(model) + "\n", encoding="utf-8")
        files.append(summary)
    return files


def upload_trial_artifacts(
    trial: optuna.trial.Trial,
    folder: str | Path,
    history: Mapping[str, Sequence[float]],
    model: keras.Model | None,
) -> None:
    """Attach the trial's curves and model summary to ``trial`` as artifacts; warn on failure."""
    import optuna

    try:
        store = artifact_store(folder)
        with tempfile.TemporaryDirectory(prefix="cnn-search-artifacts-") as tmp:
            for path in write_trial_files(trial.number, history, model, Path(tmp)):
                optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
    except Exception as e:  # noqa: BLE001 - artifacts must never fail a trial
        warnings.warn(
            f"trial {trial.number}: could not save its artifacts in "
            f"{folder} ({type(e).__name__}: {e}); the trial goes on",
            ArtifactWarning,
            stacklevel=2,
        )
