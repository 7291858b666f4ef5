from __future__ import annotations

import json

import optuna
import pytest
from conftest import run_cli

from search.core.config import RunConfig
from search.errors import UsageError
from search.reporting.export import EXPORT_SCHEMA_VERSION, choose_trial, export_trial, read_export
from search.study.settings import StudySettings
from search.study.storage import SETTINGS_ATTR


def test_export_writes_the_best_trial_as_plain_json(tiny_study, tmp_path):
    out = tmp_path / "best.json"
    result = run_cli("export", *tiny_study.where, "--out", str(out), cwd=tiny_study.cwd)
    assert result.returncode == 0, result.stderr
    study = tiny_study.load()
    best = study.best_trial
    raw = json.loads(out.read_text())
    assert set(raw) == {"schema_version", "config", "source"}
    assert raw["schema_version"] == EXPORT_SCHEMA_VERSION
    assert RunConfig.load(out) == RunConfig.from_dict(best.user_attrs["config"])
    source = raw["source"]
    assert (source["study"], source["trial"], source["state"]) == ("tiny-digits", best.number, "COMPLETE")
    assert source["value"] == best.value
    assert (source["monitor"], source["direction"]) == ("val_accuracy", "maximize")
    assert source["seed"] == best.number  # trial seed = study seed (0) + trial number
    assert source["split_seed"] == 0
    assert source["storage"].startswith("sqlite:///") and source["storage"].endswith("tiny-digits.db")
    assert all(source["packages"][p] for p in ("cnn-search", "tensorflow", "keras", "optuna", "numpy"))
    assert source["exported_at"].endswith("+00:00")
    assert f"exported trial {best.number}" in result.stdout and "train --config" in result.stdout


def test_export_of_a_chosen_pruned_trial_and_default_path(tiny_study):
    study = tiny_study.load()
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, "the tiny study is expected to prune a trial (successive halving)"
    number = pruned[0].number
    result = run_cli("export", *tiny_study.where, "--trial", str(number), cwd=tiny_study.cwd)
    assert result.returncode == 0, result.stderr
    export = read_export(tiny_study.studies_dir / f"tiny-digits-trial{number}.json")
    assert export.source["trial"] == number and export.source["state"] == "PRUNED"
    assert export.source["value"] == pruned[0].intermediate_values[pruned[0].last_step]  # Optuna keeps the last report
    assert export.source["epochs_run"] == 1
    assert export.config == RunConfig.from_dict(pruned[0].user_attrs["config"])


def test_export_masks_the_storage_password(tiny_study):
    study = tiny_study.load()
    export = export_trial(study, study.best_trial, "postgresql://alice:s3cret@db.example/optuna")
    assert "s3cret" not in json.dumps(export.to_dict())
    assert export.source["storage"] == "postgresql://alice:***@db.example/optuna"


@pytest.mark.parametrize(
    "args, message",
    [
        (("--trial", "99"), "has no trial 99"),
        (("--study", "nope"), "no study database"),
    ],
)
def test_export_mistakes_are_one_line(tiny_study, args, message):
    where = list(tiny_study.where)
    if args[0] == "--study":
        where[1] = args[1]
        args = ()
    result = run_cli("export", *where, *args, cwd=tiny_study.cwd)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _study_without_completed_trials(tmp_path) -> optuna.Study:
    (tmp_path / "studies").mkdir()
    study = optuna.create_study(
        study_name="stuck", storage=f"sqlite:///{tmp_path / 'studies' / 'stuck.db'}", direction="maximize"
    )
    study.set_user_attr(SETTINGS_ATTR, StudySettings.of(dataset="digits", space={}).to_dict())
    pruned = study.ask()
    pruned.report(0.1, 1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    return study


def test_export_without_a_completed_trial_is_a_clear_error(tmp_path):
    _study_without_completed_trials(tmp_path)
    result = run_cli("export", "--study", "stuck", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no completed trial yet (1 pruned, 1 fail)" in lines[0], result.stderr
    assert not (tmp_path / "studies" / "stuck-best.json").exists()


def test_choose_trial_refuses_failed_trials(tmp_path):
    study = _study_without_completed_trials(tmp_path)
    with pytest.raises(UsageError, match="trial 1 is FAIL"):
        choose_trial(study, 1)
    assert choose_trial(study, 0).state.name == "PRUNED"


def test_read_export_accepts_bare_configs(tmp_path):
    path = tmp_path / "bare.json"
    path.write_text(RunConfig(seed=5).to_json())
    export = read_export(path)
    assert export.config == RunConfig(seed=5) and export.source == {} and export.split_seed is None


def test_a_multi_objective_study_exports_a_chosen_point_of_its_front(tmp_path):
    from conftest import synthetic_multi_study

    study = synthetic_multi_study()
    with pytest.raises(
        UsageError,
        match=r"optimizes 2 objectives \(val_accuracy, params\), so it has no single best "
        r"trial; pick a point of its Pareto front with --trial N, N one of 1, 2, 0 ",
    ):
        choose_trial(study, None)
    assert choose_trial(study, 3).number == 3  # any completed trial, on the front or not
    study.set_user_attr(
        SETTINGS_ATTR, StudySettings.of(dataset="digits", space={}, objectives="accuracy,params").to_dict()
    )
    trial = study.trials[0]
    trial.user_attrs["config"] = RunConfig().to_dict()
    export = export_trial(study, trial, "sqlite:///x.db")
    assert export.source["value"] == 0.6 and export.source["values"] == {"val_accuracy": 0.6, "params": 1200}
    assert export.source["objectives"] == "accuracy,params" and export.source["direction"] == "maximize"


def test_an_export_missing_sections_says_which_take_their_defaults(tmp_path):
    import json

    from search.reporting.export import read_export

    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"config": {"data": {"dataset": "digits"}, "train": {"epochs": 2}}, "source": {}}))
    export = read_export(path)
    assert export.defaulted == ("augment", "model", "optimizer", "schedule")
    assert read_export_full(tmp_path).defaulted == ()


def read_export_full(tmp_path):
    from search.core.config import RunConfig
    from search.reporting.export import read_export

    path = tmp_path / "full.json"
    path.write_text(RunConfig().to_json())
    return read_export(path)


def test_every_trial_config_is_its_params_replayed_through_the_space(tiny_study, tmp_path):
    """What a trial stored is what its params give through the study's space (``FixedTrial``):
    one source of truth, and export rebuilds the config of a trial that stored none."""
    import shutil

    from search.reporting.export import replay
    from search.study.storage import recorded_settings

    shutil.copy(
        tiny_study.studies_dir / f"{tiny_study.name}.db", tmp_path / "copy.db"
    )  # the shared study stays as it is
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    study = optuna.load_study(study_name=tiny_study.name, storage=url)
    settings = recorded_settings(study, url)
    trials = [t for t in study.trials if "config" in t.user_attrs]
    assert len(trials) == 4
    for trial in trials:
        stored = RunConfig.from_dict(trial.user_attrs["config"])
        assert replay(settings, trial) == stored
        assert stored.data.split_seed == settings.seed == 0 and stored.train.monitor == "val_accuracy"

    bare = optuna.trial.create_trial(params=trials[0].params, distributions=trials[0].distributions, value=0.5)
    study.add_trial(bare)  # a trial added by hand: params, no stored config
    added = study.trials[-1]
    export = export_trial(study, added, url)
    assert export.config == replay(settings, added) and export.config.seed == added.number


def test_an_export_written_before_the_config_held_its_split_seed_keeps_its_split(tmp_path):
    """Exports from before ``data.split_seed`` and ``train.monitor`` give them in their
    source: reading one puts them back into the config, so ``train`` splits as the trial did."""
    config = RunConfig().to_dict()
    del config["data"]["split_seed"]
    del config["train"]["monitor"]
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps({"schema_version": 1, "config": config, "source": {"split_seed": 7, "monitor": "val_loss"}})
    )
    export = read_export(path)
    assert (export.config.data.split_seed, export.config.train.monitor) == (7, "val_loss") and export.split_recorded
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(config))
    assert not read_export(bare).split_recorded and read_export(bare).config.data.split_seed == 0
