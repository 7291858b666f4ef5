"""Your own Keras model: ``--model my_models.py:build_model`` (or ``run_search(...,
model=build_model)``) searches a function that asks ``hp`` (``search.core.hyper``:
KerasTuner's and Optuna's names) for its values and returns a ``keras.Model``, as
KerasTuner does.  Plain Python conditions work: the function runs again for every trial
(define-by-run), and only the values it asked for are the trial's.

How the pieces fit:

- ``declare``: before the study is created, the function runs once with every value at
  its default and its declarations become the space's ``model`` parameters, each with
  its default as its prior (KerasTuner's default where none is given: the lowest value,
  the first choice, false).  A value asked for only under other values (an ``if``) is
  met when a trial first asks for it, and then drawn from its whole range.
- ``draw``: a trial's values, drawn by the study's sampler through the Optuna trial;
  the model built meanwhile is thrown away (building is cheap; training builds it again
  from the recorded values).
- ``build``: your model at a trial's values; ``search.core.models.build_model`` wraps
  it into the model the trial trains: raw pixels in, the data's normalization (the
  space's ``data.normalization``: your function's model gets normalized images, so drop
  your own ``Rescaling``), the flip test-time augmentation where the space asks for it,
  your model, and a float32 softmax if your model ends in logits.

A model your function compiled keeps its optimizer (SGD, Adam, AdamW, RMSprop or
Adagrad: its class, rate, momentum, Nesterov and weight decay become the run config's
``optimizer`` section, so the space's optimizer section is not sampled); its loss must
be a categorical cross-entropy (sparse or not, logits or not), which cnn-search trains
with its own labels (one-hot, with the space's label smoothing).

``load_builder`` finds the function: ``FILE.py:NAME`` (a path) or ``package.module:NAME``
(an importable module); a function passed from Python is registered here, so a search in
the caller's process never imports the caller's script again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.core.hyper import HyperParameters
from search.core.params import Param
from search.core.tfimport import import_tensorflow_quietly
from search.errors import ConfigError, TrialError

if TYPE_CHECKING:
    import keras
    import optuna

    from search.core.config import CustomModelConfig, OptimizerConfig

__all__ = [
    "HyperParameters",
    "ModelBuildError",
    "Declared",
    "load_builder",
    "spec_of",
    "declare",
    "draw",
    "build",
    "ends_in_softmax",
]

_REGISTERED: dict[str, Callable[..., Any]] = {}  # functions passed from Python, by their spec
_LOADED: dict[str, Callable[..., Any]] = {}
OPTIMIZERS = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "RMSprop": "rmsprop", "Adagrad": "adagrad"}


class ModelBuildError(TrialError):
    """The model function raised, or returned something that is not a Keras model, for one
    trial's values: that trial fails with the reason and the search goes on."""


# -- finding the function ------------------------------------------------------------------


def spec_of(function: Callable[..., Any]) -> str:
    """A spec for a function passed from Python (``module:name``, or ``FILE.py:name`` for a
    script's own), registered so that this process uses the function itself."""
    if not callable(function):
        raise ConfigError(f"model: expected a function of hp that returns a Keras model, received {function!r}")
    module = getattr(function, "__module__", None) or "__main__"
    name = getattr(function, "__qualname__", getattr(function, "__name__", "build_model"))
    if module == "__main__":
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        module = str(Path(main).resolve()) if main else "__main__"
    spec = f"{module}:{name}"
    _REGISTERED[spec] = function
    return spec


def split_spec(spec: str) -> tuple[str, str]:
    """``FILE.py:NAME`` or ``module:NAME`` as (where, name); a ``ConfigError`` otherwise."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ConfigError(f"--model {spec!r}: expected FILE.py:FUNCTION (or package.module:FUNCTION)")
    return where, name


def normalize_spec(spec: str) -> str:
    """``spec`` with a file path made absolute (so ``train`` finds it from any folder)."""
    where, name = split_spec(spec)
    if _is_path(where):
        return f"{Path(where).expanduser().resolve()}:{name}"
    return spec


def load_builder(spec: str) -> Callable[..., Any]:
    """The model function ``spec`` names; a ``ConfigError`` naming the file and what is wrong."""
    if spec in _REGISTERED:
        return _REGISTERED[spec]
    if spec in _LOADED:
        return _LOADED[spec]
    where, name = split_spec(spec)
    import_tensorflow_quietly()  # the function's module imports Keras: without TensorFlow's start-up lines
    module = _import_path(where, spec) if _is_path(where) else _import_module(where, spec)
    function = module
    for part in name.split("."):
        if not hasattr(function, part):
            defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise ConfigError(
                f"--model {spec}: {where} has no function '{name}'"
                + (f" (it defines {', '.join(defined[:8])})" if defined else "")
                + "; check the name after the colon"
            )
        function = getattr(function, part)
    if not callable(function):
        raise ConfigError(f"--model {spec}: '{name}' in {where} is a {type(function).__name__}, not a function")
    _LOADED[spec] = function
    return function


def _is_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _import_path(where: str, spec: str) -> Any:
    path = Path(where).expanduser()
    if not path.is_file():
        raise ConfigError(f"--model {spec}: no file {path}; give the path of the Python file that defines the function")
    module_name = "cnn_search_model_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"--model {spec}: {path} cannot be imported as Python; give a .py file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # its classes pickle and its Keras objects register under this name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:  # the user's code: any error is theirs to fix, reported in one line
        del sys.modules[module_name]
        raise ConfigError(f"--model {spec}: importing {path} failed: {_one_line(e)}") from None
    return module


def _import_module(where: str, spec: str) -> Any:
    try:
        return importlib.import_module(where)
    except ImportError as e:
        raise ConfigError(
            f"--model {spec}: cannot import module '{where}' ({_one_line(e)}); give FILE.py:FUNCTION or a module on "
            "the Python path"
        ) from None
    except Exception as e:
        raise ConfigError(f"--model {spec}: importing {where} failed: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


# -- building ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """What ``declare`` found: the function's parameters, the optimizer of a model it
    compiled (None: uncompiled, the space samples the optimizer), and the shapes of the
    model's input and output (batch left out)."""

    params: tuple[Param, ...]
    optimizer: OptimizerConfig | None
    input_shape: tuple[Any, ...]
    output_shape: tuple[Any, ...]

    def check(self, spec: str, input_shape: tuple[int, ...], num_classes: int, text: bool = False) -> None:
        """A ``ConfigError`` unless the model takes the data's images and gives one score per class."""
        where = f"--model {spec}"
        if text:
            raise ConfigError(
                f"{where}: a model function of your own classifies images; text datasets use cnn or resnet"
            )
        shape, want = self.input_shape, tuple(input_shape)
        if len(shape) != len(want) or any(s is not None and s != d for s, d in zip(shape, want)):
            raise ConfigError(
                f"{where}: the model takes inputs of shape {shape}, and the images are {want}; "
                f"use keras.Input(shape={want})"
            )
        if self.output_shape != (num_classes,):
            raise ConfigError(
                f"{where}: the model's output has shape {self.output_shape}, and the data has {num_classes} classes; "
                f"end it with a Dense({num_classes}) layer"
            )

    def refuse_names(self, spec: str, names: set[str]) -> None:
        """A ``ConfigError`` if the function asks for one of ``names`` (an uncompiled model's optimizer's)."""
        for p in self.params:
            if p.name in names:
                raise ConfigError(
                    f"--model {spec}: hp '{p.name}' is a name the space's optimizer section samples; rename it, or "
                    "compile the model in your function (then its optimizer is kept and that section is not sampled)"
                )


def _call(spec: str, hp: HyperParameters, error: type[Exception]) -> keras.Model:
    """``spec``'s function called with ``hp``; ``error`` (a ``ConfigError`` before the study
    exists, a ``ModelBuildError`` in a trial) when it raises or returns no Keras model."""
    builder = load_builder(spec)  # first: it imports TensorFlow quietly
    import keras

    who = f"--model {spec}: {spec.rpartition(':')[2]}" if error is ConfigError else spec.rpartition(":")[2]
    try:
        model = builder(hp)
    except ConfigError:
        raise
    except Exception as e:
        raise error(f"{who} raised {_one_line(e)}") from None
    if not isinstance(model, keras.Model):
        raise error(
            f"{who} returned {type(model).__name__}, not a Keras model; return keras.Model(...) or "
            "keras.Sequential(...)"
        )
    return model


def declare(spec: str, reserved: frozenset[str] = frozenset()) -> Declared:
    """Run the function once at its defaults: its parameters, its optimizer if it compiled
    the model, and its input and output shapes (``Declared.check`` them against the data).
    Any problem is a ``ConfigError`` naming the function."""
    import_tensorflow_quietly()
    import keras

    hp = HyperParameters(reserved=reserved)
    try:
        model = _call(spec, hp, ConfigError)
        where = f"--model {spec}"
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ConfigError(
                f"{where}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                "an image classifier has one of each"
            )
        optimizer = compiled_optimizer(model, where)
        shapes = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    finally:
        keras.backend.clear_session(free_memory=True)
    return Declared(tuple(hp.declared.values()), optimizer, *shapes)


def compiled_optimizer(model: keras.Model, where: str) -> OptimizerConfig | None:
    """The optimizer of a model its function compiled, as an ``OptimizerConfig`` (None when
    uncompiled); a ``ConfigError`` for an optimizer or loss cnn-search cannot train with."""
    from search.core.config import OptimizerConfig

    optimizer = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or optimizer is None:
        return None
    loss = getattr(model, "loss", None)
    loss_name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", "")
    if "categorical_crossentropy" not in str(loss_name).lower():  # Keras' names, sparse or not
        raise ConfigError(
            f"{where}: the model is compiled with the loss {loss_name or type(loss).__name__!r}; cnn-search trains "
            "with categorical cross-entropy: compile with it, or leave the model uncompiled"
        )
    name = OPTIMIZERS.get(type(optimizer).__name__)
    if name is None:
        raise ConfigError(
            f"{where}: the model is compiled with {type(optimizer).__name__}; compile with SGD, Adam, AdamW, RMSprop "
            "or Adagrad, or leave it uncompiled so that the space samples the optimizer"
        )
    config = optimizer.get_config()
    rate = config.get("learning_rate")
    if not isinstance(rate, (int, float)):
        raise ConfigError(
            f"{where}: the model's optimizer has a learning-rate schedule; give it a number (cnn-search's "
            "schedule section shapes it)"
        )
    return OptimizerConfig(
        name=name,  # type: ignore[arg-type]
        learning_rate=float(f"{rate:.7g}"),  # as given: Keras keeps it in float32 (3e-3 reads 0.0030000000261)
        momentum=float(config.get("momentum") or (0.9 if name == "sgd" else 0.0)),
        nesterov=bool(config.get("nesterov", False)),
        weight_decay=float(config.get("weight_decay") or 0.0),
        ema=float(config.get("ema_momentum") or 0.99) if config.get("use_ema") else 0.0,
    )


def draw(
    trial: optuna.trial.BaseTrial, model: CustomModelConfig, reserved: frozenset[str] = frozenset()
) -> tuple[CustomModelConfig, OptimizerConfig | None]:
    """One trial's values of the function's parameters, drawn through ``trial`` by the
    study's sampler; and the optimizer of a compiled model.  A function that raises fails
    the trial (``ModelBuildError``), not the search."""
    import dataclasses

    import keras

    hp = HyperParameters(trial=trial, reserved=reserved)
    try:
        built = _call(model.build, hp, ModelBuildError)
        try:
            optimizer = compiled_optimizer(built, f"the model function {model.build.rpartition(':')[2]}")
        except ConfigError as e:
            raise ModelBuildError(str(e)) from None
    finally:
        keras.backend.clear_session(free_memory=True)
    return dataclasses.replace(model, hp=dict(hp.values)), optimizer


def build(model: CustomModelConfig) -> keras.Model:
    """Your model at ``model.hp`` (``search.core.models.build_model`` wraps it: raw pixels in,
    normalization, a softmax if it ends in logits, probabilities out)."""
    return _call(model.build, HyperParameters(values=model.hp), ModelBuildError)


def ends_in_softmax(model: keras.Model) -> bool:
    """Whether ``model``'s last layer is a softmax (else its outputs are logits)."""
    import keras

    last = model.layers[-1] if model.layers else None
    if isinstance(last, keras.layers.Softmax):
        return True
    return getattr(last, "activation", None) is keras.activations.softmax
