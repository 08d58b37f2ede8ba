"""Task metrics: accuracy from indices or scores, MultiRC F1a and EM."""

from __future__ import annotations

import numpy as np
import pytest

import ipt_ray.data as T


def test_multirc_metrics_hand_example() -> None:
    groups = [0, 0, 0, 1, 1, 2]
    labels = [1, 0, 1, 0, 0, 1]
    preds = [1, 0, 0, 0, 0, 1]  # group 0 misses one option
    m = T.compute_metrics("multirc", preds, labels, groups)
    assert list(m) == ["f1a", "em", "accuracy"]
    assert m["em"] == pytest.approx(2 / 3)
    assert m["f1a"] == pytest.approx(0.8)  # P = 1, R = 2/3
    assert m["accuracy"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="needs groups"):
        T.compute_metrics("multirc", preds, labels)


def test_accuracy_and_logits() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert T.compute_metrics("cb", logits, [1, 0, 2, 2]) == {"accuracy": 0.75}
    assert T.compute_metrics(T.TASKS["sst2"], [0, 0], [1, 1]) == {"accuracy": 0.0}
    with pytest.raises(ValueError, match="do not match"):
        T.compute_metrics("cb", [0, 1], [0])
