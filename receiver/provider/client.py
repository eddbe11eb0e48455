"""The HTTP client for Runware's REST endpoint (or the sandbox): one session, and the retry
policy of Runware's own SDK.

Runware's current Python SDK retries HTTP 408, 429 and every 5xx, timeouts and connection
errors, three times, waiting ``retry_delay × 2^(attempt−1)`` (1 s, doubling, at most 30 s)
plus 0–1 s of jitter before each retry (Runware/runware-python ``runware/transport/rest.py``
``_is_retryable_status`` and ``_should_retry``; ``runware/utils/retry.py`` ``with_retry``;
defaults in ``runware/types/sdk.py``). This client does the same through urllib3's
``Retry``, and also honours ``Retry-After``.

Retrying a submission is safe because a retry carries the same taskUUID: Runware answers a
taskUUID it has seen with the error ``conflictTaskUUID`` instead of running the task again.
That answer is not a failure when it answers a *retry*: it says the first send got through
and only its reply was lost (Runware/sdk-python ``runware/base.py``
``_retry_with_reconnect``: a conflict on attempt 0 is raised, on a later attempt the SDK
polls ``getResponse``). :attr:`Reply.retried` tells the caller which case it has.
"""

import random
from dataclasses import dataclass
from itertools import takewhile

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from receiver import config as settings

RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})
SDK_RETRIES = 3
SDK_RETRY_DELAY = 1.0  # seconds: the SDK's retry_delay of 1,000 ms
SDK_RETRY_CAP = 30.0


class SdkRetry(Retry):
    """urllib3's ``Retry`` on the SDK's schedule: every retry waits, the first one too
    (urllib3's own first retry is immediate), ``backoff_factor × 2^(n−1)`` capped at
    ``backoff_max``, plus up to ``backoff_jitter`` seconds drawn at random."""

    def get_backoff_time(self):
        """Seconds to wait before the next retry."""
        failures = len(list(takewhile(lambda h: h.redirect_location is None,
                                      reversed(self.history))))
        if failures == 0:
            return 0.0
        wait = min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1))
        return wait + random.uniform(0, self.backoff_jitter)


def retry_policy(retries=SDK_RETRIES, backoff=SDK_RETRY_DELAY):
    """The SDK's retry set and schedule; the jitter scales with ``backoff`` (the SDK's
    0–1 s beside its 1 s delay), so tests that shorten the delay shorten the jitter too."""
    return SdkRetry(
        total=retries, connect=retries, read=retries, status=retries, other=retries,
        status_forcelist=RETRY_STATUSES, allowed_methods=None, backoff_factor=backoff,
        backoff_max=SDK_RETRY_CAP, backoff_jitter=backoff,
        respect_retry_after_header=True, raise_on_status=False,
    )


@dataclass
class Reply:
    """The provider's answer: HTTP status, the body as a dict, and whether it answers a
    retry (an earlier attempt of the same request failed or went unanswered)."""

    status: int
    body: dict
    retried: bool = False

    def __iter__(self):  # unpacks as (status, body), as callers of post() always did
        return iter((self.status, self.body))


class ProviderClient:
    """POSTs task arrays to Runware's REST endpoint (or the sandbox) through one session."""

    def __init__(self, url, api_key, *, timeout=120.0, retries=SDK_RETRIES,
                 backoff=SDK_RETRY_DELAY, session=None):
        self.url = url
        self.timeout = (5.0, timeout)
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def post(self, tasks):
        """POST ``tasks`` (a list); returns a :class:`Reply`.

        :raises requests.RequestException: the provider could not be reached, after the
            retries.
        """
        response = self.session.post(self.url, json=tasks, timeout=self.timeout)
        try:
            body = response.json()
        except ValueError:
            body = {"errors": [{"code": "invalidResponse",
                                "message": f"HTTP {response.status_code}, not JSON"}]}
        if not isinstance(body, dict):
            body = {"errors": [{"code": "invalidResponse", "message": "not a JSON object"}]}
        history = getattr(getattr(response.raw, "retries", None), "history", ())
        return Reply(response.status_code, body, retried=bool(history))


def provider_client(app):
    """The app's one :class:`ProviderClient`, made on first use (the sandbox's address
    is known only once the server is listening); without a Runware key it sends the
    mounted sandbox's own key."""
    client = app.extensions.get("provider_client")
    if client is None:
        cfg = app.config
        client = ProviderClient(
            settings.provider_url(cfg),
            cfg.get("RUNWARE_API_KEY") or app.extensions["sandbox_key"],
            timeout=cfg["RUNWARE_ARCHIVE_SUBMIT_TIMEOUT"],
            retries=cfg["RUNWARE_ARCHIVE_SUBMIT_RETRIES"],
            backoff=cfg["RUNWARE_ARCHIVE_SUBMIT_BACKOFF"],
        )
        app.extensions["provider_client"] = client
    return client
