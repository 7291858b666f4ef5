"""``run_search``: a whole search from Python, as ``python run_search.py`` runs it.

It spans the layers (the setup of ``search.study.setup``, the trial lines of
``search.reporting.progress``), so it lives above them; ``import search`` exposes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.core.config import DataConfig
from search.core.spaces import Space
from search.core.tfdata import from_tf_data, is_tf_data
from search.reporting.progress import TrialPrinter
from search.study.setup import SearchRequest, prepare

if TYPE_CHECKING:
    import optuna

    from search.core.data import Dataset

__all__ = ["run_search"]


def run_search(
    data: str | DataConfig | Dataset = "digits", space: str | Space | None = None, **options: Any
) -> optuna.Study:
    """Run a search (or resume the study of that name) in this process; return the study.

    ``data``: a dataset spec (``"fashion_mnist"``, ``"folder:PATH"``, ...), a
    ``DataConfig``, a ``Dataset`` already in memory (``search.from_arrays`` makes one
    from NumPy arrays), or a ``tf.data.Dataset`` of (image, label), or a tuple (train,
    validation[, test]) of them (``search.core.tfdata``: read once into memory).
    ``space``: a built-in space name, a TOML file, or a ``Space`` (default: ``cnn``;
    with ``model``, ``_training``).  ``model``: a function of your own,
    ``build_model(hp)`` returning a Keras model, searched instead of the built-in
    families (``search.core.custom``; the space samples the training around it).
    ``options``: the fields of ``SearchRequest``, which are the command line's options
    (``study``, ``storage``, ``trials``, ``budget`` in seconds or ``"10m"``, ``timeout``,
    ``epochs``, ``seed``, ``monitor``, ``objectives``, ``sampler``, ``pruner``,
    ``warm_start``, ``workers``, ...), with the same defaults and refusals (an unknown
    option is the dataclass's TypeError).  Every trial is
    stored as the command line stores it, so ``best``, ``export``, ``report`` and the
    dashboard read it.
    """
    if is_tf_data(data):  # a tf.data pipeline, or (train, validation[, test]) of them
        data = from_tf_data(*data) if isinstance(data, tuple) else from_tf_data(data)
    search = prepare(SearchRequest(dataset=data, space=space, **options))
    for note in search.notes:
        print(note)
    search.run(printer=TrialPrinter)
    return search.study
