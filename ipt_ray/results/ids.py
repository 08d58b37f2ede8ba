"""Config ids and the params codec: how a config's params are keyed, flattened, written as text and read back.

Tune holds a trial's params as dotted keys (``method.prompt_length``) or, for a whole-section search
dimension, a section as a mapping or its JSON text; MLflow and CSV hold every value as text. These
functions turn all of those forms into one: dotted keys with typed values.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: The experiment sections a param may be a whole mapping of (a ``method`` search dimension).
SECTIONS = ("task", "backbone", "method", "train")


def config_id(params: dict[str, Any]) -> str:
    """Stable short id of a config: 8 hex chars of sha1 over its sorted JSON.

    Stable across processes and restarts (unlike ``hash``), so MLflow runs of a resumed sweep and the
    report agree on which seeds belong together.
    """
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:8]


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``); flat dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def parse_param(text: str) -> Any:
    """Undo MLflow's/CSV's stringification of a param value: int, float, bool, None, JSON list/dict, else str."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def param_str(value: Any) -> str:
    """A param value as text that :func:`parse_param` reads back (JSON for lists and dicts)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def display_str(value: Any) -> str:
    """A param value for tables: floats to 4 significant digits (``0.01014``), the rest as ``param_str``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return param_str(value)


def jsonable(value: Any) -> Any:
    """``value`` as JSON can carry it (numpy scalars to Python numbers, anything else unknown as text)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def expand_sections(params: dict[str, Any]) -> dict[str, Any]:
    """Section-valued params (``{"method": {"strategy": ...}}``, or that mapping as JSON text, as Tune and
    MLflow hold a ``method`` search dimension) become dotted keys (``method.strategy``); others pass. Only
    the section's own level is split: a field's mapping value (``method.hard_prompt: {sst2: ...}``) is kept
    whole, so it names one variant instead of becoming hyper-parameters per task."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in SECTIONS and isinstance(value, str) and value[:1] == "{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if key in SECTIONS and isinstance(value, dict):
            # one level: a field whose value is a mapping (method.hard_prompt {task: words}) stays one param
            out.update({f"{key}.{field}": field_value for field, field_value in value.items()})
        else:
            out[key] = value
    return out
