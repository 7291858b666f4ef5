"""The benchmark runner in miniature (digits, a tiny space, seconds per tool), the
KerasTuner translation of a space, the budget rules and the report writer."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from optuna.trial import FixedTrial

from benchmarks.record import Recorder, ToolRun
from search.core.config import RunConfig
from search.core.space_files import load_space
from search.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
TINY_SPACE = ROOT / "tests" / "spaces" / "bench_tiny.toml"
OPTUNA_TOOLS = (
    "cnn-search",
    "recipe",
    "optuna-example",
    "random",
    "tpe-median",
    "cnn-search-baseline",
    "cnn-search-tpe",
)  # and the recipe: no search
KT_TOOLS = ("kt-hyperband", "kt-bayesian")
HAS_KT = importlib.util.find_spec("keras_tuner") is not None
NO_KT = "keras-tuner is not installed: pip install -e '.[cpu,test,bench]' to test the KerasTuner tools"


# --- budget rules ----------------------------------------------------------------------


def test_recorder_counts_a_trial_finished_after_the_budget_as_cut_and_ignores_its_value():
    rec = Recorder("x", seed=0, budget=10.0)
    rec.trial_done("complete", 0.5, lambda: RunConfig())
    rec.trial_done("pruned", 0.9, lambda: RunConfig())
    rec.trial_done("complete", 0.4, lambda: RunConfig())  # not an improvement
    rec._start -= 11.0  # eleven seconds later: past the budget
    rec.epoch_done()
    rec.trial_done("complete", 0.99, lambda: RunConfig())
    rec.trial_cut()  # stopped by the clock
    run = rec.finish()
    assert run.trials == {"complete": 2, "pruned": 1, "failed": 0, "cut": 2}
    assert [v for _, v in run.timeline] == [0.5] and run.best_val == 0.5 and run.epochs == 0
    assert run.best_config == RunConfig().to_dict()


def test_tool_run_answers_best_by_a_time_and_time_to_reach_a_value():
    run = ToolRun("x", 0, 100.0, timeline=[(10.0, 0.5), (40.0, 0.7), (90.0, 0.8)])
    assert run.best_by(5) is None and run.best_by(40) == 0.7 and run.best_by(100) == 0.8
    assert run.time_to_reach(0.7) == 40.0 and run.time_to_reach(0.75) == 90.0 and run.time_to_reach(0.9) is None
    assert ToolRun.from_dict(json.loads(json.dumps(run.to_dict()))) == run


@pytest.mark.parametrize(
    ("budget", "seeds", "expected"),
    [
        (30.0, [0, 1, 2], "A smoke-size run (30 s per tool, 3 seeds)"),
        (600.0, [0], "A smoke-size run (600 s per tool, 1 seed)"),
        (
            180.0,
            [0, 1, 2],
            "A short budget (180 s per tool): each tool ran only a few trials (mean per seed: a 2.0, b 5.0)",
        ),
        (600.0, [0, 1, 2], None),
    ],
)
def test_report_says_when_a_run_is_too_small_to_rank_the_tools(budget, seeds, expected):
    from benchmarks.report import search_section, summary_rows
    from benchmarks.results import SearchResults

    runs = [ToolRun(tool, seed, budget, trials={"complete": n}) for seed in seeds for tool, n in (("a", 2), ("b", 5))]
    results = SearchResults({"budget_s": budget, "dataset": "d", "epochs": 4, "space": "cnn", "split": "s"}, runs)
    assert [r["trials"] for r in summary_rows(results)] == ["2.0", "5.0"]
    text = search_section(results, Path("out/d.json"), Path("out/d.png"), Path("out.md"))
    if expected is None:
        assert "smoke-size" not in text and "short budget" not in text
    else:
        assert expected in text


def _run(tool, seed, timeline, test=None, budget=100.0):
    return ToolRun(
        tool, seed, budget, timeline=timeline, best_val=max((v for _, v in timeline), default=None), test_accuracy=test
    )


def test_report_orders_cnn_search_then_recipe_then_peers_with_a_time_column_per_peer():
    from benchmarks.report import peers, search_section, summary_rows
    from benchmarks.results import SearchResults

    runs = [
        _run("random", 0, [(10.0, 0.5), (60.0, 0.7)]),
        _run("kt-hyperband", 0, [(20.0, 0.5), (80.0, 0.8)]),
        _run("recipe", 0, [(50.0, 0.75)]),
        _run("cnn-search", 0, [(30.0, 0.72), (40.0, 0.85)]),
        _run("tpe-median", 0, [(30.0, 0.6)]),
        _run("random", 1, [(70.0, 0.6)]),
        _run("kt-hyperband", 1, [(40.0, 0.7)]),
        _run("recipe", 1, [(50.0, 0.7)]),
        _run("cnn-search", 1, [(10.0, 0.65)]),  # matches random's 0.6, never hyperband's 0.7
        _run("tpe-median", 1, [(30.0, 0.5)]),
    ]
    results = SearchResults({"budget_s": 100.0, "dataset": "d", "epochs": 4, "space": "cnn", "split": "s"}, runs)
    assert peers(results) == ["kt-hyperband", "random"]
    rows = {row["tool"]: row for row in summary_rows(results)}
    assert list(rows) == ["cnn-search", "recipe", "tpe-median", "kt-hyperband", "random"]
    # cnn-search: hyperband's 0.8 at 40 s, then never; random's 0.7 at 30 s, its 0.6 at 10 s
    assert rows["cnn-search"]["to kt-hyperband"] == "40 s (1/2)"
    assert rows["cnn-search"]["to random"] == "20 ± 14 s"
    assert rows["recipe"]["to kt-hyperband"] == "50 s (1/2)" and rows["recipe"]["to random"] == "50 ± 0 s"
    assert rows["tpe-median"]["to kt-hyperband"] == "never (0/2)"
    assert rows["kt-hyperband"]["to kt-hyperband"] == "60 ± 28 s"
    text = search_section(results, Path("out/d.json"), Path("out/d.png"), Path("out.md"))
    head = (
        "| tool | best val @25% | @50% | @100% | time to kt-hyperband's final best | time to random's final best "
        "| trials | pruned | failed | cut | epochs | test acc of winner |"
    )
    assert head in text and "Hyperband's final best" not in text
    assert "| cnn-search | 0.6500 (1/2) | 0.7500 ± 0.1414 | 0.7500 ± 0.1414 | 40 s (1/2) | 20 ± 14 s |" in text
    positions = [text.index(f"| {tool} |") for tool in ("cnn-search", "recipe", "tpe-median", "kt-hyperband", "random")]
    assert positions == sorted(positions)


def test_report_checks_the_targets_against_the_recipe_and_the_best_peer():
    from benchmarks.report import targets
    from benchmarks.results import SearchResults

    runs = [
        _run("cnn-search", 0, [(10.0, 0.80), (20.0, 0.86)], test=0.85),
        _run("cnn-search", 1, [(30.0, 0.84)], test=0.83),
        _run("recipe", 0, [(50.0, 0.84)]),
        _run("recipe", 1, [(50.0, 0.83)]),
        _run("kt-hyperband", 0, [(60.0, 0.80)]),
        _run("kt-hyperband", 1, [(60.0, 0.82)]),
        _run("random", 0, [(60.0, 0.70)]),
        _run("random", 1, [(60.0, 0.90)]),  # mean 0.80 < hyperband's 0.81: hyperband is the best peer
    ]
    lines = targets(SearchResults({"budget_s": 100.0}, runs))
    text = "\n".join(lines)
    # mean 0.85 against the recipe's 0.835: +1.50 points, bar 1.0
    assert "cnn-search 0.8500 against recipe 0.8350 (2 seeds), +1.50 points: **met** by 0.50 points" in text
    # against the best peer: +4.00 points, bar 2.5
    assert "best peer's + 2.5 points (kt-hyperband): cnn-search 0.8500 against kt-hyperband 0.8100" in text
    assert "+4.00 points: **met** by 1.50 points" in text
    # within 25 s: seed 0 matched 0.80 at 10 s, seed 1 matched 0.82 at 30 s
    assert "(kt-hyperband) final best within 25% of the budget (≤ 25 s, every seed): " in text
    assert "seed 0: 10 s; seed 1: 30 s" in text
    assert "**missed** (1 of 2 seeds reached it)" in text
    assert "test accuracy 0.8400 beside its best validation accuracy 0.8500" in text
    assert "gap -1.00 points: **met** (2/2 seeds tested)" in text
    assert "retrained validation accuracy was not recorded" in text
    runs[0].retrain_val, runs[1].retrain_val = 0.855, 0.82  # -0.50 and -2.00 points from the trial values
    text = "\n".join(targets(SearchResults({"budget_s": 100.0}, runs)))
    assert (
        "lands within 1 point of its trial value" in text
        and "seed 0: -0.50; seed 1: -2.00: **missed** (1 of 2 seeds within it)" in text
    )

    worse = [runs[0], _run("cnn-search", 1, [(5.0, 0.83)]), *runs[2:]]  # seed 1: not tested
    text = "\n".join(targets(SearchResults({"budget_s": 100.0}, worse)))
    assert "against recipe 0.8350 (2 seeds), +1.00 points: **met** by 0.00 points" in text
    assert "seed 0: 10 s; seed 1: 5 s" in text and "**met** (2 of 2 seeds reached it)" in text
    assert "gap -1.00 points: **missed** (1/2 seeds tested)" in text
    text = "\n".join(targets(SearchResults({"budget_s": 100.0}, [_run("cnn-search", 0, [(5.0, 0.6)])])))
    assert "+ 2.5 points: **missed**" not in text
    assert "recipe's + 1.0 point: cannot be checked yet (no seed with both cnn-search and recipe results)" in text
    assert "best peer's + 2.5 points: cannot be checked yet (no peer with results)" in text
    assert "within 25% of the budget: cannot be checked yet (no peer with results)" in text
    assert "no seed's winner has a test accuracy (0/1 seeds)" in text
    text = "\n".join(targets(SearchResults({"budget_s": 100.0}, runs[2:])))  # no cnn-search run: nothing crashes
    assert text.count("cannot be checked yet") == 4
    behind = [runs[0], _run("cnn-search", 1, [(5.0, 0.7)]), *runs[2:4]]
    text = "\n".join(targets(SearchResults({"budget_s": 100.0}, behind)))
    assert (
        "+ 1.0 point: cnn-search 0.7800 against recipe 0.8350 (2 seeds), -5.50 points: **missed** by 6.50 points"
        in text
    )


# --- KerasTuner translation ---------------------------------------------------------------


class RecordingTrial(FixedTrial):
    """A FixedTrial that remembers which parameters the space asked for."""

    def __init__(self, params: dict) -> None:
        super().__init__(params)
        self.asked: set[str] = set()

    def suggest_float(self, name, *args, **kwargs):
        self.asked.add(name)
        return super().suggest_float(name, *args, **kwargs)

    def suggest_int(self, name, *args, **kwargs):
        self.asked.add(name)
        return super().suggest_int(name, *args, **kwargs)

    def suggest_categorical(self, name, *args, **kwargs):
        self.asked.add(name)
        return super().suggest_categorical(name, *args, **kwargs)


def _kt_samples(space, base, n: int):
    kt = pytest.importorskip("keras_tuner", reason=NO_KT)
    from benchmarks.kt_space import declare

    hp = kt.HyperParameters()
    declare(hp, space, base)
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=n, seed=0)
    oracle.update_space(hp)
    return hp, [oracle.populate_space(str(i))["values"] for i in range(n)]


def test_keras_tuner_space_has_the_same_ranges_and_conditions():
    space, base = load_space("cnn"), RunConfig()
    hp, _ = _kt_samples(space, base, 1)
    declared = {h.name: h for h in hp.space}
    assert set(declared) == {p.name for p in space.params if p.kind != "fixed"}
    lr = declared["learning_rate"]
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-1, "log")
    assert type(declared["batch_norm"]).__name__ == "Boolean"
    assert list(declared["optimizer"].values) == ["sgd", "adam", "adamw", "rmsprop", "adagrad"]
    momentum = declared["momentum"].conditions
    assert [(c.name, c.values) for c in momentum] == [("optimizer", ["sgd", "rmsprop"])]


@pytest.mark.parametrize("space_name", ["cnn", "mixed"])
def test_keras_tuner_samples_become_the_configs_the_space_samples(space_name, tmp_path):
    from benchmarks.kt_space import config_from_values

    if space_name == "mixed":  # model kind chosen; resnet keys only for resnet; a when on a fixed entry
        path = tmp_path / "mixed.toml"
        path.write_text(
            'extends = "cnn"\n[model]\nkind = '
            '{ choices = ["cnn", "resnet"] }\nblocks_per_stage = { low = 1, high = 2 }\n'
            'version = { choices = [1, 2] }\n[optimizer]\nname = "sgd"\n'
            'momentum = { low = 0.8, high = 0.99, when = { optimizer = "sgd" } }\n'
        )
        space = load_space(str(path))
    else:
        space = load_space(space_name)
    base = RunConfig()
    _, samples = _kt_samples(space, base, 40)
    kinds = set()
    for values in samples:
        trial = RecordingTrial(values)
        config = space.sample(trial, base)
        assert trial.asked == set(values), "KerasTuner's active parameters must be exactly those the space asks for"
        assert config_from_values(values, space, base) == config
        RunConfig.from_dict(config.to_dict())  # valid, with the space's own types (True, not 1)
        kinds.add(config.model.kind)
    assert kinds == ({"cnn", "resnet"} if space_name == "mixed" else {"cnn"})


# --- the runner, end to end ----------------------------------------------------------------


def _budget() -> int:
    """Seconds per tool: 12, or more on a machine so busy that a tiny trial takes long
    (the budget must leave time for a trial to finish, or there is nothing to check;
    cnn-search first times a few steps of its recipe to plan the budget)."""
    import time

    from benchmarks.tools import load_data, retrain_and_test
    from search.core.config import CNNConfig, TrainConfig

    config = RunConfig(
        model=CNNConfig(blocks=1, convs_per_block=1, base_filters=8, dense_units=0),
        train=TrainConfig(batch_size=128, epochs=2),
    )
    _, data = load_data("digits", None, 200, 150)
    retrain_and_test(config, data)  # the first fit in a process pays TensorFlow's start-up
    start = time.perf_counter()
    retrain_and_test(config, data)
    return max(12, round(1.5 * (time.perf_counter() - start) + 1))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One run of every installed tool: digits, 1 seed, a few seconds each, up to 2 epochs a trial."""
    from benchmarks.run import main

    out = tmp_path_factory.mktemp("bench") / "results"
    tools = [*OPTUNA_TOOLS, *(KT_TOOLS if HAS_KT else ())]
    budget = _budget()
    args = [
        "--dataset",
        "digits",
        "--limit-train",
        "200",
        "--val-size",
        "150",
        "--space",
        str(TINY_SPACE),
        "--epochs",
        "2",
        "--budget",
        str(budget),
        "--seeds",
        "0",
        "--tools",
        *tools,
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return out, json.loads((out / "digits.json").read_text())


def _check_runs(results: dict, tools: tuple[str, ...]) -> None:
    runs = {r["tool"]: r for r in results["runs"]}
    for tool in tools:
        run = runs[tool]
        budget = run["budget_s"]
        assert run["seed"] == 0 and budget >= 12
        assert sum(run["trials"].values()) >= 1 and set(run["trials"]) == {"complete", "pruned", "failed", "cut"}
        assert run["epochs"] >= 1, f"{tool} spent no epoch within its budget"
        assert isinstance(run["timeline"], list)
        for t, value in run["timeline"]:
            assert 0 < t <= budget and 0 <= value <= 1
        if run["timeline"]:  # a winner was found in time: it was retrained and tested
            assert run["best_val"] == max(v for _, v in run["timeline"])
            assert 0 <= run["test_accuracy"] <= 1
            if run["retrain_s"] is not None and "reused" not in (run["note"] or ""):  # retrained here, validated too
                assert 0 <= run["retrain_val"] <= 1


def test_smoke_run_records_every_optuna_based_tool(smoke):
    _, results = smoke
    _check_runs(results, OPTUNA_TOOLS)
    assert any(r["timeline"] for r in results["runs"]), "no tool finished a trial within its budget"


@pytest.mark.skipif(not HAS_KT, reason=NO_KT)
def test_smoke_run_records_the_keras_tuner_tools(smoke):
    _, results = smoke
    _check_runs(results, KT_TOOLS)


def test_report_is_regenerated_from_the_json_alone(smoke):
    from benchmarks.report import write_report

    out, results = smoke
    markdown, png = out.with_suffix(".md"), out / "digits.png"
    assert markdown.exists() and png.exists()  # written by the runner
    markdown.unlink()
    png.unlink()
    (out / "summary.md").write_text("## What the numbers say\n\nHand-written.\n")
    (out / "recipe-variants.json").write_text('[{"label": "today"}]')  # another tool's runs beside them: skipped
    write_report(out, markdown)
    text = markdown.read_text()
    assert text.index("## What the numbers say") < text.index("## digits")  # the summary comes first
    assert png.stat().st_size > 1000
    for run in results["runs"]:
        assert f"| {run['tool']} |" in text
    assert "results/digits.png" in text and "python benchmarks/run.py" in text


def test_rerunning_with_other_settings_is_refused(smoke, capsys):
    from benchmarks.run import main

    out, results = smoke
    budget = str(results["settings"]["budget_s"])
    code = main(
        [
            "--dataset",
            "digits",
            "--limit-train",
            "200",
            "--val-size",
            "150",
            "--space",
            str(TINY_SPACE),
            "--epochs",
            "3",
            "--budget",
            budget,
            "--seeds",
            "0",
            "--tools",
            "random",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "other settings (epochs)" in capsys.readouterr().err


def test_flip_tta_script_measures_both_ways_and_refuses_data_it_does_not_flip(tmp_path, capsys):
    from benchmarks.flip_tta import main
    from tests.conftest import write_tinted_photos

    write_tinted_photos(tmp_path / "photos", 30, 16)
    assert (
        main(["--dataset", f"folder:{tmp_path / 'photos'}", "--limit-train", "60", "--val-size", "24", "--epochs", "2"])
        == 0
    )
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["seed"] == 0 and row["epochs"] == 2 and row["train_s"] > 0
    assert all(0 <= row[f"{split}_{way}"] <= 1 for split in ("val", "test") for way in ("plain", "flip"))
    assert main(["--dataset", "digits", "--limit-train", "200", "--val-size", "150", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not flip digits" in err[0]
    assert main(["--dataset", "folder:no/such/folder", "--epochs", "1"]) == 2  # bad data: one line, no traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no/such/folder" in err[0]


def test_the_rich_budget_report_checks_test_accuracy_against_recipe_paced_and_the_best_peer():
    from benchmarks.report import rich_targets
    from benchmarks.results import SearchResults

    runs = [
        _run("cnn-search", 0, [(20.0, 0.80), (90.0, 0.88)], test=0.870),
        _run("cnn-search", 1, [(30.0, 0.84), (95.0, 0.87)], test=0.860),
        _run("recipe-paced", 0, [(95.0, 0.87)], test=0.868),
        _run("recipe-paced", 1, [(95.0, 0.87)], test=0.868),  # seed 1: 0.8 below
        _run("recipe", 0, [(40.0, 0.82)]),
        _run("recipe", 1, [(40.0, 0.85)]),
        _run("kt-hyperband", 0, [(60.0, 0.80)], test=0.81),
        _run("optuna-example", 0, [(60.0, 0.79)], test=0.84),  # the best peer on test
    ]
    text = "\n".join(rich_targets(SearchResults({"budget_s": 100.0, "dataset": "fashion_mnist"}, runs)))
    assert "cnn-search ≥ recipe-paced + 0.5 points: test 0.8650 against 0.8680 (2 seeds; per seed +0.20, -0.80)" in text
    assert "-0.30 points: **missed** by 0.80; no seed more than 0.5 below: **missed** (worst -0.80)" in text
    assert "best peer + 3.0 points (test) (optuna-example): test 0.8700 against 0.8400 (1 seed; per seed +3.00)" in text
    assert "+3.00 points: **met** by 0.00" in text
    # the recipe reached 0.82 and 0.85; cnn-search matched them at 90 s and 95 s, past 25 s
    assert "seed 0: 90 s (recipe 0.8200); seed 1: 95 s (recipe 0.8500): **missed** (0 of 2 seeds reached it)" in text
    cifar = "\n".join(rich_targets(SearchResults({"budget_s": 100.0, "dataset": "folder:x/cifar10-subset"}, runs)))
    assert "recipe-paced + 2.5 points" in cifar


def test_merge_joins_results_of_separate_folders_and_refuses_other_settings(tmp_path):
    from benchmarks.merge import merge
    from benchmarks.results import SearchResults

    settings = {
        "dataset": "fashion_mnist",
        "budget_s": 100.0,
        "epochs": 10,
        "limit_train": 1000,
        "val_size": 200,
        "split": "s",
        "space": "cnn",
        "space_fingerprint": "new",
    }
    for name, tool, fingerprint in (("ours", "cnn-search", "new"), ("peer", "kt-hyperband", "old")):
        SearchResults({**settings, "space_fingerprint": fingerprint}, [_run(tool, 0, [(50.0, 0.8)], test=0.8)]).save(
            tmp_path / name / "fashion_mnist.json"
        )
    target = merge(
        tmp_path / "merged", [tmp_path / "ours" / "fashion_mnist.json", tmp_path / "peer" / "fashion_mnist.json"]
    )
    merged = SearchResults.from_dict(json.loads(target.read_text()))
    assert merged.tools == ["cnn-search", "kt-hyperband"] and merged.settings["space_fingerprint"] == "new"
    assert merged.runs_of("kt-hyperband")[0].note == "searched space fingerprint old"
    SearchResults({**settings, "budget_s": 50.0}, []).save(tmp_path / "other" / "fashion_mnist.json")
    with pytest.raises(UsageError, match="other settings \\(budget_s\\)"):
        merge(tmp_path / "merged", [target, tmp_path / "other" / "fashion_mnist.json"])


def test_what_cnn_search_explored_names_the_trunk_its_branches_and_the_final_run():
    from benchmarks.report import explored_table
    from benchmarks.results import SearchResults

    run = _run("cnn-search", 0, [(20.0, 0.80), (90.0, 0.88)], test=0.870)
    run.explored = [
        {"trial": 0, "phase": "explore", "change": "recipe", "epochs": 30, "value": 0.80, "at_s": 20.0},
        {"trial": 1, "phase": "branch", "change": "replay", "source": 0, "epochs": 40, "value": 0.81, "at_s": 30.0},
        {
            "trial": 2,
            "phase": "branch",
            "change": {"cutout": 0.25},
            "source": 0,
            "epochs": 40,
            "value": 0.82,
            "at_s": 40.0,
        },
        {
            "trial": 3,
            "phase": "final",
            "change": "replay",
            "source": 2,
            "continued_from": 2,
            "epochs": 90,
            "value": 0.88,
            "at_s": 99.0,
        },
    ]
    line = explored_table(SearchResults({"budget_s": 100.0, "dataset": "fashion_mnist"}, [run]))[1]
    assert line == (
        "- seed 0: #0 explore (recipe) 30 ep 0.8000 at 20 s; #1 branch (trial 0 continued unchanged) 40 ep 0.8100 "
        "at 30 s; #2 branch (trial 0 continued with cutout 0.25) 40 ep 0.8200 at 40 s; #3 final (trial 2 again, "
        "continued from its weights) 90 ep 0.8800 at 99 s"
    )


def test_epoch_time_splits_each_epoch_and_compares_it_with_the_probe(tmp_path, capsys):
    from benchmarks.epoch_time import main

    out = tmp_path / "epoch-time.json"
    args = ["--dataset", "digits", "--limit-train", "300", "--val-size", "100", "--epochs", "3", "--out", str(out)]
    assert main(args) == 0
    (run,) = json.loads(out.read_text())
    assert [e["epoch"] for e in run["epochs"]] == [1, 2, 3]
    for e in run["epochs"]:  # the parts add up to the epoch, each one measured
        assert e["steps"] > 0 and e["validation"] > 0 and e["between_steps"] >= 0
        assert e["steps"] + e["between_steps"] + e["validation"] + e["rest"] == pytest.approx(e["wall"], abs=0.01)
    assert run["probe_epoch_s"] > 0 and run["pipeline_epoch_s"] > 0 and run["step_in_memory_s"] > 0
    mean = run["later_epochs_mean"]["wall"]
    assert run["sustained_over_probe"] == pytest.approx(mean / run["probe_epoch_s"], rel=0.05)
    assert main(["--dataset", "folder:no/such/folder", "--epochs", "1"]) == 2  # one line, no traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_recipe_variant_trains_the_changed_recipe_paced_and_tests_it(tmp_path, capsys):
    import keras

    from benchmarks.recipe_variant import main

    out = tmp_path / "variants.json"
    common = ["--dataset", "digits", "--limit-train", "300", "--val-size", "100", "--budget", "25", "--out", str(out)]
    assert main([*common, "--label", "today"]) == 0
    assert (
        main([*common, "--label", "narrow-bf16", "--set", "model.base_filters=8", "--precision", "mixed_bfloat16"]) == 0
    )
    today, narrow = json.loads(out.read_text())
    assert (today["label"], narrow["label"]) == ("today", "narrow-bf16")
    assert narrow["params"] < today["params"] and narrow["precision"] == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # the policy is put back
    for run in (today, narrow):
        assert run["epochs"] == len(run["epoch_seconds"]) >= 1 and 0 <= run["test_accuracy"] <= 1
        assert run["wall_s"] <= 25 + 5  # paced inside its budget (the probe included), a few seconds to test
    assert main([*common, "--label", "x", "--set", "model.no_such_key=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.no_such_key" in err[0]
    assert len(json.loads(out.read_text())) == 2  # nothing written for the refused run
    assert main([*common, "--label", "fixed", "--epochs", "2"]) == 0  # a fixed schedule: not paced
    fixed = json.loads(out.read_text())[-1]
    assert fixed["epochs"] == 2 and fixed["budget_s"] is None and fixed["probe_epoch_s"] is None


def test_pair_runs_the_recipe_and_a_variant_side_by_side_and_resumes(tmp_path, capsys):
    import os

    from benchmarks.pair import main

    cores = sorted(os.sched_getaffinity(0))
    out = tmp_path / "pair"
    argv = ["--dataset", "digits", "--limit-train", "300", "--val-size", "100", "--budget", "20", "--seeds", "0"]
    argv += ["--set", "model.base_filters=8", "--out", str(out), "--cores", str(cores[0]), str(cores[-1])]
    assert main(argv) == 0
    recipe, variant = (json.loads((out / f"{side}.json").read_text()) for side in ("recipe", "variant"))
    assert [r["label"] for r in recipe] == ["recipe"] and [r["set"] for r in recipe] == [[]]
    assert [r["label"] for r in variant] == ["model.base_filters=8"] and variant[0]["params"] < recipe[0]["params"]
    assert recipe[0]["cores"] == [cores[0]] and variant[0]["cores"] == [cores[-1]]  # one core each
    printed = capsys.readouterr().out
    difference = 100 * (variant[0]["test_accuracy"] - recipe[0]["test_accuracy"])
    assert f"({difference:+.2f})" in printed and "mean difference over 1 seed(s)" in printed
    assert main(argv) == 0  # resumed: the seed both sides hold is not run again
    assert "seed 0: both sides already in" in capsys.readouterr().out
    assert len(json.loads((out / "recipe.json").read_text())) == 1
    with pytest.raises(SystemExit) as refused:
        main(["--dataset", "digits", "--out", str(out)])  # no change to measure
    assert refused.value.code == 2
    capsys.readouterr()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "recipe.json").write_text('{"kind": "search"}')  # not a side's runs: refused before any run
    assert main([*argv[:8], "--set", "model.base_filters=8", "--out", str(theirs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a list of recipe_variant.py runs" in err[0]
    assert (theirs / "recipe.json").read_text() == '{"kind": "search"}' and len(list(theirs.iterdir())) == 1
    based = [*argv[:8], "--seeds", "1", "--base-set", "model.base_filters=8", "--set", "train.label_smoothing=0.1"]
    based += ["--out", str(tmp_path / "based"), "--cores", str(cores[0]), str(cores[-1])]
    assert main(based) == 0  # seed 1: the cores swapped
    recipe, variant = (json.loads((tmp_path / "based" / f"{side}.json").read_text()) for side in ("recipe", "variant"))
    assert recipe[0]["set"] == ["model.base_filters=8"] and recipe[0]["label"] == "recipe model.base_filters=8"
    assert variant[0]["set"] == ["model.base_filters=8", "train.label_smoothing=0.1"]
    assert recipe[0]["cores"] == [cores[-1]] and variant[0]["cores"] == [cores[0]]
