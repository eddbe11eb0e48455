"""Re-running a task: what each mode sends (the buttons of the task page and
``POST /api/tasks/<taskUUID>/rerun`` both use :func:`start`).

- **exact**: the same request. A task sent with a seed is sent again as it was (same
  seed, same ``numberResults``: the provider's own seed progression repeats). A task sent
  *without* one is re-run with the seeds its results actually got; with one result that is
  one task with that seed; with several, one task per image (``numberResults`` 1, its
  seed), because how Runware derives the seeds of a batch from a given seed is not
  documented (runware-api.md §9) and random seeds of a batch are not consecutive anyway.
  Only the images that arrived can be reproduced; with none, it is refused (409).
- **new-seed**: the same request with a fresh random seed in 0 … 2³²−1.
- **edit** (the form only): whatever the user changed, linked to its parent.

One image of a task is re-run by :func:`start_image`: an exact re-run of that image
alone, ``numberResults`` 1 with its seed and the task's other parameters.
"""

import json
import secrets

from protocol.schemas import RANDOM_SEED_MAX, load_submission
from receiver.provider.submit import submit_in_app

MODES = ("exact", "new-seed")
SERVICE_SET = ("taskUUID", "webhookURL", "includeCost", "uploadEndpoint")


class RerunRefused(Exception):
    """A re-run that cannot be made as asked; ``status`` is the HTTP status to answer."""

    def __init__(self, status, parameter, message):
        super().__init__(message)
        self.status, self.errors = status, [{"parameter": parameter, "message": message}]


def base_params(task):
    """The task's request as the user gave it: stored ``params`` minus what the service
    sets, plus its ``label``."""
    params = json.loads(task["params"])
    for key in SERVICE_SET:
        params.pop(key, None)
    if task.get("label"):
        params["label"] = task["label"]
    return params


def plan(task, mode, overrides=None, *, randbelow=secrets.randbelow):
    """The validated submissions a re-run of ``task`` (a row with ``results``) makes.

    :raises RerunRefused: unknown mode, or an exact re-run with no seed known.
    :raises ParameterError: the overrides break a rule.
    """
    if mode not in MODES:
        raise RerunRefused(422, "mode", f"must be one of: {', '.join(MODES)}")
    params = base_params(task)
    if mode == "new-seed":
        plans = [dict(params, seed=randbelow(RANDOM_SEED_MAX + 1))]
    elif "seed" in params:
        plans = [params]
    else:
        seeds = [r["seed"] for r in task["results"] if r["seed"] is not None]
        if not seeds:
            raise RerunRefused(409, "seed", "the task was sent without a seed and no result "
                                            "has arrived, so its seed is not known yet")
        if len(seeds) == 1 and params.get("numberResults", 1) == 1:
            plans = [dict(params, seed=seeds[0])]
        else:
            plans = [dict(params, seed=seed, numberResults=1) for seed in seeds]
    return [load_submission({**p, **(overrides or {})}) for p in plans]


def plan_image(task, result):
    """The validated one-image submission that repeats ``result`` of ``task``.

    :raises RerunRefused: the image has no seed on record (409).
    """
    if result["seed"] is None:
        raise RerunRefused(409, "seed", "this image arrived without a seed, so it cannot "
                                        "be repeated")
    return load_submission(dict(base_params(task), seed=result["seed"], numberResults=1))


def start_image(app, task, result):
    """Re-run one image exactly (see :func:`plan_image`); its ``Submission``."""
    return submit_in_app(app, plan_image(task, result), parent=task["task_uuid"],
                         rerun_mode="exact")


def start(app, task, mode, overrides=None):
    """Plan and submit a re-run; returns the :class:`receiver.provider.submit.Submission` of each
    task sent, stopping at the first refused one."""
    outcomes = []
    for params in plan(task, mode, overrides):
        outcome = submit_in_app(app, params,
                                parent=task["task_uuid"], rerun_mode=mode)
        outcomes.append(outcome)
        if outcome.errors:
            break
    return outcomes
