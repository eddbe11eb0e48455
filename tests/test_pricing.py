"""The price estimate: close to Runware's figures, scaling with size and steps, never zero."""

import pytest

from archive.pricing import cost_per_image, estimate_cost
from tests.conftest import seed_examples


def test_a_1024_square_at_4_steps_costs_what_runware_charges():
    assert cost_per_image(1024, 1024, 4) == 0.0006


@pytest.mark.parametrize("example", seed_examples(), ids=lambda e: e["title"])
def test_the_seed_examples_are_within_a_tenth_of_a_cent(example):
    request = example["request"]
    estimate = cost_per_image(request["width"], request["height"], request["steps"])
    assert abs(estimate - example["response"]["cost"]) <= 0.001


@pytest.mark.parametrize("width, height, steps, expected", [
    (2048, 2048, 4, 0.0024),   # four megapixels
    (1024, 1024, 8, 0.0012),   # twice the steps
    (1024, 1024, 50, 0.0075),
    (2048, 2048, 50, 0.03),
    (1536, 1024, 4, 0.0009),
])
def test_it_scales_with_megapixels_and_steps(width, height, steps, expected):
    assert cost_per_image(width, height, steps) == expected


@pytest.mark.parametrize("width, height, steps", [(128, 128, 1), (512, 512, 4), (1024, 576, 1)])
def test_small_jobs_pay_the_minimum_never_zero(width, height, steps):
    assert cost_per_image(width, height, steps) == 0.0006


def test_it_rounds_to_four_decimals():
    cost = cost_per_image(1088, 1088, 4)  # 1.129 units
    assert cost == 0.0007
    assert round(cost, 4) == cost


def test_a_task_costs_the_sum_of_its_images():
    assert estimate_cost(1024, 1024, 4) == 0.0006
    assert estimate_cost(1024, 1024, 4, number_results=20) == 0.012
    assert estimate_cost(1088, 1088, 4, 3) == pytest.approx(3 * cost_per_image(1088, 1088, 4))


def test_larger_is_never_cheaper():
    sizes = [(w, h) for w in range(128, 2049, 320) for h in range(128, 2049, 320)]
    for steps in (1, 4, 9, 50):
        costs = sorted((w * h, cost_per_image(w, h, steps)) for w, h in sizes)
        assert all(a[1] <= b[1] for a, b in zip(costs, costs[1:]))


PRICES = {"m": (("2026-01-01", "0.0006"), ("2026-07-01", "0.0010"))}


@pytest.mark.parametrize("at, expected", [
    ("2026-01-01T00:00:00Z", 0.0006),
    ("2026-06-30T23:59:59Z", 0.0006),   # the day before the new price
    ("2026-07-01T00:00:00Z", 0.0010),   # the day it takes effect
    ("2027-03-05", 0.0010),
])
def test_the_price_in_force_on_the_day_is_used(at, expected):
    assert cost_per_image(1024, 1024, 4, model="m", at=at, prices=PRICES) == expected


def test_a_task_estimate_uses_the_price_at_its_submission():
    before = estimate_cost(1024, 1024, 4, 3, model="m", at="2026-06-15", prices=PRICES)
    after = estimate_cost(1024, 1024, 4, 3, model="m", at="2026-07-15", prices=PRICES)
    assert (before, after) == (pytest.approx(0.0018), pytest.approx(0.0030))


def test_no_price_before_the_first_one_or_for_an_unlisted_model():
    from archive.pricing import UnknownModel
    with pytest.raises(UnknownModel):
        cost_per_image(1024, 1024, 4, model="m", at="2025-12-31", prices=PRICES)
    with pytest.raises(UnknownModel):
        cost_per_image(1024, 1024, 4, model="other", prices=PRICES)


def test_epoch_seconds_and_datetimes_name_the_same_utc_day():
    from datetime import datetime, timezone
    moment = datetime(2026, 7, 1, 0, 30, tzinfo=timezone.utc)
    assert cost_per_image(1024, 1024, 4, model="m", at=moment.timestamp(),
                          prices=PRICES) == 0.0010
    assert cost_per_image(1024, 1024, 4, model="m", at=moment, prices=PRICES) == 0.0010
