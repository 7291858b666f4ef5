from __future__ import annotations

import dataclasses

import optuna
import pytest

from search.errors import StorageError, UsageError
from search.spaces import load_space
from search.study import (
    PRUNERS,
    SAMPLERS,
    StudySettings,
    check_study_name,
    create_or_load,
    make_pruner,
    make_sampler,
    read_recorded,
    resolve_settings,
    safe_url,
)

SETTINGS = StudySettings(dataset="digits", space=load_space("cnn").to_dict(), epochs=2)


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


@pytest.mark.parametrize("key, value", [("dataset", "mnist"), ("val_split", 0.2), ("limit_train", 100), ("seed", 3),
                                        ("objectives", "accuracy,params")])
def test_resume_refuses_different_data(key, value):
    with pytest.raises(StorageError, match=f"created with {key}="):
        resolve_settings("s", {key: value}, SETTINGS, SETTINGS)


def test_resume_refuses_a_different_space_but_accepts_the_same():
    resolve_settings("s", {"space": load_space("cnn").to_dict()}, SETTINGS, SETTINGS)
    with pytest.raises(StorageError, match="space 'cnn' and this space samples something else"):
        resolve_settings("s", {"space": load_space("resnet").to_dict()}, SETTINGS, SETTINGS)


def test_new_study_uses_defaults_under_requests():
    resolved = resolve_settings("s", {"epochs": 3}, None, SETTINGS)
    assert resolved == dataclasses.replace(SETTINGS, epochs=3)


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
    from search.config import RunConfig

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
