"""Payloads recorded from Runware's own SDK tests (``tests/samples/runware/``), each file
naming its source, and the one change the archive needs to take them: the SDK tests' short
ids (``u1``, ``i1``) become real UUIDs and their relative image URLs absolute ones."""

import json
import uuid
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples" / "runware"


def recorded(name):
    """The sample file ``name`` (without ``.json``) as a dict."""
    return json.loads((SAMPLES / f"{name}.json").read_text())


def with_real_ids(payload, task_uuid, names=None):
    """``payload`` with every ``taskUUID`` set to ``task_uuid``, every other id mapped to a
    UUID (the same id to the same UUID, through ``names``), relative URLs made absolute."""
    names = {} if names is None else names

    def fix(value):
        if isinstance(value, list):
            return [fix(item) for item in value]
        if not isinstance(value, dict):
            return value
        out = {key: fix(item) for key, item in value.items()}
        if "taskUUID" in out:
            out["taskUUID"] = task_uuid
        if "imageUUID" in out:
            out["imageUUID"] = names.setdefault(out["imageUUID"], str(uuid.uuid4()))
        if isinstance(out.get("imageURL"), str) and "://" not in out["imageURL"]:
            out["imageURL"] = f"https://im.runware.ai/image/os/a1b2c3/ws/2/ii/{out['imageURL']}"
        return out

    return fix(payload)
