"""The names of the states a task and an image go through, in one place: the catalogue
stores them as text, and the views, the API and reconciliation read them.

A task is ``sending`` while its POST is under way, ``submitted`` once Runware acknowledged
it, ``partial`` while its images arrive, then ``complete``, ``error`` (a failure was
reported, or the submission was refused) or ``lost`` (nothing came before the reconcile
window closed). An image is ``pending`` until the fetcher archives it, then ``archived``,
or ``failed`` / ``refused`` with the reason.
"""

SENDING, SUBMITTED, PARTIAL, COMPLETE, ERROR, LOST = (
    "sending", "submitted", "partial", "complete", "error", "lost")
TASK_STATES = (SENDING, SUBMITTED, PARTIAL, COMPLETE, ERROR, LOST)
FINAL = (COMPLETE, ERROR, LOST)  # no more images are waited for

PENDING, ARCHIVED, FAILED, REFUSED = "pending", "archived", "failed", "refused"
IMAGE_STATES = (PENDING, ARCHIVED, FAILED, REFUSED)
