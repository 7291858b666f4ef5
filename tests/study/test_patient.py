"""The storage wrapper that waits for a database that went away (``search.study.patient``),
on a real SQLite storage whose calls are made to fail as a lost connection does."""

from __future__ import annotations

import io

import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState

from search.errors import StorageError
from search.study.patient import PatientStorage, lost_connection


def _lost() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused\nIs the server running?"))


class Flaky:
    """A real storage whose named calls fail ``times`` times; ``after``: the call lands first
    (its commit went through) and the connection breaks on the way back."""

    def __init__(self, base, name: str, times: int, after: bool = False) -> None:
        self.base, self.name, self.times, self.after, self.calls = base, name, times, after, 0

    def __getattr__(self, attr):
        real = getattr(self.base, attr)
        if attr != self.name:
            return real

        def call(*args, **kwargs):
            self.calls += 1
            if self.times > 0:
                self.times -= 1
                if self.after:
                    real(*args, **kwargs)
                raise optuna.exceptions.StorageInternalError("during the commit") from _lost()
            return real(*args, **kwargs)

        return call


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _storage(tmp_path, flaky_name: str, times: int, after: bool = False, wait: float = 60.0):
    base = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    flaky = Flaky(base, flaky_name, times, after)
    clock, out = Clock(), io.StringIO()
    return PatientStorage(flaky, "db", wait=wait, grace=6.0, out=out, sleep=clock.sleep, clock=clock), flaky, clock, out


def test_a_lost_connection_is_waited_for_and_said_once_when_it_goes_and_once_when_it_is_back(tmp_path):
    storage, flaky, clock, out = _storage(tmp_path, "set_trial_user_attr", times=5)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.set_user_attr("k", 1)
    assert flaky.calls == 6 and study.trials[0].user_attrs["k"] == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("database db unreachable (connection refused): waiting up to 60s")
    assert lines[1].startswith("database db is back after ") and lines[1].endswith("; going on")
    assert 0 < clock.now <= 0.5 + 1 + 2 + 3 + 3  # backoff from 0.5 s, capped


def test_a_final_state_that_landed_before_the_connection_broke_is_not_stored_twice(tmp_path):
    storage, flaky, _, _ = _storage(tmp_path, "set_trial_state_values", times=1, after=True)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    frozen = study.tell(trial, 0.5)  # the first try landed; a blind retry would raise UpdateFinishedTrialError
    assert frozen.state == TrialState.COMPLETE and study.trials[0].value == 0.5 and flaky.calls == 1


def test_past_the_wait_it_stops_with_one_line_that_says_how_to_resume(tmp_path):
    storage, _, clock, _ = _storage(tmp_path, "get_all_trials", times=10**6, wait=30.0)
    study = optuna.create_study(storage=storage, study_name="s")
    with pytest.raises(StorageError) as raised:
        study.get_trials()
    message = str(raised.value)
    assert "\n" not in message and "unreachable for 30s (connection refused)" in message
    assert "run the same command to resume" in message and "--storage-wait" in message
    assert clock.now == 30.0


def test_other_errors_are_not_waited_for(tmp_path):
    assert lost_connection(_lost()) and not lost_connection(optuna.exceptions.StorageInternalError("bad data"))
    storage, flaky, _, out = _storage(tmp_path, "set_trial_user_attr", times=0)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with pytest.raises(TypeError):
        trial.set_user_attr("k", object())  # not JSON: a mistake, raised at once
    assert out.getvalue() == ""


def test_right_after_an_outage_no_trial_is_judged_silent_until_the_others_could_beat_again(tmp_path):
    base = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=2, grace_period=6)
    flaky, clock = Flaky(base, "record_heartbeat", 1), Clock()
    storage = PatientStorage(flaky, "db", wait=60, grace=6.0, out=io.StringIO(), sleep=clock.sleep, clock=clock)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    base.record_heartbeat(trial._trial_id)
    import time

    # silent past the grace by the database's clock: SQLite's CURRENT_TIMESTAMP counts whole
    # seconds, so 6.5 s can read as 6 (a beat at x.1 s, the check at x+6.6 s) and not be stale
    time.sleep(7.5)
    assert base._get_stale_trial_ids(study._study_id) == [trial._trial_id]
    other = study.ask()
    storage.record_heartbeat(other._trial_id)  # this worker's heartbeat waited for the database: it is back now
    assert storage._get_stale_trial_ids(study._study_id) == []  # the others get a grace to beat again
    clock.now += 6.0
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]
