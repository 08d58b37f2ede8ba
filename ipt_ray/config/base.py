"""What every config section shares: the strict base, the error type and its formatting, dotted keys."""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from ipt_ray.config.method import MethodConfig, method_fields

TaskName = Literal["boolq", "cb", "rte", "multirc", "sst2", "imdb", "ag_news"]
#: The custom resource a `num_workers >= 1` trial reserves instead of CPUs (declared by every cluster file).
TRIAL_SLOT = "trial_slot"


class ConfigError(ValueError):
    """A configuration problem, phrased for the user (field path, value, allowed values)."""


class StrictSection(BaseModel):
    """A section whose unknown keys and wrong types fail validation."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def section_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a section accepts (the method section's include every registered strategy's own)."""
    return method_fields() if issubclass(model, MethodConfig) else tuple(model.model_fields)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})  # an unknown section is reported by validation, with the allowed ones
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part!r} is a value, not a section")
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        node[parts[-1]] = {**node[parts[-1]], **value}  # a partial section overrides only its own fields
    else:
        node[parts[-1]] = value


def format_error(err: ValidationError, source: str, root: type[BaseModel]) -> str:
    """Every error of ``err`` on one line: dotted field path, message, the value given or the allowed keys."""
    lines = [f"{source}: {err.error_count()} configuration error(s)"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            section = _model_at(root, e["loc"][:-1])
            allowed = ", ".join(section_fields(section)) if section else "?"
            msg = f"unknown key (allowed: {allowed})"
        elif e["type"] == "literal_error":
            msg = f"{msg}; got {e.get('input')!r}"
        elif "input" in e and not isinstance(e["input"], dict):
            msg = f"{msg}; got {e['input']!r}"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
        model = next((a for a in options if isinstance(a, type) and issubclass(a, BaseModel)), None)  # X | None: X
    return model
