"""The HTML section (or page) ``report --model DIR`` writes for a model ``train`` wrote:
its test scores, scikit-learn's per-class precision, recall and F1, and its pictures
(curves, confusion matrix, most confident mistakes) embedded as data URIs, so the page
opens offline.  A folder from before ``train`` drew the confusion matrix gets it drawn
from ``metrics.json``; pictures that cannot be drawn become a note.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

from search.errors import UsageError

__all__ = ["model_section", "render_model_report"]

PICTURES = {
    "curves.png": "Loss and accuracy per epoch",
    "confusion.png": "Confusion matrix (rows: the true {what}, each row sums to 1)",
    "mistakes.png": "The most confidently wrong test images",
}


def _read_metrics(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise UsageError(f"--model {folder}: no such folder; pass the folder 'train' wrote (its --out)")
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UsageError(f"--model {folder}: no metrics.json in it; pass the folder 'train' wrote (its --out)") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not readable JSON ({type(e).__name__}); train the model again") from e
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict) or not metrics["test"]:
        raise UsageError(f"{path}: has no 'test' section; it was not written by 'train'; train the model again")
    _check_metrics(metrics, path)
    return metrics


def _number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_metrics(metrics: dict[str, Any], path: Path) -> None:
    """Every field the report reads has the type and shape ``train`` writes: one line otherwise."""
    test = metrics["test"]

    def bad(field: str, expected: str, received: Any) -> UsageError:
        shown = repr(received)
        return UsageError(
            f"{path}: {field}: expected {expected}, received {shown[:60]}{'...' if len(shown) > 60 else ''}; "
            "it was edited or damaged: train the model again"
        )

    for key in ("accuracy", "loss"):
        if not _number(test.get(key)):
            raise bad(f"test.{key}", "a number", test.get(key))
    for key in ("char_accuracy",):
        if key in test and not _number(test[key]):
            raise bad(f"test.{key}", "a number", test[key])
    if "per_position_accuracy" in test and not (
        isinstance(test["per_position_accuracy"], list) and all(_number(v) for v in test["per_position_accuracy"])
    ):
        raise bad("test.per_position_accuracy", "a list of numbers", test["per_position_accuracy"])
    for key in ("params", "epochs_run", "train_images"):
        if key in metrics and not (
            isinstance(metrics[key], int) and not isinstance(metrics[key], bool) and metrics[key] >= 0
        ):
            raise bad(key, "a count", metrics[key])
    names = test.get("class_names")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise bad("test.class_names", "a list of names", names)
    matrix = test.get("confusion_matrix")
    if matrix is not None:
        k = len(names) if names else None
        square = (
            isinstance(matrix, list)
            and matrix
            and all(isinstance(r, list) and len(r) == len(matrix) for r in matrix)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for r in matrix for v in r)
        )
        if not square or (k is not None and len(matrix) != k):
            raise bad("test.confusion_matrix", f"a square table of counts{f', {k} x {k}' if k else ''}", matrix)
    report = test.get("classification_report")
    if report is not None:
        if not isinstance(report, dict):
            raise bad("test.classification_report", "a table by class", report)
        for name, row in report.items():
            if name == "accuracy":
                continue
            if not (
                isinstance(row, dict)
                and all(_number(row.get(k)) for k in ("precision", "recall", "f1-score", "support"))
            ):
                raise bad(f"test.classification_report[{name!r}]", "precision, recall, f1-score and support", row)


def _png(data: bytes, alt: str) -> str:
    source = f"data:image/png;base64,{base64.b64encode(data).decode()}"
    return f'<img alt="{html.escape(alt)}" style="max-width:100%" src="{source}">'


def _picture(folder: Path, name: str, test: dict[str, Any]) -> str:
    path = folder / name
    if path.is_file():
        return _png(path.read_bytes(), name)
    if name == "confusion.png" and "confusion_matrix" in test and "class_names" in test:
        from search.core.figures import save_confusion

        with tempfile.TemporaryDirectory() as tmp:
            drawn = save_confusion(
                test["confusion_matrix"],
                test["class_names"],
                Path(tmp) / name,
                what="character" if "char_accuracy" in test else "class",
            )
            return (
                _png(drawn.read_bytes(), name)
                + "<p class=meta>Drawn from metrics.json (the folder has no confusion.png).</p>"
            )
    return f"<p class=note>Not drawn: {html.escape(name)} is not in the folder (trained before 'train' wrote it).</p>"


def _per_class_table(test: dict[str, Any]) -> str:
    report = test.get("classification_report")
    if not isinstance(report, dict):
        return (
            "<p class=note>No per-class precision, recall and F1 in metrics.json "
            "(trained before 'train' wrote them).</p>"
        )
    names = [n for n in test.get("class_names", []) if n in report]
    rows = [
        [n, *(f"{report[n][k]:.3f}" for k in ("precision", "recall", "f1-score")), str(int(report[n]["support"]))]
        for n in names
    ]
    for avg in ("macro avg", "weighted avg"):
        if avg in report:
            rows.append(
                [
                    avg,
                    *(f"{report[avg][k]:.3f}" for k in ("precision", "recall", "f1-score")),
                    str(int(report[avg]["support"])),
                ]
            )
    worst = sorted(names, key=lambda n: report[n]["f1-score"])[:5]
    lowest = ", ".join(f"{n} ({report[n]['f1-score']:.3f})" for n in worst)
    head = f"<p class=meta>Lowest F1: {html.escape(lowest)}.</p>" if worst else ""
    cells = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i else ''}>{html.escape(c)}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    what = "character" if "char_accuracy" in test else "class"
    return (
        f"{head}<table><thead><tr><th>{what}</th><th>precision</th><th>recall</th><th>F1</th><th>test images</th></tr>"
        f"</thead><tbody>{cells}</tbody></table>"
    )


def model_section(model_dir: str | Path) -> str:
    """The trained model's section: scores, per-class table, pictures."""
    folder = Path(model_dir)
    metrics = _read_metrics(folder)
    test = metrics["test"]
    scores = [f"accuracy {test['accuracy']:.4f}", f"loss {test['loss']:.4f}", f"{test.get('images', '?')} test images"]
    if "char_accuracy" in test:
        scores[0] = f"whole-text accuracy {test['accuracy']:.4f}, per-character accuracy {test['char_accuracy']:.4f}"
        scores.append("accuracy per position " + " ".join(f"{a:.3f}" for a in test.get("per_position_accuracy", [])))
    trained = (
        f"trained on {metrics.get('trained_on', '?')} ({metrics.get('train_images', '?')} images) for "
        f"{metrics.get('epochs_run', '?')} epochs, {metrics.get('params', 0):,} "
        f"parameters, seed {metrics.get('seed', '?')}"
    )
    what = "character" if "char_accuracy" in test else "class"
    pictures = "".join(
        f"<h3>{html.escape(title.format(what=what))}</h3>{_picture(folder, name, test)}"
        for name, title in PICTURES.items()
    )
    return (
        f"<section><h2>Trained model {html.escape(str(folder))}</h2>"
        f"<p class=meta>{html.escape(trained)}<br>test split: {html.escape('; '.join(scores))}</p>"
        f"<h3>Per {what} on the test split (scikit-learn)</h3>{_per_class_table(test)}{pictures}</section>"
    )


def render_model_report(model_dir: str | Path) -> str:
    """A whole page for one trained model."""
    from search.reporting.report import _STYLE

    section = model_section(model_dir)
    name = html.escape(Path(model_dir).name)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cnn-search model: {name}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Model {name}</h1>
{section}
</body></html>
"""
