"""Inference on new text: saved adapters over one frozen backbone -> per-class probabilities.

What ``ipt-ray predict``, the MLflow pyfunc model and the Ray Serve deployment share. Adapters that can
share a backbone pass (same injection and prompt length) go through it together: the seed group's batched
forward concatenates their sub-batches (:meth:`ipt_ray.model.SeedGroup.forward`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ipt_ray.backbone import ADAPTER, Backbone, inspect_artefact
from ipt_ray.batches import tokenize_records
from ipt_ray.config import ExperimentConfig, strategy_spec
from ipt_ray.data import task_spec
from ipt_ray.model import Adapter, SeedGroup, load_adapter
from ipt_ray.train.inputs import backbone_collator

Record = Mapping[str, str]  # one input: its text field -> text


@dataclass
class LoadedAdapter:
    """One saved adapter, rebuilt onto the shared backbone."""

    name: str
    config: ExperimentConfig
    adapter: Adapter
    label_names: list[str]
    spec: Any  # the task's TaskSpec: its text fields, template and labels as trained
    seed: int

    @property
    def text_fields(self) -> tuple[str, ...]:
        return tuple(self.spec.text_fields)

    @property
    def pass_key(self) -> tuple[Any, ...]:
        """Adapters with equal keys can share one backbone pass (their prompt states concatenate)."""
        method = self.config.method
        spec = strategy_spec(method.strategy)
        if self.adapter.encoder is not None:
            return ("own-encoder", self.name)
        return (method.injection, method.prompt_length) if spec.uses_prompt else ("none", 0)


def load_adapters(folders: Mapping[str, str | Path], backbone: Backbone | None = None) -> tuple[Backbone, dict[str, LoadedAdapter]]:
    """Every adapter of ``folders`` (name -> folder) onto one backbone: the first adapter's, loaded once.

    An adapter trained on another backbone is refused (:func:`ipt_ray.backbone.check_identity`).
    """
    saved = {name: inspect_artefact(folder, ADAPTER).config for name, folder in folders.items()}
    # a verbalizer head needs the backbone's MLM head: load the backbone with the first adapter that has one
    order = sorted(saved, key=lambda name: saved[name]["config"].get("method", {}).get("head") != "verbalizer")
    loaded: dict[str, LoadedAdapter] = {}
    for name in order:
        config, adapter, backbone, labels = load_adapter(folders[name], backbone)
        loaded[name] = LoadedAdapter(name, config, adapter, labels, task_spec(config.task, labels),
                                     int(saved[name]["seed"]))
    if backbone is None:
        raise ValueError("no adapters to load")
    return backbone, {name: loaded[name] for name in folders}


def encode_records(loaded: LoadedAdapter, backbone: Backbone, records: Sequence[Record]) -> list[dict[str, Any]]:
    """Tokenised rows of ``records`` for ``loaded``'s task (its template for a verbalizer head)."""
    fields = loaded.text_fields
    missing = sorted({f for r in records for f in fields if f not in r})
    if missing:
        raise ValueError(f"adapter {loaded.name!r} reads text fields {list(fields)}; missing {missing}")
    if not records:
        return []
    verbalizer = loaded.config.method.head == "verbalizer"
    # tokenised as encode() does for training, without a datasets.map (its fingerprinting costs ~10 ms a call)
    columns = tokenize_records([{f: str(r[f]) for f in fields} for r in records], loaded.spec, backbone.tokenizer,
                               loaded.config.task.max_length, verbalizer)
    rows = [{**{k: v[i] for k, v in columns.items()}, "label": 0} for i in range(len(records))]  # label: unused
    mask_id = backbone.tokenizer.mask_token_id
    if verbalizer and any(mask_id not in row["input_ids"] for row in rows):
        raise ValueError("an input lost its mask token to truncation; shorten it or raise task.max_length")
    return rows


@torch.no_grad()
def probabilities(backbone: Backbone, requests: Sequence[tuple[LoadedAdapter, list[dict[str, Any]]]]) -> list[np.ndarray]:
    """Softmax probabilities ``[N_i, C_i]`` of each (adapter, encoded rows) request, in request order.

    Requests whose adapters share a :attr:`LoadedAdapter.pass_key` go through the backbone in one pass.
    """
    collate = backbone_collator(backbone)
    out: list[np.ndarray | None] = [None] * len(requests)
    passes: dict[tuple[Any, ...], list[int]] = {}
    for i, (loaded, rows) in enumerate(requests):
        if rows:
            passes.setdefault(loaded.pass_key, []).append(i)
        else:
            out[i] = np.zeros((0, len(loaded.label_names)), dtype=np.float32)
    device = next(iter(backbone.encoder.parameters())).device
    for members in passes.values():
        adapters = [requests[i][0].adapter for i in members]
        group = SeedGroup(backbone, adapters, list(range(len(members)))).eval()
        batches = [collate(requests[i][1]).to(device) for i in members]
        for i, logits in zip(members, group(batches, batched=True)):
            out[i] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return [p for p in out if p is not None]


def ensemble_probabilities(backbone: Backbone, adapters: Sequence[LoadedAdapter], records: Sequence[Record],
                           batch_size: int = 64, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Each adapter's probabilities on every record, ``[S, N, C]``, ``batch_size`` records at a time.

    ``progress(n)`` is called with the number of records done after each batch.
    """
    if not adapters:
        raise ValueError("no adapters to predict with")
    parts: list[np.ndarray] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        requests = [(a, encode_records(a, backbone, chunk)) for a in adapters]
        parts.append(np.stack(probabilities(backbone, requests)))
        if progress is not None:
            progress(len(chunk))
    if not parts:
        return np.zeros((len(adapters), 0, len(adapters[0].label_names)), dtype=np.float32)
    return np.concatenate(parts, axis=1)
