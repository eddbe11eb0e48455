"""What Runware uses for a parameter a task leaves out, so that the task page and the
downloads can say what an image was made with, not only what was sent.

Loading never fills these in (:mod:`protocol.schemas`: the archive sends exactly what the
user gave); they are only read back beside a stored request. The values are
``runware-api.md`` §2's "default" column. Two parameters are left to the model with no
value the sources agree on, so no value is claimed for them (:data:`MODELS_OWN`).
"""

from protocol.schemas import DEFAULT_CFG_SCALE, DEFAULT_SIZE, DEFAULT_STEPS

__all__ = ["DEFAULTS", "MODELS_OWN", "LORA_DEFAULTS", "defaults_for"]

DEFAULTS = {
    "width": DEFAULT_SIZE, "height": DEFAULT_SIZE, "steps": DEFAULT_STEPS,
    "CFGScale": DEFAULT_CFG_SCALE, "numberResults": 1, "outputType": "URL",
    "outputFormat": "JPG", "outputQuality": 95,
}
# §2: "model's own" scheduler (no name given); acceleration "medium" on the model page but
# "none" in the generic reference. Said in words, never written into a file as a value.
MODELS_OWN = {
    "scheduler": "the model's own (its name is not documented)",
    "acceleration": "the model's own (the model page says medium, the generic reference none)",
}
LORA_DEFAULTS = {"weight": 1, "transformer": "both"}  # §2, lora[] items


def defaults_for(params):
    """``{name: value}`` of what Runware used for each parameter ``params`` (a stored
    request) leaves out; nested ones by dotted path (``safety.checkContent``,
    ``lora[0].weight``), as the schema's errors name them."""
    out = {name: value for name, value in DEFAULTS.items() if name not in params}
    safety = params.get("safety")
    safety = safety if isinstance(safety, dict) else {}
    if "checkContent" not in safety:
        out["safety.checkContent"] = False
    if safety and "mode" not in safety:
        # §2: "when true, mode defaults to fast"; otherwise none.
        out["safety.mode"] = "fast" if safety.get("checkContent") else "none"
    loras = params.get("lora")
    for index, lora in enumerate(loras if isinstance(loras, list) else []):
        for name, value in LORA_DEFAULTS.items():
            if isinstance(lora, dict) and name not in lora:
                out[f"lora[{index}].{name}"] = value
    return out
