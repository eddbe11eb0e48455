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
    task_uuid = entry.get("taskUUID") if isinstance(entry, dict) else None
    return runware_error(
        code, f"{parameter} {message}" if parameter else message,
        task_uuid=task_uuid if isinstance(task_uuid, str) else None, parameter=parameter,
        documentation=None if code == "unknownParameter"
        else f"{DOCS}#request-{name.lower()}")
