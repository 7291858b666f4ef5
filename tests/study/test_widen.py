"""A rich budget widens the recipe's net, and on few images augments it more: the choice of
width and augmentation, and a real SQLite study's queued recipe, sampler and stored budget
after it (epoch times given, not trained)."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from search.core.recipe import DataShape, recipe
from search.core.space_files import load_space
from search.reporting.progress import budget_summary
from search.study.budget import RICH
from search.study.budgets import describe_plan, study_budget
from search.study.prior import PriorSampler
from search.study.widen import FEW_IMAGES, MAX_PROBES, choose_width, long_augmentation, plan_widening, stored_widening

SPACE = load_space("cnn")
CIFAR = DataShape("folder:cifar", 32, 32, 3, 10, 4500)
BASE = recipe(CIFAR)  # 48 base filters
CHOICES = next(p for p in SPACE.params if p.name == "base_filters").choices


def _timed(per_epoch: dict[int, float]):
    asked: list[int] = []

    def measure(width: int) -> float:
        asked.append(width)
        return per_epoch[width]

    return measure, asked


def test_the_widest_choice_whose_epochs_the_budget_buys_sixty_of_is_timed_first_and_taken():
    # the CIFAR-10 subset at 4,500 images: 9.85 s a recipe epoch, 2400 s; 96 filters measured 3.6x
    measure, asked = _timed({96: 35.5, 64: 18.0})
    assert choose_width(2400, 9.85, 48, CHOICES, measure) == (96, 35.5)
    assert asked == [96]


def test_a_wider_net_slower_than_its_estimate_gives_way_to_the_next():
    measure, asked = _timed({96: 45.0, 64: 18.0})  # 2400 / 45 = 53 epochs: under RICH
    assert choose_width(2400, 9.85, 48, CHOICES, measure) == (64, 18.0)
    assert asked == [96, 64]


def test_no_width_is_timed_where_its_estimate_cannot_fit_and_at_most_max_probes_are():
    # 122 recipe epochs: 96 (4x, 30 epochs) is not timed; 64 (1.78x by its estimate, 68) is, and is too slow
    measure, asked = _timed({64: 25.0})
    assert choose_width(1200, 9.85, 48, CHOICES, measure) is None
    assert asked == [64]
    # Fashion-MNIST 10k at 1200 s: 7.5 s a recipe epoch (32 filters); 64 (4x: 40 epochs) is not timed
    measure, asked = _timed({48: 16.0})
    assert choose_width(1200, 7.5, 32, CHOICES, measure) == (48, 16.0)
    assert asked == [48]
    measure, asked = _timed(dict.fromkeys(CHOICES, 1000.0))  # every probe too slow
    assert choose_width(3000, 1.0, 16, CHOICES, measure) is None  # 96, 64 and 48 fit by their estimates
    assert asked == [96, 64][:MAX_PROBES]
    assert choose_width(59 * 9.85, 9.85, 48, CHOICES, measure) is None  # not rich: nothing wider fits


def _study(tmp_path, seconds: float, probe: float):
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    prior = SPACE.priors(BASE)
    budget_kwargs = {"probe": probe, "val_images": 1000}
    study = optuna.create_study(study_name="w", storage=storage, direction="maximize")
    study.enqueue_trial(SPACE.baseline(BASE), user_attrs={"baseline": True})
    budget, joined = study_budget(study, seconds, **budget_kwargs)
    assert joined is None
    study = optuna.load_study(
        study_name="w", storage=storage, sampler=PriorSampler(prior, SPACE.changeable(BASE), seed=0, budget=budget)
    )
    return study, budget, storage


def test_a_rich_budget_widens_the_queued_recipe_the_prior_and_the_plan_and_a_joining_command_takes_it(tmp_path):
    study, budget, storage = _study(tmp_path, 2400.0, 9.85)
    measure, asked = _timed({96: 35.5})
    plan_widening(study, budget, SPACE, BASE, lambda config: measure(config.model.base_filters))
    assert asked == [96]
    assert (budget.widening.recipe, budget.widening.width, budget.probe) == (48, 96, 35.5)
    assert round(budget.affordable_epochs()) == 68 >= RICH  # the plan counts epochs of the wider net
    assert study.sampler.prior["base_filters"] == 96
    line = describe_plan(budget)
    assert line.startswith("budget 2400s buys about 244 epochs of the recipe (9.8s each); a budget this rich pays")
    assert "96 base filters instead of the recipe's 48, 35.5s an epoch, about 68 epochs: the recipe trains" in line
    summary = budget_summary(study, budget)
    assert "96 base filters instead of the recipe's 48" in summary.splitlines()[1]

    # the recipe queued at the study's creation trains the wider net: Optuna hands out the new fixed value
    trial = study.ask()
    assert trial.user_attrs["baseline"] and trial.suggest_categorical("base_filters", CHOICES) == 96
    study.tell(trial, 0.7)

    # another command joins the budget: it takes the stored width and epoch, times nothing, rewrites nothing
    joined, note = study_budget(study, 2400.0, probe=9.0, val_images=1000)
    assert note is not None and joined.start == budget.start

    def never(config):
        raise AssertionError("a joining command does not time a wider net again")

    plan_widening(study, joined, SPACE, BASE, never)
    assert (joined.widening, joined.probe) == (budget.widening, 35.5)
    assert stored_widening(optuna.load_study(study_name="w", storage=storage), joined) == budget.widening


@pytest.mark.parametrize(
    "seconds, per_epoch",
    [(500.0, {}), (2400.0, {96: 60.0, 64: 45.0})],  # not rich; rich, but no wider net buys RICH epochs
)
def test_no_widening_leaves_the_recipe_the_prior_and_the_plan_as_they_were(tmp_path, seconds, per_epoch):
    study, budget, _ = _study(tmp_path, seconds, 9.85)
    measure, _asked = _timed(per_epoch)
    plan_widening(study, budget, SPACE, BASE, lambda config: measure(config.model.base_filters))
    assert budget.widening is None and budget.probe == 9.85 and stored_widening(study, budget) is None
    assert study.sampler.prior["base_filters"] == 48
    assert "base filters" not in describe_plan(budget)
    # a command joining this budget keeps the first one's decision, even where its own timing would widen
    joined, _ = study_budget(study, seconds, probe=9.85, val_images=1000)
    plan_widening(study, joined, SPACE, BASE, lambda config: 30.0)  # 80 epochs of 96 filters in 2400 s
    assert joined.widening is None and joined.probe == 9.85 and study.sampler.prior["base_filters"] == 48
    assert study.ask().suggest_categorical("base_filters", CHOICES) == 48


def test_a_space_of_another_kind_of_net_than_the_probed_recipe_is_not_widened(tmp_path):
    study, budget, _ = _study(tmp_path, 2400.0, 9.85)  # the probe timed the CNN recipe
    plan_widening(study, budget, load_space("resnet"), BASE, lambda config: 20.0)  # would fit, were it the net
    assert budget.widening is None and budget.probe == 9.85 and stored_widening(study, budget) is None


def test_a_net_that_does_not_fit_is_not_taken():
    measure, asked = _timed({96: float("inf"), 64: 18.0})  # 96: over --max-params, or out of memory
    assert choose_width(2400, 9.85, 48, CHOICES, measure) == (64, 18.0) and asked == [96, 64]


def test_a_later_worker_waits_for_the_first_ones_decision_and_takes_it(tmp_path):
    import threading

    from search.study.record import BUDGET

    study, budget, storage = _study(tmp_path, 2400.0, 9.85)
    decided = {
        **study.user_attrs[BUDGET],
        "widening": {"recipe": 48, "width": 64, "recipe_seconds": 9.9, "seconds": 18.0},
    }
    first = optuna.load_study(study_name="w", storage=storage)
    threading.Timer(1.5, lambda: first.set_user_attr(BUDGET, decided)).start()  # the first worker, after its probes

    def never(config):
        raise AssertionError("a later worker does not time a wider net while the first decides")

    plan_widening(study, budget, SPACE, BASE, never, wait=30.0)
    assert (budget.widening.width, budget.probe) == (64, 18.0)
    assert study.ask().suggest_categorical("base_filters", CHOICES) == 64


def test_a_new_budget_that_does_not_widen_gives_the_queued_recipe_its_width_back(tmp_path):
    study, budget, storage = _study(tmp_path, 2400.0, 9.85)
    plan_widening(study, budget, SPACE, BASE, lambda config: 35.5)  # widened, then stopped before the recipe ran
    assert study.get_trials()[0].system_attrs["fixed_params"]["base_filters"] == 96
    later, _ = study_budget(study, 500.0, probe=9.85, now=budget.deadline + 60)  # rerun with a poorer budget
    plan_widening(study, later, SPACE, BASE, lambda config: 35.5)
    assert later.widening is None and study.ask().suggest_categorical("base_filters", CHOICES) == 48


def _queued(study) -> dict:
    return study.get_trials()[0].system_attrs["fixed_params"]


def test_few_photographs_get_the_long_augmentation_that_the_space_can_take_and_nothing_else_does():
    long = {"pad_crop": 4, "cutout": 0.25}
    assert long_augmentation(SPACE, BASE, 4500) == long
    grey = recipe(DataShape("fashion_mnist", 28, 28, 1, 10, 5000))  # 28 px: the recipe shifts them too
    assert long_augmentation(SPACE, grey, 5000) == long
    assert long_augmentation(SPACE, BASE, FEW_IMAGES) == {}  # enough images: not measured to help
    digits = recipe(DataShape("digits", 8, 8, 1, 10, 1500))  # no shifts under 24 px
    assert long_augmentation(SPACE, digits, 1500) == {}
    text = recipe(DataShape("textfolder:caps", 40, 120, 1, 36, 3000, text=True))
    assert long_augmentation(load_space("captcha"), text, 3000) == {}
    already = BASE.replace(augment=dataclasses.replace(BASE.augment, pad_crop=4, cutout=0.5))  # as strong or more
    assert long_augmentation(SPACE, already, 4500) == {}
    no_cutout = dataclasses.replace(SPACE, params=tuple(p for p in SPACE.params if p.key != "cutout"))
    assert long_augmentation(no_cutout, BASE, 4500) == {"pad_crop": 4}  # only what the space samples


def test_a_rich_budget_on_few_images_augments_the_widened_recipe_and_a_joining_command_takes_it(tmp_path):
    study, budget, storage = _study(tmp_path, 2400.0, 9.85)
    plan_widening(study, budget, SPACE, BASE, lambda config: 35.5, images=4500)
    assert (budget.widening.width, budget.widening.augment, budget.probe) == (96, {"pad_crop": 4, "cutout": 0.25}, 35.5)
    assert {k: study.sampler.prior[k] for k in ("base_filters", "pad_crop", "cutout")} == {
        "base_filters": 96,
        "pad_crop": 4,
        "cutout": 0.25,
    }
    line = describe_plan(budget)
    assert "96 base filters instead of the recipe's 48, and for its few training images' long-schedule " in line
    assert "augmentation (pad_crop 4, cutout 0.25), 35.5s an epoch, about 68 epochs" in line
    trial = study.ask()  # Optuna hands the queued recipe its new values
    assert (
        trial.suggest_categorical("pad_crop", [0, 2, 4]),
        trial.suggest_categorical("cutout", [0.0, 0.25, 0.5]),
    ) == (
        4,
        0.25,
    )
    study.tell(trial, 0.7)
    joined, _ = study_budget(study, 2400.0, probe=9.0, val_images=1000)
    plan_widening(study, joined, SPACE, BASE, lambda config: 1.0, images=9000)  # its own data would not augment
    assert joined.widening == budget.widening
    assert stored_widening(optuna.load_study(study_name="w", storage=storage), joined) == budget.widening


def test_a_rich_budget_no_wider_net_fits_still_augments_few_images_at_the_recipes_width(tmp_path):
    study, budget, _ = _study(tmp_path, 2400.0, 9.85)
    plan_widening(study, budget, SPACE, BASE, lambda config: 60.0, images=4500)  # 40 epochs of 64 or 96
    assert (budget.widening.recipe, budget.widening.width, budget.probe) == (48, 48, 9.85)
    assert {k: _queued(study)[k] for k in ("base_filters", "pad_crop", "cutout")} == {
        "base_filters": 48,
        "pad_crop": 4,
        "cutout": 0.25,
    }
    line = describe_plan(budget)
    assert "a budget this rich pays for its few training images' long-schedule augmentation (pad_crop 4, " in line
    assert "base filters" not in line


def test_a_poor_budget_or_enough_images_leave_the_recipes_augmentation_and_a_new_budget_gives_it_back(tmp_path):
    study, budget, _ = _study(tmp_path, 500.0, 9.85)  # 51 epochs: not rich
    plan_widening(study, budget, SPACE, BASE, lambda config: 1.0, images=4500)
    assert budget.widening is None and (_queued(study)["pad_crop"], _queued(study)["cutout"]) == (2, 0.0)
    richer, _ = study_budget(study, 2400.0, probe=9.85, now=budget.deadline + 60)
    plan_widening(study, richer, SPACE, BASE, lambda config: 60.0, images=4500)  # stopped before the recipe ran
    assert (_queued(study)["pad_crop"], _queued(study)["cutout"]) == (4, 0.25)
    later, _ = study_budget(study, 2400.0, probe=9.85, now=richer.deadline + 60)  # the same budget, more images
    plan_widening(study, later, SPACE, BASE, lambda config: 60.0, images=9000)
    assert later.widening is None and (_queued(study)["pad_crop"], _queued(study)["cutout"]) == (2, 0.0)
