"""Price estimates (no Flask; the sandbox and the views use it): a price list per model with
the date each price took effect, so an estimate uses the price in force when its task was
submitted and a new price never moves the past.

Runware's price table for ``runware:twinflow-z-image-turbo@0`` could not be retrieved
(``runware-api.md`` §8). What is known: the seed examples, all 4 steps, cost $0.0006 at
1024×768 and 1024×576 (and $0.0013 for the same size at other times), and the sibling model
``runware:z-image@turbo`` is listed at about $0.0034 per megapixel. The formula here:

    units          = megapixels × steps / 4          (megapixels = width × height / 2**20)
    cost per image = price per unit × max(1, units)  rounded half-up to 4 decimals
    task estimate  = cost per image × numberResults  (what the results' costs add up to)

so one unit is a 1024×1024 image at the model's default 4 steps; smaller or shorter jobs
pay that minimum (which is what the seed examples show), larger or longer ones pay in
proportion. The price per unit comes from :data:`PRICE_LIST`: for each model, ``(effective
from, USD per unit)`` pairs, the date a UTC date; the price in force at a moment is the
last one whose date is not after it. A change of price is a new line, never an edit of an
old one (each task keeps the estimate it was given, ``tasks.estimate``). It is an
estimate: the ``cost`` Runware returns is always the truth.
"""

import bisect
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

MODEL = "runware:twinflow-z-image-turbo@0"
PRICE_LIST = {
    MODEL: (("2025-01-01", "0.0006"),),  # USD for one 1024×1024, 4-step image
}
UNIT_PIXELS = 1024 * 1024
UNIT_STEPS = 4
CENT_PLACES = Decimal("0.0001")  # Runware reports costs to 4 decimals


class UnknownModel(LookupError):
    """No price is listed for the model (or none was in force yet)."""


def utc_date(moment):
    """The UTC date of ``moment``: None (now), epoch seconds, a datetime, a date or ISO
    8601 text (``2026-12-01`` or ``2026-12-01T11:00:00Z``)."""
    if moment is None:
        return datetime.now(timezone.utc).date()
    if isinstance(moment, (int, float)):
        return datetime.fromtimestamp(moment, timezone.utc).date()
    if isinstance(moment, datetime):
        return moment.astimezone(timezone.utc).date() if moment.tzinfo else moment.date()
    if isinstance(moment, date):
        return moment
    return date.fromisoformat(str(moment)[:10])


def price_per_unit(model=MODEL, at=None, prices=None):
    """The USD price of one unit of ``model`` in force at ``at`` (see :func:`utc_date`),
    as a Decimal.

    :param prices: a price list shaped like :data:`PRICE_LIST` (default: that one).
    :raises UnknownModel: no price listed for ``model`` on that date.
    """
    entries = sorted((prices or PRICE_LIST).get(model, ()))
    day = utc_date(at).isoformat()
    index = bisect.bisect_right([start for start, _ in entries], day)
    if index == 0:
        raise UnknownModel(f"no price listed for {model} on {day}")
    return Decimal(str(entries[index - 1][1]))


def _image_price(width, height, steps, model, at, prices):
    """One image's price as a Decimal, rounded half-up to 4 decimals, at least $0.0001."""
    units = Decimal(width * height * steps) / Decimal(UNIT_PIXELS * UNIT_STEPS)
    unit = price_per_unit(model, at, prices)
    price = (unit * max(Decimal(1), units)).quantize(CENT_PLACES, ROUND_HALF_UP)
    return max(price, CENT_PLACES)


def cost_per_image(width, height, steps, *, model=MODEL, at=None, prices=None):
    """Estimated USD for one image of ``width``×``height`` at ``steps``, to 4 decimals,
    at the price in force at ``at`` (default now)."""
    return float(_image_price(width, height, steps, model, at, prices))


def estimate_cost(width, height, steps, number_results=1, *, model=MODEL, at=None,
                  prices=None):
    """Estimated USD for a task of ``number_results`` images: the sum of the per-image
    prices in force at ``at`` (its submission), as the ``cost`` of each result would add up."""
    return float(_image_price(width, height, steps, model, at, prices) * number_results)
