"""Price estimates for TwinFlow Z-Image-Turbo tasks (no Flask; the sandbox and the views use it).

Runware's price table for ``runware:twinflow-z-image-turbo@0`` could not be retrieved
(``runware-api.md`` §8). What is known: the seed examples, all 4 steps, cost $0.0006 at
1024×768 and 1024×576 (and $0.0013 for the same size at other times), and the sibling model
``runware:z-image@turbo`` is listed at about $0.0034 per megapixel. The formula here:

    units          = megapixels × steps / 4          (megapixels = width × height / 2**20)
    cost per image = $0.0006 × max(1, units)         rounded half-up to 4 decimals
    task estimate  = cost per image × numberResults  (what the results' costs add up to)

so one unit is a 1024×1024 image at the model's default 4 steps, which costs $0.0006; smaller
or shorter jobs pay that minimum (which is what the seed examples show), larger or longer ones
pay in proportion. It is an estimate: the ``cost`` Runware returns is always the truth.
"""

from decimal import ROUND_HALF_UP, Decimal

PRICE_PER_UNIT = Decimal("0.0006")  # USD for one 1024×1024, 4-step image
UNIT_PIXELS = 1024 * 1024
UNIT_STEPS = 4
CENT_PLACES = Decimal("0.0001")  # Runware reports costs to 4 decimals


def _image_price(width, height, steps):
    """One image's price as a Decimal, rounded half-up to 4 decimals, at least $0.0001."""
    units = Decimal(width * height * steps) / Decimal(UNIT_PIXELS * UNIT_STEPS)
    price = (PRICE_PER_UNIT * max(Decimal(1), units)).quantize(CENT_PLACES, ROUND_HALF_UP)
    return max(price, CENT_PLACES)


def cost_per_image(width, height, steps):
    """Estimated USD for one image of ``width``×``height`` at ``steps``, to 4 decimals."""
    return float(_image_price(width, height, steps))


def estimate_cost(width, height, steps, number_results=1):
    """Estimated USD for a task of ``number_results`` images: the sum of the per-image
    prices, as the ``cost`` of each result would add up."""
    return float(_image_price(width, height, steps) * number_results)
