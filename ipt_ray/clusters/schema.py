"""JSON-schema problems of a cluster file, each worded with the key path it is about."""

from __future__ import annotations

import re
from typing import Any

import jsonschema


def schema_problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every schema violation, key path first; an unknown key is named in the path, with the allowed ones."""
    validator = jsonschema.Draft7Validator(schema)
    problems: list[str] = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]):
        where = key_path(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            patterns = list(err.schema.get("patternProperties", {}))
            for key in sorted(err.instance):
                if key not in allowed and not any(re.search(p, key) for p in patterns):
                    prefix = f"{where}.{key}" if where != "<root>" else str(key)
                    problems.append(f"{prefix}: unknown key (allowed: {', '.join(allowed)})")
        else:
            problems.append(f"{where}: {err.message}")
    return problems


def key_path(parts: Any) -> str:
    """``spec.rayClusterSpec.workerGroupSpecs[0]`` from the parts of a path; ``<root>`` for none."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"
