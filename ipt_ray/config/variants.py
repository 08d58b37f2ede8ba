"""The configs a sweep's search space can produce, each validated (by `ipt-ray validate` and by preflight)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from ipt_ray.config.base import ConfigError
from ipt_ray.config.sections import ExperimentConfig, ParamSpace

#: Above this many search-space combinations only single values are checked (each against the base).
MAX_COMBINATIONS = 256


def sweep_variants(cfg: ExperimentConfig) -> list[tuple[str, ExperimentConfig]]:
    """``(label, config)`` for the base and every config the search space can produce, each validated.

    Choice values and the bounds of ranges are tried one at a time first (so a bad value is named
    alone), then crossed. ``label`` says where a config comes from (empty for the base).
    """
    dims: list[tuple[str, list[tuple[str, Any]]]] = []
    for key, dim in cfg.sweep.search_space.items():
        dims.append((key, dimension_points(dim)))
    out: list[tuple[str, ExperimentConfig]] = [("", cfg)]
    seen = {config_key(cfg)}

    def add(label: str, overrides: dict[str, Any]) -> None:
        try:
            variant = cfg.with_overrides(overrides)
        except ConfigError as err:
            lines = str(err).splitlines()[1:] or [str(err)]
            raise ConfigError(f"{label} gives an invalid config:\n" + "\n".join(lines)) from None
        k = config_key(variant)
        if k not in seen:
            seen.add(k)
            out.append((label, variant))

    for key, points in dims:
        for what, value in points:
            add(f"sweep.search_space.{key}: {what} {value!r}", {key: value})
    sizes = [len(points) for _, points in dims]
    total = 1
    for n in sizes:
        total *= n
    if len(dims) > 1 and total <= MAX_COMBINATIONS:
        for combo in itertools.product(*(points for _, points in dims)):
            overrides = {key: value for (key, _), (_, value) in zip(dims, combo)}
            shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
            add(f"sweep.search_space: the combination {shown}", overrides)
    return out


def dimension_points(dim: ParamSpace) -> list[tuple[str, Any]]:
    if dim.type == "choice":
        return [("choice", v) for v in dim.values or []]
    if dim.type == "int":
        low, high, step = int(dim.low), int(dim.high), dim.step or 1
        top = low + (high - low) // step * step  # the largest value qrandint can give
        return [("low", low), ("high", top)] if top != low else [("low", low)]
    return [("low", float(dim.low)), ("high", float(dim.high))]


def config_key(model: Any) -> str:
    """A config (or section) as canonical JSON: equal keys, equal configs."""
    return json.dumps(model.model_dump(mode="json"), sort_keys=True)
