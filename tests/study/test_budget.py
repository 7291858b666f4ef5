"""The budget: parsing --budget, the phases of the plan, and the deadline callback."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from search.core.deadline import Deadline
from search.errors import UsageError
from search.study.budget import (
    FINISH_EPOCHS,
    FINISH_SECONDS,
    PROMOTE_FACTOR,
    SHORT_EPOCHS,
    BudgetPlan,
    epoch_seconds,
    trial_epochs,
)
from search.study.budgets import describe_plan, parse_budget


@pytest.mark.parametrize(
    "text, seconds", [("600", 600), ("90s", 90), ("10m", 600), ("2h", 7200), ("1.5h", 5400), (" 45 ", 45)]
)
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0s",
        "5x",
        "-3m",
        "",
        "m",
        "nan",
        "inf",
        "1e3",
        "10 minutes",
        "1s",
        "29s",
        "99999999999999999999h",
        "31d",
        "721h",
    ],
)
def test_parse_budget_refuses_what_is_not_a_positive_duration(text):
    with pytest.raises(UsageError, match="--budget"):
        parse_budget(text)


def _trial(value: float, epochs: int, seconds: float, **attrs) -> optuna.trial.FrozenTrial:
    return create_trial(
        value=value,
        params={"epochs": epochs},
        distributions={"epochs": IntDistribution(1, 1000)},
        user_attrs={"epoch_seconds": [seconds * 3, seconds, seconds], **attrs},
    )


def test_trial_epochs_and_epoch_seconds_read_what_a_trial_stored():
    t = _trial(0.8, 3, 2.0)
    assert trial_epochs(t) == 3
    assert epoch_seconds(t) == 2.0  # the median: the first epoch's tracing is not counted
    config_only = create_trial(value=0.5, user_attrs={"config": {"train": {"epochs": 7}}})
    assert trial_epochs(config_only) == 7
    assert trial_epochs(create_trial(value=0.5)) is None and epoch_seconds(create_trial(value=0.5)) is None


def test_plan_explores_first_then_promotes_the_best_then_trains_the_best_with_the_time_left():
    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000)
    study = optuna.create_study(direction="maximize")
    assert plan.next_trial(study, now=1.0).phase == "explore"  # nothing measured yet
    for value in (0.80, 0.85, 0.70):
        study.add_trial(_trial(value, SHORT_EPOCHS, 2.0))
    explore = plan.next_trial(study, now=100.0)
    assert (explore.phase, explore.epochs, explore.source) == ("explore", SHORT_EPOCHS, None)

    promote = plan.next_trial(study, now=400.0)  # past the explore share
    assert (promote.phase, promote.epochs, promote.source) == ("promote", SHORT_EPOCHS * PROMOTE_FACTOR, 1)
    study.add_trial(_trial(0.88, SHORT_EPOCHS * PROMOTE_FACTOR, 2.0, source=1))
    second = plan.next_trial(study, now=420.0)
    assert (second.phase, second.source) == ("promote", 0)  # the runner-up, once

    final = plan.next_trial(study, now=600.0)
    assert final.phase == "final" and final.source == 3  # ranked at the longest schedule it ran
    assert final.epochs == int(
        (400.0 - 0.5 - FINISH_SECONDS - 1.5 * 2.0) // 2.0
    )  # the time left, less set-up and finish
    assert (
        final.until == 1000.0 - FINISH_EPOCHS * 2.0 - FINISH_SECONDS
    )  # which runs on the clock until just before the deadline
    study.add_trial(_trial(0.9, final.epochs, 2.0, source=3, phase="final", budget_start=0.0))
    after = plan.next_trial(study, now=990.0)
    assert after.phase == "explore"  # one final run per budget


def test_final_epochs_are_capped_and_a_final_that_fits_no_longer_schedule_is_skipped():
    capped = BudgetPlan(10000.0, start=0.0, max_epochs=20, capped=True)
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0.8, SHORT_EPOCHS, 1.0))
    final = capped.next_trial(study, now=9000.0)
    assert (final.epochs, final.until) == (20, None)  # capped by --epochs: not paced, a plain 20-epoch schedule
    uncapped = BudgetPlan(10000.0, start=0.0, max_epochs=20).next_trial(study, now=9000.0)
    assert (
        uncapped.epochs == 20 and uncapped.until == 10000.0 - FINISH_EPOCHS - FINISH_SECONDS
    )  # the clock decides; 20 is nominal
    tight = BudgetPlan(100.0, start=0.0, max_epochs=100, probe=1.0)
    assert tight.next_trial(study, now=96.0).phase == "explore"  # 4 s left: no schedule longer than 3 epochs fits


def test_a_budget_that_buys_few_epochs_trains_the_recipe_once_with_all_of_it():
    from search.study.budget import RICH, RUNG_SHARE

    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000, probe=1000.0 / 20)  # 20 epochs of the recipe
    assert not plan.explores() and "the recipe trains once with the whole budget" in describe_plan(plan)
    study = optuna.create_study(direction="maximize")
    first = plan.next_trial(study, now=20.0)
    per_epoch = 1000.0 / 20
    assert (first.phase, first.source, first.until) == (
        "final",
        None,
        1000.0 - FINISH_EPOCHS * per_epoch - FINISH_SECONDS,
    )
    assert first.epochs == int((980.0 - FINISH_EPOCHS * per_epoch - FINISH_SECONDS - 1.5 * per_epoch) // per_epoch)
    study.add_trial(_trial(0.9, first.epochs, per_epoch, phase="final", budget_start=0.0))
    assert plan.next_trial(study, now=990.0).phase == "explore"  # one final run; what is left explores
    rich = BudgetPlan(1000.0, start=0.0, probe=1000.0 / (2 * RICH))
    assert rich.explores() and rich.next_trial(optuna.create_study(), now=1.0).phase == "explore"
    assert rich.short == round(2 * RICH * RUNG_SHARE) and f"the recipe trains {rich.short} epochs" in describe_plan(
        rich
    )


def test_a_budget_that_buys_enough_epochs_gives_an_early_answer_then_the_final_run():
    from search.study.budget import EARLY, EARLY_MIN, RICH

    per_epoch = 1000.0 / 40  # 40 epochs of the recipe: no exploring, but room for an early answer
    assert EARLY_MIN <= 40 < RICH
    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000, probe=per_epoch)
    assert "over the first 20% for an early answer" in describe_plan(plan)
    study = optuna.create_study(direction="maximize")
    early = plan.next_trial(study, now=10.0)
    assert (early.phase, early.source, early.until) == ("early", None, EARLY * 1000.0)
    assert early.epochs == int((EARLY * 1000.0 - 10.0) / per_epoch)
    study.add_trial(_trial(0.85, 6, per_epoch, phase="early", budget_start=0.0, paced="paced"))
    final = plan.next_trial(study, now=205.0)  # the early run's configuration, with the time left
    assert (final.phase, final.source) == (
        "final",
        0,
    ) and final.until == 1000.0 - FINISH_EPOCHS * per_epoch - FINISH_SECONDS
    assert plan.next_trial(study, now=205.0).phase == "final"  # asked again before it starts: still the final
    late = BudgetPlan(1000.0, start=0.0, max_epochs=1000, probe=per_epoch)
    assert late.next_trial(optuna.create_study(), now=150.0).phase == "final"  # resumed late: no early run


def test_a_pruned_or_failed_final_does_not_block_a_new_one():
    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000)
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0.8, SHORT_EPOCHS, 1.0))
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"epochs": 50},
            distributions={"epochs": IntDistribution(1, 1000)},
            user_attrs={"phase": "final", "budget_start": 0.0},
        )
    )
    assert plan.next_trial(study, now=700.0).phase == "final"


def test_a_run_stopped_at_the_deadline_ranks_by_the_epochs_it_ran():
    stopped = _trial(0.9, 40, 1.0, stopped="stopped at the budget's deadline")
    assert trial_epochs(stopped) == 3  # three epoch times recorded, not the 40 planned
    paced = _trial(0.9, 40, 1.0, paced="schedule paced by the clock: 3 epochs in 5s")
    assert trial_epochs(paced) == 3


def test_plan_minimizes_when_the_study_does():
    plan = BudgetPlan(1000.0, start=0.0)
    study = optuna.create_study(direction="minimize")
    for value in (0.5, 0.2, 0.9):
        study.add_trial(_trial(value, SHORT_EPOCHS, 1.0))
    assert plan.next_trial(study, now=400.0).source == 1


class _Model:
    stop_training = False


def test_deadline_stops_at_the_deadline_and_a_run_that_cannot_finish():
    passed = Deadline(time.time() - 1)
    passed.set_model(_Model())
    passed.set_params({"epochs": 5})
    passed.on_epoch_begin(0)
    passed.on_train_batch_end(0)
    assert passed.model.stop_training and passed.reason.startswith("stopped at")

    slow = Deadline(time.time() + 5)
    slow.set_model(_Model())
    slow.set_params({"epochs": 100})
    slow.on_epoch_begin(1)
    slow._epoch_start -= 1.0  # a 1 s epoch, 98 epochs to go, 5 s left
    slow.on_epoch_end(1)
    assert slow.model.stop_training and "would not finish its 100 epochs" in slow.reason

    fine = Deadline(time.time() + 3600)
    fine.set_model(_Model())
    fine.set_params({"epochs": 3})
    fine.on_epoch_begin(1)
    fine.on_epoch_end(1)
    fine.on_train_batch_end(0)
    assert not fine.model.stop_training and fine.reason is None


def test_a_planned_run_is_not_stopped_by_a_projection():
    planned = Deadline(time.time() + 5, project=False)
    planned.set_model(_Model())
    planned.set_params({"epochs": 100})
    planned.on_epoch_begin(1)
    planned._epoch_start -= 1.0
    planned.on_epoch_end(1)
    assert not planned.model.stop_training and planned.reason is None


def test_the_search_is_finished_once_the_final_run_is_done_and_no_short_schedule_fits():
    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000, probe=20.0)  # 50 epochs: short schedules are 3 epochs
    study = optuna.create_study(direction="maximize")
    assert not plan.finished(study, now=990.0)  # no final run yet
    study.add_trial(_trial(0.9, 50, 10.0, phase="final", budget_start=0.0))
    assert not plan.finished(study, now=900.0)  # 100 s left: a 3-epoch schedule of 10 s epochs fits
    assert plan.finished(study, now=960.0)  # 40 s left: it would be cut
    other = BudgetPlan(1000.0, start=5.0, probe=20.0)
    assert not other.finished(study, now=960.0)  # another run's final does not count


def test_pace_does_not_begin_an_epoch_that_would_mostly_run_past_its_end():
    from search.core.deadline import Pace

    pace = Pace(time.time() + 4.0)
    pace.set_model(_Model())
    pace.on_train_begin()
    pace.on_epoch_begin(0)
    pace._epoch_start -= 10.0  # a 10 s epoch just ended; 4 s left: the next would run 6 s past
    pace.on_epoch_end(0)
    assert pace.model.stop_training and pace.stopped

    roomy = Pace(time.time() + 8.0)
    roomy.set_model(_Model())
    roomy.on_train_begin()
    roomy.on_epoch_begin(0)
    roomy._epoch_start -= 10.0  # 8 s left of a 10 s epoch: begun, and stopped at a batch past the end
    roomy.on_epoch_end(0)
    assert not roomy.model.stop_training


def test_pace_stops_training_a_validation_pass_before_its_end_so_the_pass_ends_in_time():
    from search.core.deadline import Pace

    pace = Pace(time.time() + 3.0)
    pace.set_model(_Model())
    pace.on_train_begin()
    pace.on_epoch_begin(0)
    pace.on_train_batch_end(0)
    assert not pace.model.stop_training  # 3 s left, no validation measured yet
    pace.on_test_begin()
    pace._test_start -= 5.0  # the first pass took 5 s, tracing included: not counted
    pace.on_test_end()
    assert pace.end == pace.until
    pace.on_test_begin()
    pace._test_start -= 5.0  # a validation pass took 5 s: the next one would end past ``until``
    pace.on_test_end()
    assert pace.end == pytest.approx(pace.until - 5.0, abs=0.5)
    assert pace.progress() == 1.0  # the schedule has annealed by then
    pace.on_train_batch_end(1)
    assert pace.model.stop_training and pace.stopped


def test_a_rich_budget_judges_explore_trials_at_a_length_that_decides_and_stops_exploring_in_time():
    import datetime as dt

    from search.study.budget import RICH_EXPLORE, RUNG_SHARE

    def ran(value: float, start: float, end: float) -> optuna.trial.FrozenTrial:
        t = _trial(value, 24, 7.0, budget_start=0.0)
        t.datetime_start, t.datetime_complete = (dt.datetime.fromtimestamp(x) for x in (start, end))
        return t

    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000, probe=6.25)  # 160 epochs of the recipe by the probe
    assert plan.rich and plan.short == round(160 * RUNG_SHARE) == 24 and RICH_EXPLORE == 0.5
    study = optuna.create_study(direction="maximize")
    first = plan.next_trial(study, now=5.0)
    assert (first.phase, first.epochs, first.keep) == ("explore", 24, True)  # its weights are kept for the final run
    # the plan uses the pace trials took from start to end (4 s an epoch here), not the probe's
    # 6.25 s... or the epochs' 7 s
    study.add_trial(ran(0.80, 5.0, 101.0))
    assert plan.next_trial(study, now=400.0).phase == "explore"  # 400 + 24 x 4 s ends by 500 s
    assert plan.next_trial(study, now=410.0).phase == "final"  # 410 + 96 would not: the final run starts
    study.add_trial(ran(0.83, 101.0, 229.0))  # slower: 5.3 s an epoch
    assert plan.next_trial(study, now=380.0).phase == "final"  # 380 + 24 x 5.3 s would end past 500 s
    final = plan.next_trial(study, now=380.0)
    assert (final.phase, final.source) == ("final", 1)  # the better of the two at the same length
    assert final.until == 1000.0 - FINISH_EPOCHS * 7.0 - FINISH_SECONDS


def test_a_study_keeps_its_running_budget_for_every_command_that_joins_it():
    from search.study.budgets import BUDGET_ATTR, JOIN_MIN_LEFT, study_budget

    study = optuna.create_study(direction="maximize")
    first, note = study_budget(study, 600.0, now=1000.0, max_epochs=50)
    assert note is None and (first.start, first.seconds, first.max_epochs) == (1000.0, 600.0, 50)
    assert study.user_attrs[BUDGET_ATTR] == {"start": 1000.0, "seconds": 600.0, "val_images": None}
    # another terminal (or this command rerun after kill -9) 200 s later: the same deadline, the time left
    second, note = study_budget(study, 300.0, now=1200.0, max_epochs=50)
    assert (second.start, second.deadline) == (1000.0, 1600.0)
    assert (
        note == "joining the study's running budget of 600s, started 200s ago: 400s left "
        "(this command's --budget 300s is not used)"
    )
    # once it is (nearly) over, a command starts a budget of its own
    third, note = study_budget(study, 300.0, now=1600.0 - JOIN_MIN_LEFT + 1)
    assert (
        note is None and third.start == 1600.0 - JOIN_MIN_LEFT + 1 and study.user_attrs[BUDGET_ATTR]["seconds"] == 300.0
    )


def test_a_rich_budget_with_the_prior_branches_from_the_recipe_and_continues_the_best_branch():
    """Once the recipe's explore trial (the trunk) kept its weights, each change is a branch:
    the trunk continued BRANCH_SHARE of the affordable epochs, compared with the trunk
    continued unchanged at the same length; the final run continues the best branch."""
    import datetime as dt

    from search.study.budget import BRANCH_SHARE, RICH_EXPLORE

    def ran(value, epochs, start, end, **attrs):
        t = _trial(value, epochs, 4.0, budget_start=0.0, **attrs)
        t.datetime_start, t.datetime_complete = (dt.datetime.fromtimestamp(x) for x in (start, end))
        return t

    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000, probe=5.0)  # 200 epochs of the recipe
    assert plan.branching and plan.branch_epochs == round(200 * BRANCH_SHARE) == 10
    assert not BudgetPlan(1000.0, start=0.0, probe=5.0, sampler="tpe").branching  # TPE's draws change the net
    study = optuna.create_study(direction="maximize")
    study.add_trial(ran(0.80, 24, 5.0, 101.0, phase="explore"))  # no weights kept: not a trunk
    assert plan.next_trial(study, now=110.0).phase == "explore"
    study.add_trial(ran(0.81, 24, 101.0, 197.0, phase="explore", checkpoint="/kept/trial-1.weights.h5"))
    branch = plan.next_trial(study, now=200.0)
    assert (branch.phase, branch.epochs, branch.source, branch.keep) == ("branch", 10, 1, True)
    assert plan.next_trial(study, now=200.0, branches_left=False).phase == "final"  # no change left to try
    study.add_trial(ran(0.83, 10, 200.0, 240.0, phase="branch", source=1, continued_epochs=24, control=True))
    study.add_trial(ran(0.85, 10, 240.0, 280.0, phase="branch", source=1, continued_epochs=24, lever={"cutout": 0.25}))
    assert trial_epochs(study.trials[-1]) == 34  # its 10 after the trunk's 24
    # pace 4 s an epoch (the branches' own 10 epochs, not the 34 they count): 460 + 40 ends by 500 s
    assert RICH_EXPLORE == 0.5 and plan.next_trial(study, now=460.0).phase == "branch"
    final = plan.next_trial(study, now=461.0)  # would end past half the budget
    assert (final.phase, final.source) == ("final", 3)  # the best branch at the longest length, not the trunk


def test_where_branches_would_be_shorter_than_branch_min_the_trunk_continues_as_the_final_run():
    """A rich budget whose branches would get under BRANCH_MIN epochs (a widened net's 70 epochs
    give 4) tries no change: once the recipe's explore trial kept its weights, the final run
    continues it with the time left, and the plan line says why."""
    import datetime as dt

    from search.study.budget import BRANCH_MIN

    plan = BudgetPlan(2400.0, start=0.0, max_epochs=1000, probe=34.5)  # about 70 epochs: branches of 3
    assert plan.rich and plan.branch_epochs == 3 < BRANCH_MIN and not plan.branching
    assert BudgetPlan(2400.0, start=0.0, max_epochs=1000, probe=15.0).branching  # 160 epochs: branches of 8
    line = describe_plan(plan)
    assert f"the recipe trains {plan.short} epochs, then its weights continue with the time left" in line
    assert f"a branch would get 3 epochs, under the {BRANCH_MIN}" in line and "one change at a time" not in line
    study = optuna.create_study(direction="maximize")
    assert plan.next_trial(study, now=1.0).phase == "explore"  # the trunk first
    trunk = _trial(0.64, plan.short, 34.5, budget_start=0.0, phase="explore", checkpoint="/kept/t0.weights.h5")
    trunk.datetime_start, trunk.datetime_complete = dt.datetime.fromtimestamp(1.0), dt.datetime.fromtimestamp(372.0)
    study.add_trial(trunk)
    final = plan.next_trial(study, now=373.0)  # at 16% of the budget: no branch, the final run
    assert (final.phase, final.source) == ("final", 0) and final.until is not None
    assert final.epochs == int((2400.0 - 373.0 - plan.finish(34.5) - 1.5 * 34.5) // 34.5)


def test_a_branch_within_the_validation_noise_of_its_control_does_not_take_the_final_run():
    """Measured on ``val_images`` images, a branch must beat the control (the trunk continued
    unchanged, same length) by more than one standard error of their difference; otherwise
    the final run continues the control."""
    import datetime as dt

    from search.study.ranking import final_source, validation_noise

    assert validation_noise(0.67, 1000) == pytest.approx(0.0210, abs=1e-4)
    assert validation_noise(0.91, 2000) == pytest.approx(0.0090, abs=1e-4)
    assert validation_noise(0.5, 0) == 0.0

    def ran(t):
        t.datetime_start = t.datetime_complete = dt.datetime.fromtimestamp(100.0)
        return t

    def branch(value, **attrs):
        return ran(_trial(value, 10, 4.0, budget_start=0.0, phase="branch", source=0, continued_epochs=24, **attrs))

    study = optuna.create_study(direction="maximize")
    study.add_trial(ran(_trial(0.81, 24, 4.0, budget_start=0.0, phase="explore", checkpoint="/kept/t0.weights.h5")))
    study.add_trial(branch(0.83, control=True))
    study.add_trial(branch(0.845, lever={"cutout": 0.25}))  # +1.5 points; the noise at 1,000 images: 1.7
    done = study.get_trials()
    assert final_source(study, done).number == 2  # no noise known: the best
    assert final_source(study, done, 1000).number == 1  # within the noise: the control
    assert final_source(study, done, 10_000).number == 2  # 0.5 points of noise: a clear win
    plan = BudgetPlan(1000.0, start=0.0, max_epochs=1000, probe=5.0, val_images=1000)
    final = plan.next_trial(study, now=600.0)  # past half the budget: the final run, from the control
    assert (final.phase, final.source) == ("final", 1)
    study.add_trial(branch(0.86, lever={"pad_crop": 4}))  # +3.0: beats the noise of 1,000 images
    assert final_source(study, study.get_trials(), 1000).number == 3
    assert plan.next_trial(study, now=600.0).source == 3


def test_of_two_trials_deciding_the_final_run_at_once_the_lower_numbered_claim_wins():
    from search.study.budgets import plan_for
    from search.study.optuna_access import get_trial
    from search.study.record import TrialRecord, write_to

    plan = BudgetPlan(1000.0, probe=50.0)  # 20 epochs of the recipe, from now: the first trial is the final run
    study = optuna.create_study(direction="maximize")
    first, second = study.ask(), study.ask()  # two commands asking at the same moment
    decided = plan.next_trial(study)
    assert decided.phase == "final"  # each decides the final run before either has marked its trial
    write_to(study, first, final_claim=plan.start)  # the first marks its trial...
    real, answers = plan.next_trial, [decided]
    plan.next_trial = lambda study, **kw: (
        answers.pop() if answers else real(study, **kw)
    )  # ...the second decided before
    lost = plan_for(plan, study, get_trial(study, second))
    assert lost.phase != "final" and TrialRecord.of(get_trial(study, second)).final_claim is None
    plan.next_trial = real
    # a claim of a higher-numbered trial counts as the final run for anyone planning after it
    other = optuna.create_study(direction="maximize")
    low, high = other.ask(), other.ask()
    assert plan_for(plan, other, get_trial(other, high)).phase == "final"
    assert plan_for(plan, other, get_trial(other, low)).phase != "final"
