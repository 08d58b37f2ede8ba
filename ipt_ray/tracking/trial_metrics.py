"""What a trial's Tune result carries into its seeds' MLflow runs.

A result is flat: per-seed keys ``name/seed_<s>`` (``dev_accuracy/seed_0``; ``test_accuracy/seed_0``
where the protocol has a test split), the epoch, metrics all seeds share (:data:`SHARED_METRICS`) and
whatever Tune adds. Each seed's run gets its own keys (as ``name``: ``dev_accuracy``, ``test_accuracy``,
so the split is in every metric's name) and the shared ones.
"""

from __future__ import annotations

import re
from typing import Any

#: Result keys shared by all seeds of a trial that every child run also gets.
SHARED_METRICS = ("epoch_time_s", "trainable_params", "trainable_pct", "resumed_from_epoch", "world_size")

_SEED_KEY = re.compile(r"^(?P<name>.+)/seed_(?P<seed>-?\d+)$")


def number(value: Any) -> float | None:
    """A metric value as float (ints, floats, numpy scalars, 0-d tensors); None for anything else."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def per_seed_metrics(result: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Seed -> metric name -> value, from the result's numeric ``name/seed_<s>`` keys."""
    out: dict[int, dict[str, float]] = {}
    for key, value in result.items():
        match = _SEED_KEY.match(str(key))
        value = number(value) if match else None
        if match and value is not None:
            out.setdefault(int(match["seed"]), {})[match["name"]] = value
    return out


def shared_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The result's numeric :data:`SHARED_METRICS`."""
    return {k: n for k in SHARED_METRICS if k in result and (n := number(result[k])) is not None}


def slim_result(result: dict[str, Any]) -> dict[str, Any]:
    """What :meth:`SweepTracker.log_result` reads from a Tune result: the epoch, per-seed and shared metrics."""
    keep: dict[str, Any] = {}
    for key, value in result.items():
        if key in ("epoch", "training_iteration") or key in SHARED_METRICS or _SEED_KEY.match(str(key)):
            value = number(value)
            if value is not None:
                keep[key] = value
    return keep
