"""What the loop trains on: the prepared backbone, task and rows, and the per-seed, per-epoch data order."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ipt_ray.backbone import Backbone, load_backbone
from ipt_ray.batches import Collator, encode, loader, seen_token_ids
from ipt_ray.config import ExperimentConfig
from ipt_ray.data import load_splits
from ipt_ray.train.runtime import Runtime


class Prepared(NamedTuple):
    backbone: Backbone
    spec: Any
    rows: dict[str, list[dict[str, Any]]]  # tokenised rows per split, read-only
    seen: torch.Tensor  # seen_token_ids of the train split


_PREPARED: dict[str, Prepared] = {}  # this process's cache: the latest task's inputs only


def prepared_inputs(cfg: ExperimentConfig) -> Prepared:
    """The frozen backbone, task spec, tokenised rows and seen token ids, cached per process.

    Tune reuses trial actors (``reuse_actors``) and Ray Train reuses nothing, so a sweep of many
    configs over one task loads the backbone, tokenises and lists the rows once per process. Only
    inputs that determine them form the key; the backbone is frozen and nothing writes to the rows,
    so sharing them between trials is safe.
    """
    verbalizer = cfg.method.head == "verbalizer"
    key = json.dumps([cfg.task.model_dump(mode="json"), cfg.backbone.model_dump(mode="json"), verbalizer], sort_keys=True)
    if key not in _PREPARED:
        spec, splits = load_splits(cfg.task)
        backbone = load_backbone(cfg.backbone, with_mlm_head=verbalizer)
        encoded = {name: encode(ds, spec, backbone.tokenizer, cfg.task.max_length, verbalizer) for name, ds in splits.items()}
        _PREPARED.clear()  # one task at a time: bounded memory
        _PREPARED[key] = Prepared(backbone, spec, {name: ds.to_list() for name, ds in encoded.items()},
                                  seen_token_ids(encoded["train"]))
    return _PREPARED[key]


def backbone_collator(backbone: Backbone) -> Collator:
    """Pads rows with the backbone's pad id; token types only for backbones that read them."""
    return Collator(int(backbone.tokenizer.pad_token_id or 0), backbone.uses_token_types)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Data order depends on (seed, epoch) only: a resumed run replays the same order.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def train_loader(rows: list[dict[str, Any]], batch_size: int, collator: Collator, seed: int, epoch: int,
                 runtime: Runtime) -> DataLoader:
    """One seed's shuffled batches for ``epoch``; with several workers, this worker's shard of them."""
    if runtime.world_size > 1:
        sampler = DistributedSampler(rows, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True,
                                     seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
        return loader(rows, batch_size, collator, sampler=sampler)
    return loader(rows, batch_size, collator, shuffle=True, generator=epoch_generator(seed, epoch))
