"""The search space: YAML dimensions as Tune samplers or grid axes, and choices through Optuna as scalars."""

from __future__ import annotations

import json
from typing import Any

from ipt_ray.config import ExperimentConfig, ParamSpace


def to_tune_space(space: dict[str, ParamSpace]) -> dict[str, Any]:
    """Tune samplers of the YAML's dimensions (random search and Optuna draw from them)."""
    return {key: tune_sampler(dim) for key, dim in space.items()}


def tune_sampler(dim: ParamSpace) -> Any:
    from ray import tune  # heavy, optional: only when a sweep starts

    if dim.type == "choice":
        return tune.choice([encode_choice(v) for v in dim.values or []])
    if dim.type == "int":
        step = dim.step or 1
        # qrandint's upper bound is inclusive, like the YAML's
        return tune.qrandint(int(dim.low), int(dim.high), step) if step > 1 else tune.randint(int(dim.low), int(dim.high) + 1)
    if dim.type == "uniform":
        return tune.uniform(dim.low, dim.high)
    return tune.loguniform(dim.low, dim.high)


def grid_space(space: dict[str, ParamSpace]) -> dict[str, Any]:
    """``searcher: grid``: every choice (and every int step) crossed; float ranges are refused."""
    return {key: grid_axis(key, dim) for key, dim in space.items()}


def grid_axis(key: str, dim: ParamSpace) -> Any:
    from ray import tune  # heavy, optional: only when a sweep starts

    if dim.type == "choice":
        return tune.grid_search([encode_choice(v) for v in dim.values or []])
    if dim.type == "int":
        return tune.grid_search(list(range(int(dim.low), int(dim.high) + 1, dim.step or 1)))
    raise ValueError(f"sweep.search_space.{key}: searcher 'grid' needs choice or int dimensions, not {dim.type!r}")


def param_space(cfg: ExperimentConfig) -> dict[str, Any]:
    """The Tuner's ``param_space``: grid axes for ``searcher: grid``, samplers otherwise."""
    if cfg.sweep.searcher == "grid":
        return grid_space(cfg.sweep.search_space)
    return to_tune_space(cfg.sweep.search_space)


def encode_choice(value: Any) -> Any:
    """Optuna's categorical values must be scalars: mappings and lists travel as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """The sampled overrides with :func:`encode_choice`'s JSON text turned back into mappings and lists."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value[:1] in "{[":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out
