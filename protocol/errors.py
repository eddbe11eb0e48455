"""Runware's error objects (runware-api.md §1), as the sandbox and the archive's ``/v1`` both
answer them: the fields, and the codes Runware gives a parameter that fails its rules
(``missingX``, ``unknownParameter``, ``invalidXLength``, ``invalidX``: the codes Runware's
own SDKs list, Runware/runware-typescript ``test/errors.test.ts``)."""

DOCS = "https://runware.ai/docs/image-inference/api-reference"


def runware_error(code, message, *, task_type="imageInference", task_uuid=None,
                  parameter=None, documentation=None):
    """An error object as Runware writes them; absent fields are left out."""
    error = {"code": code, "message": message, "parameter": parameter,
             "taskType": task_type, "taskUUID": task_uuid, "documentation": documentation}
    return {key: value for key, value in error.items() if value is not None}


def validation_error(error, entry):
    """A schema error (``{"parameter", "message"}``) of the task ``entry`` as Runware's
    error object, with the code Runware would give it."""
    parameter, message = error["parameter"] or None, error["message"]
    name = (parameter or "task").split("[")[0].split(".")[0]
    title = f"{name[0].upper()}{name[1:]}"
    if message == "is required":
        code = f"missing{title}"
    elif message == "is not a known parameter":
        code = "unknownParameter"
    elif name in ("positivePrompt", "negativePrompt") and "characters" in message:
        code = f"invalid{title}Length"
    else:
        code = f"invalid{title}"
    task_uuid = text_or_none(entry.get("taskUUID")) if isinstance(entry, dict) else None
    return runware_error(
        code, f"{parameter} {message}" if parameter else message,
        task_uuid=task_uuid, parameter=parameter,
        documentation=None if code == "unknownParameter"
        else f"{DOCS}#request-{name.lower()}")


def envelope(data, errors):
    """A reply's body as Runware writes it: ``{"data": [...]}``, with ``"errors": [...]``
    beside it when there are any (an errors-only reply still carries its empty ``data``)."""
    body = {"data": data}
    if errors:
        body["errors"] = errors
    return body


def split_key(authorization, tasks):
    """``(key, tasks)``: the API key of a request (``Authorization: Bearer <key>``, else a
    first ``{"taskType": "authentication", "apiKey": ...}`` element, runware-api.md §1)
    and its tasks without that element. ``key`` is "" when none was given."""
    header = authorization or ""
    key = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if isinstance(tasks, list) and tasks and isinstance(tasks[0], dict) \
            and tasks[0].get("taskType") == "authentication":
        given = tasks[0].get("apiKey")
        key = key or (given.strip() if isinstance(given, str) else "")
        tasks = tasks[1:]
    return key, tasks


def text_or_none(value):
    """``value`` if it is a string (a taskUUID as the client gave it), else None."""
    return value if isinstance(value, str) else None
