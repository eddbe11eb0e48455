"""Recovery through ``getTaskDetails``: a task whose results never arrived and that
``getResponse`` no longer knows (``taskNotFound`` and its kin) is asked for its original
request and response, Runware's archive of past tasks "for recovering responses that your
application didn't store" (runware.ai/docs/platform/task-details). The reply is
``{"data": [{"taskType": "getTaskDetails", "taskUUID", "request": [...], "response":
{"data": [...]} or {"errors": [...]}}]}`` (Runware/runware-python
``runware/types/task_map.py`` and Runware/runware-typescript ``src/types/task-map.ts``
``GetTaskDetailsResult``); its ``response`` is read as the envelope it is and goes through
the one ingest with source ``taskDetails``, so a lost webhook costs nothing but time.

Whether Runware's ``response`` for an async task holds the results or only the
acknowledgement it answered at the time is not documented; an acknowledgement alone
brings nothing, and the task stays missing (and named by the books).
"""

from receiver.provider.replies import ask, ingest_reply

SOURCE = "taskDetails"


def recover(catalogue, client, task_uuids, columns_for, report):
    """One ``getTaskDetails`` POST for ``task_uuids``; ingest each task's response.
    Fills ``report.recovered`` (taskUUIDs that brought something) and counts new results
    and errors into ``report``."""
    reply = ask(client, "getTaskDetails", task_uuids, report.problems)
    if reply is None:
        return
    _, body = reply
    for uuid in task_uuids:
        response = response_of(body, uuid)
        if response is None:
            continue
        outcome = ingest_reply(catalogue, uuid, response, source=SOURCE,
                               columns_for=columns_for)
        report.new_results += outcome.new_results
        report.new_errors += outcome.new_errors
        if outcome.new_results or outcome.new_errors:
            report.recovered.append(uuid)
        if outcome.problem:
            report.problems.append(f"{uuid}: {outcome.problem}")


def response_of(body, task_uuid):
    """The original response envelope ``getTaskDetails`` gave for ``task_uuid``, or None."""
    for item in body.get("data") or []:
        if isinstance(item, dict) and str(item.get("taskUUID", "")).lower() == task_uuid \
                and isinstance(item.get("response"), dict):
            return item["response"]
    return None
