"""Saved seed adapters over a tiny backbone, for the tests of inference, MLflow models, predict and serve."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ipt_ray.batches import Collator
from ipt_ray.config import validate_config
from ipt_ray.data import get_task
from ipt_ray import results as report
from ipt_ray.model import build_adapter, build_context, save_adapter
from ipt_ray.results import config_id
from ipt_ray.tracking import SweepTracker
from ipt_ray.tracking.callback import MlflowTrackingCallback

PARAMS = {"method.prompt_length": 3}
CB_LABELS = ["entailment", "contradiction", "neutral"]
TEXTS = ["the movie was great and wonderful", "a terrible film", "yes no maybe"]


def text_batch(backbone, texts: Sequence[str]):
    """A padded batch of single texts, as the classifier head sees it."""
    tok = backbone.tokenizer
    enc = tok(list(texts), return_special_tokens_mask=True)
    rows = [{k: enc[k][i] for k in enc} | {"label": 0} for i in range(len(texts))]
    return Collator(tok.pad_token_id, backbone.uses_token_types)(rows)


def save_perturbed_adapter(backbone, backbone_path: Path, folder: Path, method: dict, **save_kwargs):
    """A CB adapter of ``method`` over the ids of :data:`TEXTS` (compact tables), its weights moved off the
    seed's initial values (a reload must read them), saved to ``folder``: ``(config, adapter, seen ids)``."""
    config = validate_config({"task": {"name": "cb", "max_length": 64}, "backbone": {"name": str(backbone_path)},
                              "method": method})
    seen = torch.unique(text_batch(backbone, TEXTS).input_ids.flatten())
    ctx = build_context(config.method, backbone, len(CB_LABELS), seen_token_ids=seen)
    adapter = build_adapter(ctx, backbone, seed=0).eval()
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(torch.randn_like(p))
    save_adapter(folder, adapter, config, backbone, ctx, 0, CB_LABELS, **save_kwargs)
    return config, adapter, seen


def make_seed_adapters(backbone, backbone_path: Path, folder: Path, task: str = "rte", seeds: Sequence[int] = (0, 1),
                       method: dict | None = None) -> dict[int, Path]:
    """seed -> a saved adapter of ``task`` (random non-initial weights: a reload must read them)."""
    config = validate_config({"task": {"name": task, "max_length": 64}, "backbone": {"name": str(backbone_path)},
                              "method": method or {"strategy": "prompt_tuning", "prompt_length": 3},
                              "train": {"seeds": seeds}})
    labels = list(get_task(task).label_names)
    out = {}
    for seed in seeds:
        ctx = build_context(config.method, backbone, len(labels), get_task(task).label_words, seed=seed)
        adapter = build_adapter(ctx, backbone, seed=seed).eval()
        with torch.no_grad():
            generator = torch.Generator().manual_seed(100 + seed)
            for p in adapter.parameters():
                p.add_(torch.randn(p.shape, generator=generator))
        save_adapter(folder / f"seed_{seed}", adapter, config, backbone, ctx, seed, labels)
        out[seed] = folder / f"seed_{seed}"
    return out


def run_sweep_events(uri: str, experiment: str, adapters_dir: Path, seeds: Sequence[int] = (0, 1),
                     register_as: str | None = "ipt-rte", journal: Path | None = None) -> SweepTracker:
    """A sweep of one trial (t0, params ``PARAMS``) through the callback, its seeds' adapters saved under
    ``adapters_dir/t0``; then the aggregate and the best model (registered as ``register_as``)."""
    tracker = SweepTracker(uri, experiment, "sw-1", "demo", journal=journal)
    tracker.start_parent("task:\n  name: rte\n", {"method.prompt_length": {"choice": [3]}}, "abc", {})
    callback = MlflowTrackingCallback(tracker, list(seeds), "accuracy", max_epochs=1, adapters_dir=adapters_dir)
    result = {"epoch": 1, **{f"dev_accuracy/seed_{s}": 0.5 + 0.1 * s for s in seeds}}

    class Trial:
        trial_id, config, last_result = "t0", PARAMS, result

    callback.on_trial_result(1, [Trial], Trial, result)
    callback.on_trial_complete(2, [Trial], Trial)
    summary = report.aggregate([report.SeedResult(config_id(PARAMS), "t0", s, 0.5 + 0.1 * s, PARAMS, "completed")
                                for s in seeds], "accuracy")
    tracker.log_aggregate(summary, {})
    tracker.log_best_model(summary, register_as)
    return tracker
