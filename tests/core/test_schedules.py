from __future__ import annotations

import keras
import pytest

from search.core.config import ScheduleConfig
from search.core.schedules import OneCycle, StepDecay, TriangularCyclic, make_schedule


def at(schedule, step) -> float:
    return float(schedule(step))


def test_constant_and_plateau():
    lr, callbacks = make_schedule(ScheduleConfig("constant"), 0.01, 10, 5)
    assert lr == 0.01 and callbacks == []
    lr, callbacks = make_schedule(
        ScheduleConfig("plateau", drop_factor=0.5, patience=3), 0.01, 10, 5, monitor="val_accuracy"
    )
    assert lr == 0.01 and isinstance(callbacks[0], keras.callbacks.ReduceLROnPlateau)
    assert callbacks[0].mode == "max" and callbacks[0].factor == 0.5 and callbacks[0].patience == 3


def test_step_decay_drops_every_n_epochs():
    lr, _ = make_schedule(ScheduleConfig("step", drop_every=2, drop_factor=0.1), 1.0, 10, 8)
    assert at(lr, 0) == pytest.approx(1.0) and at(lr, 19) == pytest.approx(1.0)
    assert at(lr, 20) == pytest.approx(0.1) and at(lr, 45) == pytest.approx(0.01)


def test_triangular_cycle_goes_base_peak_base():
    lr, _ = make_schedule(ScheduleConfig("cyclic", cycle_epochs=2, max_lr_factor=10.0), 0.001, 5, 10)
    assert at(lr, 0) == pytest.approx(0.001)
    assert at(lr, 10) == pytest.approx(0.01)  # peak after cycle_epochs
    assert at(lr, 5) == pytest.approx(0.0055)
    assert at(lr, 20) == pytest.approx(0.001)


def test_one_cycle_warms_up_then_anneals_below_base():
    lr, _ = make_schedule(ScheduleConfig("one_cycle", max_lr_factor=10.0), 0.01, 10, 10)  # 100 steps
    assert at(lr, 0) == pytest.approx(0.01)
    assert at(lr, 30) == pytest.approx(0.1, rel=1e-4)
    assert at(lr, 15) == pytest.approx(0.055, rel=1e-4)
    assert at(lr, 100) == pytest.approx(0.0001, rel=1e-3)
    assert at(lr, 60) < at(lr, 40)


def test_cosine_and_exponential_decay():
    lr, _ = make_schedule(ScheduleConfig("cosine"), 0.1, 10, 10)
    assert at(lr, 0) == pytest.approx(0.1) and at(lr, 100) == pytest.approx(0.001, rel=1e-3)
    lr, _ = make_schedule(ScheduleConfig("exponential", decay_rate=0.5), 0.1, 10, 10)
    assert at(lr, 10) == pytest.approx(0.05) and at(lr, 20) == pytest.approx(0.025)


@pytest.mark.parametrize(
    "schedule", [StepDecay(0.1, 0.5, 3), TriangularCyclic(0.001, 0.01, 7), OneCycle(0.01, 0.1, 50)]
)
def test_schedules_round_trip_through_config(schedule):
    again = type(schedule).from_config(schedule.get_config())
    for step in (0, 3, 11, 49):
        assert at(again, step) == pytest.approx(at(schedule, step))
