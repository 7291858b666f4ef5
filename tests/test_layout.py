"""The package's layers, checked from the source: ``core`` imports no Optuna and nothing of
the layers above it, no module imports itself back through others, every command lives
in its own ``search.cli`` module, and no module grows past what a reader takes in."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "search"
MAX_LINES = 340  # about 300: the line of "too long to read at once", with a little room
ABOVE_CORE = ("search.study", "search.reporting", "search.final", "search.cli")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imported(path: Path, top_level_only: bool) -> set[str]:
    """Modules ``path`` imports: at import time only (``top_level_only``: not inside
    functions, not under ``if TYPE_CHECKING``), or anywhere in it."""
    tree = ast.parse(path.read_text())
    if top_level_only:
        nodes = [n for n in tree.body if not isinstance(n, ast.If)]
    else:  # everywhere but ``if TYPE_CHECKING:`` blocks, which only type checkers run
        checking = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for n in ast.walk(block)
        }
        nodes = [n for n in ast.walk(tree) if id(n) not in checking]
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_the_core_imports_no_optuna_and_nothing_above_it():
    offenders = {}
    for name, path in modules().items():
        if not name.startswith("search.core"):
            continue
        bad = sorted(
            m
            for m in imported(path, top_level_only=False)
            if m.split(".")[0] in ("optuna", "optuna_integration", "optuna_dashboard") or m.startswith(ABOVE_CORE)
        )
        if bad:
            offenders[name] = bad
    assert offenders == {}


def test_training_a_config_loads_no_optuna():
    """At run time too: the core trains a config with Optuna never imported."""
    code = (
        "import sys\n"
        "from search.core.config import RunConfig, TrainConfig\n"
        "from search.core.data import load_dataset\n"
        "from search.core.training import fit\n"
        "from search.core.space_files import load_space\n"
        "load_space('cnn')\n"
        "config = RunConfig(train=TrainConfig(epochs=1))\n"
        "fit(config, load_dataset(config.data))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'search') "
        "and m.startswith(('optuna', 'search.study', 'search.reporting', 'search.cli'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_no_module_imports_itself_back():
    """Imports inside functions count too: a lazy import hides a loop, it does not remove it."""
    graph = {
        name: {m for m in imported(path, top_level_only=False) if m in modules() and m != name}
        for name, path in modules().items()
    }
    cycles = []

    def visit(node: str, stack: list[str], state: dict[str, int]) -> None:
        state[node] = 1
        stack.append(node)
        for other in graph[node]:
            if state.get(other) == 1:
                cycles.append(stack[stack.index(other) :] + [other])
            elif other not in state:
                visit(other, stack, state)
        stack.pop()
        state[node] = 2

    state: dict[str, int] = {}
    for name in graph:
        if name not in state:
            visit(name, [], state)
    assert cycles == []


LAYERS = ("search.core", "search.study", "search.reporting", "search.final", ("search.cli", "search.api"))


def test_each_layer_imports_only_the_layers_below_it():
    """core < study < reporting < final < cli and api, imports inside functions included:
    the study reports through callbacks it is given (the trial lines), never by importing
    ``reporting``."""
    offenders = {}
    for name, path in modules().items():
        mine = next((i for i, layer in enumerate(LAYERS) if name.startswith(layer)), None)
        if mine is None:
            continue
        above = tuple(p for layer in LAYERS[mine + 1 :] for p in ((layer,) if isinstance(layer, str) else layer))
        bad = sorted(m for m in imported(path, top_level_only=False) if above and m.startswith(above))
        if bad:
            offenders[name] = bad
    assert offenders == {}


def test_only_the_adapter_touches_optunas_private_attributes():
    private = re.compile(r"\._(storage|study_id|trial_id)\b|optuna\.\w+\._\w+|from optuna[\w.]*\._")
    users = {
        name: sorted(set(private.findall(path.read_text())))
        for name, path in modules().items()
        if private.search(path.read_text()) and name != "search.study.optuna_access"
    }
    assert users == {}


def test_only_the_trial_record_spells_a_trial_attribute_key():
    """Trial attributes are read with ``TrialRecord.of`` and written with ``write``,
    ``write_to`` or ``attrs`` (search.study.record), which know every key."""
    from search.study.record import TrialRecord

    keys = "|".join(f.name for f in __import__("dataclasses").fields(TrialRecord))
    spelled = re.compile(
        rf"user_attrs(\.get\(|\[)[\"']({keys})[\"']|set_(trial_)?user_attr\([^,]*,?\s*[\"']({keys})[\"']"
        rf"|user_attrs=\{{[\"']"
    )
    users = {
        name: sorted({m.group(0) for m in spelled.finditer(path.read_text())})
        for name, path in modules().items()
        if name != "search.study.record" and spelled.search(path.read_text())
    }
    assert users == {}


def test_no_module_is_too_long_to_read():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_each_command_is_one_module_of_the_cli_package():
    from search.cli import COMMANDS

    for command, (module_name, _) in COMMANDS.items():
        assert module_name.startswith("search.cli."), command
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run), command
    leftover = {name for name in modules() if name.startswith("search.cli.")} - {m for m, _ in COMMANDS.values()}
    assert leftover == set()  # the package holds commands, nothing else


@pytest.mark.parametrize(
    "name", ["run_search", "from_arrays", "compile_model", "RunConfig", "fit", "train_final", "load_dataset"]
)
def test_the_python_api_exports(name):
    import search

    assert name in search.__all__ and getattr(search, name) is not None
