"""Task metrics: accuracy, MultiRC's F1a (positive-class F1 over answer options) and EM (per question)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ipt_ray.data.specs import TaskSpec, as_spec

__all__ = ["compute_metrics"]


def _class_arrays(
    predictions: Iterable[Any] | np.ndarray, labels: Iterable[Any] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(preds [n], gold [n])`` as int64; scores of shape ``[n, num_labels]`` are arg-maxed."""
    preds = np.asarray(predictions)
    if preds.ndim == 2:
        preds = preds.argmax(axis=-1)
    gold = np.asarray(labels)
    if preds.ndim != 1 or gold.ndim != 1 or len(preds) != len(gold):
        raise ValueError(f"predictions {preds.shape} and labels {gold.shape} do not match")
    if len(gold) == 0:
        raise ValueError("no examples to score")
    return preds.astype(np.int64), gold.astype(np.int64)


def _exact_match(spec: TaskSpec, correct: np.ndarray, groups: Iterable[Any] | np.ndarray | None) -> float:
    """Fraction of groups (questions) whose every row (answer option) is right; ``correct [n]``."""
    if groups is None:
        raise ValueError(f"{spec.name}: metric 'em' needs groups")
    g = np.asarray(groups)
    if g.shape != correct.shape:
        raise ValueError(f"groups {g.shape} and labels {correct.shape} do not match")
    _, inverse = np.unique(g, return_inverse=True)
    wrong = np.bincount(inverse, weights=~correct)
    return float(np.mean(wrong == 0))


def compute_metrics(
    spec: str | TaskSpec,
    predictions: Iterable[Any] | np.ndarray,
    labels: Iterable[Any] | np.ndarray,
    groups: Iterable[Any] | np.ndarray | None = None,
) -> dict[str, float]:
    """The task's metrics, in ``spec.metrics`` order.

    ``predictions`` are class indices ``[n]``, or scores of shape ``[n, num_labels]``
    (arg-maxed). ``f1a`` is the F1 of the positive ("True") class over all
    answer options; ``em`` the fraction of ``groups [n]`` whose every option is right.
    """
    from sklearn.metrics import accuracy_score, f1_score  # heavy: scikit-learn loads only when scoring

    spec = as_spec(spec)
    preds, gold = _class_arrays(predictions, labels)
    out: dict[str, float] = {}
    for metric in spec.metrics:
        if metric == "accuracy":
            out[metric] = float(accuracy_score(gold, preds))
        elif metric == "f1a":
            pos = spec.label_names.index("True") if "True" in spec.label_names else 1
            out[metric] = float(f1_score(gold, preds, pos_label=pos, average="binary", zero_division=0.0))
        elif metric == "em":
            out[metric] = _exact_match(spec, preds == gold, groups)
    return out
