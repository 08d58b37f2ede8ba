"""Scoring: dev- (and test-) set metrics of every seed, epoch records merged over seed groups, mean/std summaries."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ipt_ray.backbone import Backbone
from ipt_ray.batches import loader
from ipt_ray.data import compute_metrics
from ipt_ray.model import SeedGroup
from ipt_ray.train.inputs import backbone_collator


def summarise(per_seed: dict[int, dict[str, float]], seeds: Sequence[int]) -> dict[str, float]:
    """Per-seed values plus mean and sample std over seeds for every metric."""
    out: dict[str, float] = {}
    names = sorted({k for m in per_seed.values() for k in m})
    for name in names:
        values = np.array([per_seed[s][name] for s in seeds], dtype=float)
        out[f"{name}_mean"] = float(values.mean())
        out[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        for s in seeds:
            out[f"{name}/seed_{s}"] = float(per_seed[s][name])
    return out


@torch.no_grad()
def evaluate(group: SeedGroup, batches: Any, spec: Any, device: torch.device, batched: bool, autocast: bool) -> list[dict[str, float]]:
    """The task's metrics and mean cross-entropy ``loss`` of each seed of ``group``, in its seed order.

    Every batch goes to every seed; each seed's logits are ``[B, num_labels]``.
    """
    group.eval()
    n = len(group.adapters)
    preds: list[list[np.ndarray]] = [[] for _ in range(n)]
    labels, groups, losses = [], [], [0.0] * n
    for batch in batches:
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = group([batch] * n, batched=batched)
        for i, lg in enumerate(logits):
            preds[i].append(lg.float().argmax(-1).cpu().numpy())
            losses[i] += float(F.cross_entropy(lg.float(), batch.labels, reduction="sum"))
        labels.append(batch.labels.cpu().numpy())
        if batch.group is not None:
            groups.append(batch.group.cpu().numpy())
    y = np.concatenate(labels)
    g = np.concatenate(groups) if groups else None
    results = []
    for i in range(n):
        metrics = compute_metrics(spec, np.concatenate(preds[i]), y, g)
        metrics["loss"] = losses[i] / max(1, len(y))
        results.append(metrics)
    return results


def epoch_metrics(seeds: Sequence[int], evals: Sequence[dict[str, float]], loss_sums: np.ndarray,
                  steps: int, test_evals: Sequence[dict[str, float]] | None = None,
                  lrs: Sequence[dict[str, float]] | None = None) -> dict[int, dict[str, float]]:
    """seed -> its ``dev_*`` metrics, its ``test_*`` ones when the splits have a test set (``test_evals``,
    reported only: selection reads ``dev_*``), mean ``train_loss`` over the epoch's ``steps`` micro-batches
    (``loss_sums`` ``[S]``) and its learning rates at the epoch's last step (``lrs``: ``lr_prompt``,
    ``lr_head``, ``lr_backbone``, one per parameter group)."""
    tests = test_evals if test_evals is not None else [{} for _ in seeds]
    rates = lrs if lrs else [{} for _ in seeds]
    return {
        s: {**{f"dev_{k}": v for k, v in ev.items()}, **{f"test_{k}": v for k, v in test.items()},
            "train_loss": float(loss_sums[i] / max(1, steps)), **rate}
        for i, (s, ev, test, rate) in enumerate(zip(seeds, evals, tests, rates))
    }


def merge_epoch(history: list[dict[str, Any]], epoch: int, per_seed: dict[int, dict[str, float]], seconds: float) -> dict[str, Any]:
    """Add one seed group's results of ``epoch`` (0-based) to its record, which the groups share."""
    while len(history) <= epoch:
        history.append({"epoch": len(history) + 1, "per_seed": {}, "epoch_time_s": 0.0})
    record = history[epoch]
    record["per_seed"].update(per_seed)
    record["epoch_time_s"] += seconds
    return record


def epoch_report(record: dict[str, Any], seeds: Sequence[int], params: dict[str, float]) -> dict[str, Any]:
    """What one epoch reports: epoch, time, the parameter report and :func:`summarise` of its seeds."""
    out: dict[str, Any] = {"epoch": record["epoch"], "epoch_time_s": record["epoch_time_s"], **params}
    out.update(summarise(record["per_seed"], seeds))
    return out


def predict(adapter: Any, backbone: Backbone, encoded: Any, batch_size: int = 64) -> np.ndarray:
    """Class predictions ``[N]`` of one adapter on an encoded dataset (for reload checks and inference)."""
    group = SeedGroup(backbone, [adapter], [0]).eval()
    out = []
    with torch.no_grad():
        for batch in loader(encoded, batch_size, backbone_collator(backbone)):
            out.append(group([batch])[0].argmax(-1).numpy())
    return np.concatenate(out)
