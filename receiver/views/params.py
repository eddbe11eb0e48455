"""Task parameters as people read them: a human label for every Runware name (the form and
the task page share them), the task page's groups, and which fields are the archive's
own plumbing rather than the user's choice.

The raw API name stays beside each label (``CFGScale`` under "Guidance (CFG scale)"):
it is what the JSON API, the CLI and Runware's docs call it.
"""

import json
from dataclasses import dataclass

from protocol.defaults import MODELS_OWN, defaults_for

LABELS = {
    "positivePrompt": "Prompt", "negativePrompt": "Negative prompt",
    "width": "Width", "height": "Height", "numberResults": "Images",
    "outputType": "Output type", "outputFormat": "Output format",
    "outputQuality": "Output quality", "ttl": "URL lifetime (seconds)",
    "model": "Model", "seed": "Seed", "steps": "Steps", "CFGScale": "Guidance (CFG scale)",
    "scheduler": "Scheduler", "acceleration": "Acceleration", "lora": "LoRA",
    "safety.checkContent": "Content check", "safety.mode": "Content check mode",
    "deliveryMethod": "Delivery method", "label": "Label",
    "acceleratorOptions.teaCache": "TeaCache",
    "acceleratorOptions.teaCacheDistance": "TeaCache distance",
    "acceleratorOptions.fbCache": "First-block cache",
    "acceleratorOptions.fbCacheThreshold": "First-block cache threshold",
    "acceleratorOptions.dbCache": "DBCache",
    "acceleratorOptions.dbCacheThreshold": "DBCache threshold",
    "acceleratorOptions.dbCacheSkipInterval": "DBCache skip interval",
    "acceleratorOptions.cacheStartStep": "Cache from step",
    "acceleratorOptions.cacheEndStep": "Cache until step",
    "acceleratorOptions.cacheStartStepPercentage": "Cache from (% of steps)",
    "acceleratorOptions.cacheEndStepPercentage": "Cache until (% of steps)",
    "acceleratorOptions.cacheMaxConsecutiveSteps": "Most cached steps in a row",
    "lora.model": "LoRA model (AIR)", "lora.weight": "LoRA weight",
    "lora.transformer": "LoRA transformer",
}
# Said in words where a parameter left out has no single value.
UNSET = {"seed": "random: each image's own is shown with it", **MODELS_OWN}
# The archive's own plumbing: shown only in the request as sent, never in the table.
# deliveryMethod is the archive's when it is "async" (it sends that unless asked for sync).
INTERNAL = ("taskType", "taskUUID", "includeCost", "webhookURL", "uploadEndpoint")
GROUPS = (
    ("Prompt", ("positivePrompt", "negativePrompt")),
    ("Size & output", ("width", "height", "numberResults", "outputFormat", "outputQuality",
                       "outputType", "ttl")),
    ("Sampling", ("seed", "steps", "CFGScale", "scheduler", "acceleration", "model", "lora")),
    ("Accelerator options", tuple(n for n in LABELS if n.startswith("acceleratorOptions."))),
    ("Safety", ("safety.checkContent", "safety.mode")),
    ("Delivery", ("deliveryMethod",)),
)


def label(name):
    """The human label of a parameter path (``lora[2].weight`` reads as ``lora.weight``)."""
    base = name.split("[")[0] + ("." + name.rsplit(".", 1)[1] if "]." in name else "")
    return LABELS.get(base, name)


@dataclass
class Row:
    """One line of the parameter table: its label, its API name, the value as text, and
    whether Runware's default stood in for a value the task did not send."""

    label: str
    name: str
    value: str
    default: bool = False
    note: str = ""


def shown(value):
    """A parameter value as text: booleans as on/off, lists and objects compactly."""
    if value is True or value is False:
        return "on" if value else "off"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def flatten(params):
    """``{dotted name: value}`` of a request, nested objects by path; LoRAs stay whole."""
    out = {}
    for name, value in params.items():
        if isinstance(value, dict) and name in ("safety", "acceleratorOptions"):
            out.update((f"{name}.{key}", inner) for key, inner in value.items())
        else:
            out[name] = value
    return out


def lora_rows(loras, defaults):
    """One row per LoRA: its model, weight and transformer (defaults said as such)."""
    rows = []
    for index, lora in enumerate(loras if isinstance(loras, list) else []):
        lora = lora if isinstance(lora, dict) else {}
        parts = [f"weight {lora.get('weight', defaults.get(f'lora[{index}].weight'))}",
                 f"transformer {lora.get('transformer', defaults.get(f'lora[{index}].transformer'))}"]
        left_out = [n for n in ("weight", "transformer") if n not in lora]
        note = f"{' and '.join(left_out)}: default" if left_out else ""
        rows.append(Row(f"LoRA {index + 1}", f"lora[{index}]",
                        f"{lora.get('model', '?')} · {', '.join(parts)}", note=note))
    return rows


def grouped_rows(params):
    """``[(group, [Row])]`` of a stored request for the task page: the user's parameters
    in :data:`GROUPS`, with Runware's defaults for what was left out, internal fields
    left to the request JSON, anything unforeseen under "Other" by its raw name."""
    defaults = defaults_for(params)
    flat = flatten({k: v for k, v in params.items() if k not in INTERNAL})
    if flat.get("deliveryMethod") == "async":
        del flat["deliveryMethod"]
    groups, placed = [], set()
    for group, names in GROUPS:
        rows = []
        for name in names:
            placed.add(name)
            if name == "lora":
                rows += lora_rows(flat.get("lora"), defaults)
            elif name in flat:
                rows.append(Row(label(name), name, shown(flat[name])))
            elif name in defaults:
                rows.append(Row(label(name), name, shown(defaults[name]), default=True))
            elif name in UNSET:
                rows.append(Row(label(name), name, UNSET[name], default=True))
        if rows:
            groups.append((group, rows))
    other = [Row(name, name, shown(value)) for name, value in sorted(flat.items())
             if name not in placed]
    return groups + ([("Other", other)] if other else [])
