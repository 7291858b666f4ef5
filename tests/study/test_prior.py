"""The prior-guided sampler on real Optuna studies (no training: the objective scores
the sampled config directly)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.core.config import RunConfig
from search.core.recipe import DataShape, recipe
from search.core.space_files import load_space
from search.study.budget import BudgetPlan
from search.study.prior import CHANGES, EVIDENCE, MIN_GLOBAL, START_GLOBAL, PriorSampler
from search.study.settings import StudySettings
from search.study.storage import create_or_load

SPACE = load_space("cnn")
FMNIST = DataShape("fashion_mnist", 28, 28, 1, 10, 10000)
BASE = recipe(FMNIST)
PRIOR = SPACE.priors(BASE)
NAMES = [p.name for p in SPACE.params if p.kind != "fixed"]


def _run(sampler: PriorSampler, n: int, score=None) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        config = SPACE.sample(trial, BASE, epochs=(1, 50) if sampler.budget else None)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("epoch_seconds", [1.0, 1.0])  # as the reporting callback stores them
        return score(config) if score else 0.5

    study.optimize(objective, n_trials=n)
    return study


def _differences(params: dict, centre: dict) -> set[str]:
    return {k for k, v in params.items() if k in centre and centre[k] != v}


def test_the_recipe_is_inside_the_cnn_space_for_grey_and_colour_images():
    for shape in (FMNIST, DataShape("folder:cifar", 32, 32, 3, 10, 9000)):
        prior = SPACE.priors(recipe(shape))
        missing = [p.name for p in SPACE.params if p.kind != "fixed" and p.applies(prior) and p.name not in prior]
        assert missing == [], f"recipe values the space cannot take: {missing}"


def test_local_draws_change_one_to_three_parameters_of_the_centre():
    sampler = PriorSampler(PRIOR, NAMES, seed=1)
    sampler_global = []
    study = _run(sampler, 40)
    for t in study.trials:
        if t.user_attrs["draw"] == "local" and t.user_attrs["centre"] == "prior":
            changed = _differences(t.params, PRIOR)
            assert changed <= set(t.user_attrs["changed"]), (changed, t.user_attrs["changed"])
            assert 1 <= len(t.user_attrs["changed"]) <= max(CHANGES)
        if t.user_attrs["draw"] == "global":
            sampler_global.append(len(_differences(t.params, PRIOR)))
    assert sampler_global, "some draws come from the whole space"
    assert max(sampler_global) > max(CHANGES), "global draws move more than a local draw can"


def test_local_draws_centre_on_the_best_trial_once_there_is_one():
    # the score rewards a larger label smoothing: the best trial differs from the prior
    study = _run(PriorSampler(PRIOR, NAMES, seed=3), 30, score=lambda c: c.train.label_smoothing)
    centred = [t for t in study.trials if str(t.user_attrs["centre"]).startswith("trial ")]
    assert centred, "after the first results most local draws start from the best trial"
    for t in centred:
        number = int(t.user_attrs["centre"].split()[1])
        assert number < t.number
        source = study.trials[number]
        assert _differences(t.params, source.params) <= set(t.user_attrs["changed"])


def test_global_share_starts_at_a_quarter_and_follows_the_evidence():
    sampler = PriorSampler(PRIOR, NAMES, seed=0)
    study = optuna.create_study(direction="maximize")
    assert sampler.global_share(study, []) == START_GLOBAL
    # the best quarter came from local draws only: the share falls to its floor
    for i in range(8):
        study.add_trial(optuna.trial.create_trial(value=i / 10, user_attrs={"draw": "local" if i >= 6 else "global"}))
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) >= EVIDENCE
    assert sampler.global_share(study, done) == pytest.approx(MIN_GLOBAL)
    study2 = optuna.create_study(direction="maximize")
    for i in range(8):
        study2.add_trial(optuna.trial.create_trial(value=i / 10, user_attrs={"draw": "global" if i >= 6 else "local"}))
    assert sampler.global_share(study2, study2.get_trials()) > 0.4


def test_same_seed_same_draws():
    a = [t.params for t in _run(PriorSampler(PRIOR, NAMES, seed=7), 6).trials]
    b = [t.params for t in _run(PriorSampler(PRIOR, NAMES, seed=7), 6).trials]
    assert a == b


def test_budgeted_trials_get_their_planned_epochs_and_promotions_replay_their_source():
    budget = BudgetPlan(1000.0)
    study = _run(PriorSampler(PRIOR, NAMES, seed=2, budget=budget), 3)
    assert all(t.params["epochs"] == budget.short and t.user_attrs["phase"] == "explore" for t in study.trials)
    budget.start -= 0.4 * budget.seconds  # 40% of the budget spent: promotions are due
    study.sampler = PriorSampler(PRIOR, NAMES, seed=2, budget=budget)

    def objective(trial):
        SPACE.sample(trial, BASE, epochs=(1, 50))
        return 0.9

    study.optimize(objective, n_trials=1)
    promoted = study.trials[-1]
    assert promoted.user_attrs["phase"] == "promote" and promoted.params["epochs"] == budget.promoted_epochs
    source = study.trials[promoted.user_attrs["source"]]
    assert {k: v for k, v in promoted.params.items() if k != "epochs"} == {
        k: v for k, v in source.params.items() if k != "epochs"
    }


def test_a_new_study_starts_with_the_recipe(tmp_path):
    settings = StudySettings.of(
        dataset="fashion_mnist", space=SPACE.to_dict(), baseline=True, base_config=BASE.to_dict()
    )
    study = create_or_load("s", f"sqlite:///{tmp_path / 's.db'}", settings)
    assert isinstance(study.sampler, PriorSampler)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    replayed = SPACE.sample(optuna.trial.FixedTrial(waiting[0].system_attrs["fixed_params"]), settings.config)
    assert replayed == settings.config  # the first trial trains exactly the recipe


def test_space_file_priors_move_the_centre_and_are_checked(tmp_path):
    from search.errors import SpaceError

    good = tmp_path / "good.toml"
    good.write_text('extends = "cnn"\n[train]\nbatch_size = { choices = [64, 128, 256], prior = 64 }\n')
    space = load_space(str(good))
    assert space.priors(BASE)["batch_size"] == 64 and BASE.train.batch_size != 64
    assert space.fingerprint == load_space(str(good)).fingerprint
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "cnn"\n[train]\nlabel_smoothing = { low = 0.0, high = 0.2, prior = 0.5 }\n')
    with pytest.raises(SpaceError, match="prior 0.5 is outside"):
        load_space(str(bad))


def test_priors_do_not_change_the_fingerprint(tmp_path):
    plain = tmp_path / "plain.toml"
    plain.write_text("[train]\nbatch_size = { choices = [64, 128] }\n")
    with_prior = tmp_path / "with_prior.toml"
    with_prior.write_text("[train]\nbatch_size = { choices = [64, 128], prior = 128 }\n")
    assert load_space(str(plain)).fingerprint == load_space(str(with_prior)).fingerprint


def test_runconfig_defaults_are_unchanged_for_old_studies():
    old = StudySettings.of(dataset="digits", space=SPACE.to_dict())
    assert old.config.model == RunConfig().model


def test_local_draws_change_only_parameters_that_apply_to_the_centre():
    names = SPACE.changeable(BASE)(PRIOR)  # the recipe: SGD with one-cycle
    assert "momentum" in names and "max_lr_factor" in names
    assert not {"drop_every", "decay_rate", "cycle_epochs", "patience"} & set(names)  # other schedules' keys
    text_base = recipe(DataShape("captcha", 40, 100, 1, 10, 7000, text=True))
    assert "horizontal_flip" not in SPACE.changeable(text_base)(SPACE.priors(text_base))


def test_queued_trials_keep_their_params_and_a_poor_budget_trains_the_recipe_first():
    budget = BudgetPlan(1000.0, probe=100.0)  # 10 epochs of the recipe: no exploring
    study = optuna.create_study(
        direction="maximize", sampler=PriorSampler(PRIOR, SPACE.changeable(BASE), seed=0, budget=budget)
    )
    study.enqueue_trial(SPACE.baseline(BASE), user_attrs={"baseline": True})

    def objective(trial):
        SPACE.sample(trial, BASE, epochs=(1, 100))
        trial.set_user_attr("epoch_seconds", [100.0, 100.0])
        return 0.9

    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert first.user_attrs["draw"] == "queued" and first.user_attrs["phase"] == "final"
    assert {k: v for k, v in first.params.items() if k != "epochs"} == SPACE.baseline(BASE)
    assert 1 <= first.params["epochs"] <= 10
    assert second.user_attrs["phase"] == "explore"  # the final run is done


def test_a_rich_budget_tries_the_levers_long_schedules_reward_one_at_a_time_after_the_recipe():
    import time

    from search.study.prior import RICH_LEVERS

    budget = BudgetPlan(100_000.0, probe=100.0)  # 1,000 epochs of the recipe: rich
    study = optuna.create_study(
        direction="maximize", sampler=PriorSampler(PRIOR, SPACE.changeable(BASE), seed=0, budget=budget)
    )
    study.enqueue_trial(SPACE.baseline(BASE), user_attrs={"baseline": True})

    def objective(trial):
        SPACE.sample(trial, BASE, epochs=(1, 100))
        trial.set_user_attr("epoch_seconds", [1.0, 1.0])  # fast: every explore trial fits
        return 0.9

    study.optimize(objective, n_trials=1 + len(RICH_LEVERS) + 1)
    recipe_trial, *levers, after = study.trials
    assert recipe_trial.user_attrs["draw"] == "queued" and recipe_trial.params["epochs"] == budget.short
    expected = [{"cutout": 0.5}, {"cutout": 0.25}, {"block_dropout": 0.1}]  # not the width: the plan's
    assert [t.user_attrs["lever"] for t in levers] == expected
    for t, change in zip(levers, expected):
        assert t.user_attrs["draw"] == "lever" and t.params["epochs"] == budget.short
        assert {k: v for k, v in t.params.items() if k != "epochs"} == {
            **PRIOR,
            **change,
        }  # the recipe, one lever moved
    assert after.user_attrs["draw"] in ("local", "global") and "lever" not in after.user_attrs
    assert time.time() - budget.start < budget.seconds


def test_a_budget_that_is_not_rich_moves_no_lever():
    budget = BudgetPlan(1000.0)  # no probe: explores with short schedules, but not rich
    study = _run(PriorSampler(PRIOR, NAMES, seed=2, budget=budget), 4)
    assert not any("lever" in t.user_attrs for t in study.trials)


@pytest.mark.parametrize("name", ["tpe", "random"])
def test_any_sampler_runs_under_the_budget_plan(name, tmp_path):
    """TPE or random under a rich plan: the recipe first, explore trials of the plan's length
    (the sampler never draws ``epochs``), then a final run that replays the best trial's params."""
    from search.study.budgeted import BudgetedSampler
    from search.study.samplers import make_sampler

    settings = StudySettings.of(
        dataset="fashion_mnist", space=SPACE.to_dict(), baseline=True, base_config=BASE.to_dict()
    )
    budget = BudgetPlan(100_000.0, probe=100.0)  # 1,000 epochs of the recipe: rich
    sampler = make_sampler(name, 0, settings, budget)
    assert isinstance(sampler, BudgetedSampler)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(SPACE.baseline(BASE), user_attrs={"baseline": True})
    values = iter([0.80, 0.85, 0.82, 0.90])

    def objective(trial):
        SPACE.sample(trial, BASE, epochs=(1, 100))
        trial.set_user_attr("epoch_seconds", [1.0, 1.0])
        return next(values)

    study.optimize(objective, n_trials=3)
    assert all(t.user_attrs["phase"] == "explore" and t.params["epochs"] == budget.short for t in study.trials)
    assert study.trials[0].params == {**SPACE.baseline(BASE), "epochs": budget.short}  # the recipe first
    assert all(t.user_attrs["keep_weights"] for t in study.trials)
    budget.start -= 0.9 * budget.seconds  # past the exploring: the final run is due
    study.optimize(objective, n_trials=1)
    final = study.trials[-1]
    assert final.user_attrs["phase"] == "final" and final.user_attrs["source"] == 1 and "pace_until" in final.user_attrs
    assert {k: v for k, v in final.params.items() if k != "epochs"} == {
        k: v for k, v in study.trials[1].params.items() if k != "epochs"
    }
    assert final.params["epochs"] > budget.short


def test_a_change_around_the_prior_moves_away_from_the_recipe_trial_itself():
    """A prior that leaves a parameter open (the recipe's value is outside the space): the
    recipe trial draws it, and a local draw around the prior that changes it must not land
    on the recipe trial's value again (two workers once stored the same configuration)."""
    prior = {k: v for k, v in PRIOR.items() if k != "base_filters"}
    sampler = PriorSampler(prior, ["base_filters"], seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(prior, user_attrs={"baseline": True})

    def objective(trial):
        SPACE.sample(trial, BASE)
        return 0.5

    study.optimize(objective, n_trials=40)
    recipe = study.trials[0].params
    around_prior = [
        t for t in study.trials[1:] if t.user_attrs.get("draw") == "local" and t.user_attrs.get("centre") == "prior"
    ]
    assert len(around_prior) >= 3
    assert all(t.params != recipe for t in study.trials[1:])


def _branching_study(values: list[float], val_images: int | None, n: int) -> tuple[optuna.Study, BudgetPlan]:
    budget = BudgetPlan(100_000.0, probe=100.0, val_images=val_images)  # rich: 1,000 epochs of the recipe
    study = optuna.create_study(
        direction="maximize", sampler=PriorSampler(PRIOR, SPACE.changeable(BASE), seed=0, budget=budget)
    )
    study.enqueue_trial(SPACE.baseline(BASE), user_attrs={"baseline": True})
    scores = iter(values)

    def objective(trial):
        SPACE.sample(trial, BASE, epochs=(1, 100))
        trial.set_user_attr("epoch_seconds", [1.0, 1.0])  # fast: every branch fits
        trial.set_user_attr("checkpoint", f"/kept/trial-{trial.number}.weights.h5")  # as the objective keeps weights
        if trial.storage.get_trial_user_attrs(trial._trial_id).get("phase") == "branch":  # the sampler's plan
            trial.set_user_attr("continued_epochs", budget.short)  # as the objective records a continued run
        return next(scores)

    study.optimize(objective, n_trials=n)
    return study, budget


def test_a_rich_budget_branches_the_recipe_with_changes_that_keep_its_weights_then_continues_the_best():
    """With the recipe's weights kept, the control (the recipe continued) comes first, then
    one BRANCH_LEVER at a time on the recipe, each as long; then the final run of the best."""
    from search.study.prior import BRANCH_LEVERS

    # trunk, control, then the changes: no two in a row fail to beat the control (0.82), so every one is tried
    values = [0.80, 0.82, 0.83, 0.79, 0.84, 0.83, 0.80, 0.9]
    study, budget = _branching_study(values, None, 2 + len(BRANCH_LEVERS) + 1)
    trunk, control, *branches, final = study.trials
    assert trunk.user_attrs["phase"] == "explore" and trunk.params["epochs"] == budget.short
    assert (
        control.user_attrs["phase"] == "branch" and control.user_attrs["control"] and control.user_attrs["source"] == 0
    )
    assert control.params == {**trunk.params, "epochs": budget.branch_epochs}  # the trunk unchanged, continued
    expected = [{"batch_size": 64}, {"cutout": 0.25}, {"pad_crop": 4}, {"block_dropout": 0.1}, {"cutout": 0.5}]
    assert BASE.train.batch_size == 128 and BASE.augment.pad_crop == 2  # half the batch, wider shifts
    assert [t.user_attrs["lever"] for t in branches] == expected
    for t, change in zip(branches, expected):
        assert t.user_attrs["phase"] == "branch" and t.user_attrs["source"] == 0 and "control" not in t.user_attrs
        assert {k: v for k, v in t.params.items() if k != "epochs"} == {**PRIOR, **change}
        assert t.params["epochs"] == budget.branch_epochs
    # every change tried: the final run continues the best branch (pad-crop 4, 0.84)
    assert final.user_attrs["phase"] == "final" and final.user_attrs["source"] == branches[2].number
    assert {k: v for k, v in final.params.items() if k != "epochs"} == {**PRIOR, "pad_crop": 4}


@pytest.mark.parametrize(
    "values, images, stops",
    [
        ([0.80, 0.82, 0.81, 0.79], None, True),  # two changes below the control: done
        ([0.80, 0.82, 0.83, 0.79], None, False),  # the first of the two beat it: go on
        ([0.80, 0.82, 0.83, 0.82], 1000, True),  # +1 point on 1,000 images is inside the noise (1.7): a tie
        ([0.80, 0.82, 0.86, 0.82], 1000, False),  # +4 points is not
    ],
)
def test_branching_stops_once_two_changes_in_a_row_do_not_beat_the_control(values, images, stops):
    """Each branch costs its epochs whether or not it helps: after TIED_BRANCHES changes
    that did not beat the control by more than the validation noise, the final run comes."""
    from search.study.ranking import TIED_BRANCHES

    assert TIED_BRANCHES == 2
    study, _ = _branching_study([*values, 0.9], images, len(values) + 1)
    nxt = study.trials[-1].user_attrs
    if stops:  # the final run continues the best at the longest length: the control, since no change won
        assert nxt["phase"] == "final" and nxt["source"] == study.trials[1].number
    else:
        assert nxt["phase"] == "branch" and nxt["lever"] == {"pad_crop": 4}  # the third change


def test_a_lever_moves_to_the_next_choice_up_or_down_and_none_past_the_ends():
    from optuna.distributions import CategoricalDistribution

    batches = CategoricalDistribution([32, 64, 128, 256])
    step = PriorSampler._lever_value
    assert (step(128, "down", batches), step(128, "up", batches)) == (64, 256)
    assert step(32, "down", batches) is None and step(256, "up", batches) is None
    assert step(64, 64, batches) is None and step(64, 32, batches) == 32  # a value: taken when it changes something
