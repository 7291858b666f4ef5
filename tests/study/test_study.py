from __future__ import annotations

import dataclasses

import optuna
import pytest

from search.core.space_files import load_space
from search.errors import StorageError, UsageError
from search.study.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from search.study.settings import StudySettings, resolve_settings
from search.study.storage import check_study_name, create_or_load, read_recorded, safe_url

SETTINGS = StudySettings.of(dataset="digits", space=load_space("cnn").to_dict(), epochs=2)


@pytest.mark.parametrize("name", ["fmnist", "cifar-10_v2.1", "A1"])
def test_good_study_names(name):
    assert check_study_name(name) == name


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "a b", "x" * 101, "c:\\x"])
def test_study_names_with_path_characters_are_refused(name):
    with pytest.raises(UsageError, match="is not allowed"):
        check_study_name(name)


def test_safe_url_masks_passwords():
    assert "secret" not in safe_url("postgresql://bob:secret@db.example:5432/optuna")
    assert safe_url("postgresql://bob:secret@db:5432/optuna").startswith("postgresql://bob:***@db")
    assert safe_url("sqlite:///studies/x.db") == "sqlite:///studies/x.db"


@pytest.mark.parametrize("name", [s for s in SAMPLERS if s != "gp"])
def test_every_sampler_builds(name):
    assert isinstance(make_sampler(name, 0), optuna.samplers.BaseSampler)


@pytest.mark.parametrize("name", PRUNERS)
def test_every_pruner_builds(name):
    assert isinstance(make_pruner(name, 5), optuna.pruners.BasePruner)


def test_the_default_pruner_waits_for_half_the_schedule():
    """The pruner the benchmark chose (docs/benchmarks): the median of other trials, never
    before a schedule's halfway epoch, where a one-cycle or cosine run is still warming up."""
    study = optuna.create_study(direction="maximize", pruner=make_pruner("halfway", 10))
    for value in (0.9, 0.9, 0.9, 0.9):  # four finished trials, good at every epoch
        trial = study.ask()
        for epoch in range(1, 11):
            trial.report(value, epoch)
        study.tell(trial, value)
    poor = study.ask()
    poor.report(0.1, 4)
    assert not poor.should_prune()  # epoch 4 of 10: still warming up
    poor.report(0.1, 5)
    assert poor.should_prune()  # from epoch 5 the median judges it


def test_unknown_sampler_and_pruner_name_the_choices():
    with pytest.raises(UsageError, match="unknown sampler 'bayes'; use one of prior, tpe"):
        make_sampler("bayes", 0)
    with pytest.raises(UsageError, match="unknown pruner 'asha'; use one of halfway, median"):
        make_pruner("asha", 5)


def test_read_recorded_creates_no_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert read_recorded("s", url) is None
    assert not (tmp_path / "new.db").exists()


def test_create_records_settings_and_resume_reads_them(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = create_or_load("s", url, SETTINGS)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert read_recorded("s", url) == SETTINGS
    assert read_recorded("other", url) is None


def test_resume_takes_recorded_values_and_allows_changeable_ones():
    resolved = resolve_settings("s", {"epochs": 7, "pruner": "hyperband"}, SETTINGS, SETTINGS)
    assert resolved.epochs == 7 and resolved.pruner == "hyperband" and resolved.dataset == "digits"


@pytest.mark.parametrize(
    "key, value",
    [("dataset", "mnist"), ("val_split", 0.2), ("limit_train", 100), ("seed", 3), ("objectives", "accuracy,params")],
)
def test_resume_refuses_different_data(key, value):
    with pytest.raises(StorageError, match=f"created with {key}="):
        resolve_settings("s", {key: value}, SETTINGS, SETTINGS)


def test_resume_refuses_a_different_space_but_accepts_the_same():
    resolve_settings("s", {"space": load_space("cnn").to_dict()}, SETTINGS, SETTINGS)
    with pytest.raises(StorageError, match="space 'cnn' and this space samples something else"):
        resolve_settings("s", {"space": load_space("resnet").to_dict()}, SETTINGS, SETTINGS)


def test_new_study_uses_defaults_under_requests():
    resolved = resolve_settings("s", {"epochs": 3}, None, SETTINGS)
    assert resolved == SETTINGS.with_options(epochs=3)


def test_resumed_sampler_does_not_replay_the_first_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = dataclasses.replace(SETTINGS, sampler="random")
    first = create_or_load("s", url, settings)
    first.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    again = create_or_load("s", url, settings)
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    xs = [t.params["x"] for t in again.trials]
    assert len(set(xs)) == 6


def test_malformed_and_unreachable_storage_are_storage_errors(tmp_path):
    with pytest.raises(StorageError, match="is malformed"):
        read_recorded("s", "not a url")
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="is not an SQLite database .*move it away"):
        read_recorded("s", f"sqlite:///{corrupt}")
    assert corrupt.read_bytes() == b"this is not a database" * 100


def test_a_new_study_starts_with_the_baseline_trial_once(tmp_path):
    from search.core.config import RunConfig

    url = f"sqlite:///{tmp_path / 'b.db'}"
    settings = dataclasses.replace(SETTINGS, baseline=True)
    study = create_or_load("b", url, settings)
    trial = study.ask()  # the queued trial comes first, whatever the sampler would draw
    config = load_space("cnn").sample(trial, RunConfig())
    assert trial.user_attrs["baseline"] is True
    assert config.model == RunConfig().model and config.optimizer.learning_rate == RunConfig().optimizer.learning_rate
    study.tell(trial, 0.5)
    resumed = create_or_load("b", url, settings)  # resuming queues nothing more
    assert [t.state for t in resumed.trials] == [optuna.trial.TrialState.COMPLETE]
    assert "baseline" not in resumed.ask().user_attrs


def test_by_default_the_sampler_draws_every_trial(tmp_path):
    study = create_or_load("n", f"sqlite:///{tmp_path / 'n.db'}", SETTINGS)
    assert study.trials == [] and "baseline" not in study.ask().user_attrs


def test_the_settings_carry_one_run_config_and_set_its_split_seed():
    settings = StudySettings.of(dataset="mnist", space={}, seed=4, epochs=3, limit_train=500, monitor="val_loss")
    config = settings.config
    assert (config.data.dataset, config.data.limit_train, config.data.split_seed, config.seed) == ("mnist", 500, 4, 4)
    assert (config.train.epochs, config.train.monitor, settings.direction) == (3, "val_loss", "minimize")
    assert (settings.dataset, settings.epochs, settings.seed, settings.monitor) == ("mnist", 3, 4, "val_loss")
    assert StudySettings.from_dict(settings.to_dict()) == settings
    assert set(settings.to_dict()) == {
        "config",
        "space",
        "direction",
        "sampler",
        "pruner",
        "heartbeat",
        "objectives",
        "baseline",
        "max_params",
    }


def test_settings_recorded_before_the_config_carried_them_are_read_into_one():
    """The flat form studies made before this layout stored (tests/data holds a real one)."""
    from search.core.config import RunConfig, TrainConfig

    base = RunConfig(train=TrainConfig(batch_size=256, label_smoothing=0.2)).to_dict()
    old = {
        "dataset": "digits",
        "space": {},
        "monitor": "val_accuracy",
        "direction": "maximize",
        "val_split": 0.2,
        "limit_train": 300,
        "data_dir": None,
        "epochs": 5,
        "seed": 7,
        "sampler": "prior",
        "pruner": "none",
        "heartbeat": 10,
        "objectives": "accuracy",
        "baseline": True,
        "base_config": base,
    }
    settings = StudySettings.from_dict(old)
    config = settings.config
    assert (config.data.val_split, config.data.limit_train, config.data.split_seed, config.seed) == (0.2, 300, 7, 7)
    assert (config.train.epochs, config.train.batch_size, config.train.label_smoothing) == (5, 256, 0.2)
    assert (settings.sampler, settings.pruner, settings.baseline) == ("prior", "none", True)
    before_the_recipe = StudySettings.from_dict({k: v for k, v in old.items() if k != "base_config"})
    assert before_the_recipe.config.model == RunConfig().model and before_the_recipe.epochs == 5


def test_a_new_study_keeps_its_seed_split_and_monitor_under_the_recipe(digits):
    """The recipe becomes a new study's base config; the study's own split seed, monitor
    and epochs stay (a seed-5 study once recorded split seed 0 here, and resumed on other images)."""
    from search.core.config import RunConfig
    from search.study.runner import with_recipe

    settings = with_recipe(StudySettings.of(dataset="digits", space={}, seed=5, epochs=3, monitor="val_loss"), digits)
    config = settings.config
    assert (config.data.split_seed, config.seed, config.train.epochs, config.train.monitor) == (5, 5, 3, "val_loss")
    assert config.model != RunConfig().model and settings.direction == "minimize"  # the recipe, judged by the loss
