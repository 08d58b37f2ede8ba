"""One group of seeds in training: their adapters, optimizers (a parameter group per learning rate) and
schedules, and one optimizer step over one or several (accumulated) micro-batches."""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ipt_ray.batches import PromptedBatch
from ipt_ray.config import ExperimentConfig, TrainConfig
from ipt_ray.model import Adapter, SeedGroup, build_adapter, build_context
from ipt_ray.train.inputs import Prepared
from ipt_ray.train.runtime import Runtime


#: The optimizer's parameter groups, by the adapter's top-level module: the prompt parameters (source and
#: injection) and, for fine-tuning, the unfrozen backbone copy train at ``train.lr``; the head at ``train.head_lr``.
GROUP_OF_MODULE = {"source": "prompt", "task_prompt": "prompt", "injection": "prompt", "encoder": "backbone",
                   "head": "head"}


def parameter_groups(adapter: torch.nn.Module, lr: float, head_lr: float | None = None) -> list[dict[str, Any]]:
    """The adapter's trainable parameters as AdamW groups ``{"name", "params", "lr"}``, empty groups left out.

    Groups are ordered by each one's first parameter in ``adapter.parameters()`` (source, injection, head,
    encoder); within a group parameters keep that order, so the flat order is the single-group one.
    """
    lrs = {"prompt": lr, "backbone": lr, "head": lr if head_lr is None else head_lr}
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, param in adapter.named_parameters():
        if param.requires_grad:
            groups.setdefault(GROUP_OF_MODULE.get(name.split(".", 1)[0], "prompt"), []).append(param)
    return [{"name": g, "params": params, "lr": lrs[g]} for g, params in groups.items()]


def seed_optimizer(adapter: torch.nn.Module, lr: float, weight_decay: float,
                   head_lr: float | None = None) -> torch.optim.Optimizer:
    """One seed's AdamW over its trainable parameters, one group per :func:`parameter_groups`.

    fused: one kernel over all tensors; 10x faster than the default on a 30k x 384 table (CPU).
    """
    return torch.optim.AdamW(parameter_groups(adapter, lr, head_lr), lr=lr, weight_decay=weight_decay, fused=True)


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The groups' current learning rates as metrics: ``{"lr_prompt": .., "lr_head": ..}``."""
    return {f"lr_{g.get('name', i)}": float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}


def warmup_length(train: TrainConfig, total_steps: int) -> int:
    """The warm-up in optimizer steps: ``train.warmup_steps`` (capped at ``total_steps``) when set, else
    ``train.warmup_ratio`` of ``total_steps``."""
    if train.warmup_steps is None:
        return int(train.warmup_ratio * total_steps)
    if train.warmup_steps > total_steps:
        warnings.warn(f"train.warmup_steps {train.warmup_steps} exceeds the run's {total_steps} optimizer steps: "
                      f"warming up over all {total_steps} (the learning rate never reaches its peak)", stacklevel=2)
    return min(train.warmup_steps, total_steps)


def linear_schedules(optimizers: Sequence[torch.optim.Optimizer], train: TrainConfig, total_steps: int) -> list[Any]:
    """Linear warm-up (:func:`warmup_length`) then linear decay to 0 over ``total_steps`` optimizer steps, one
    schedule per optimizer; it scales every parameter group's own learning rate."""
    from transformers import get_linear_schedule_with_warmup  # heavy: transformers loads only when training

    warmup = warmup_length(train, total_steps)
    return [get_linear_schedule_with_warmup(o, warmup, total_steps) for o in optimizers]


def backward(model: Any, batches: Sequence[PromptedBatch], batched: bool, autocast: bool,
             weight: float = 1.0) -> torch.Tensor:
    """Forward and backward of one micro-batch per seed; gradients accumulate into ``.grad``.

    The summed loss is scaled by ``weight`` (the micro-batch's share of its optimizer step's examples).
    Returns the seeds' unscaled mean losses ``[S]``, detached and on the device (no host sync).
    """
    device_type = batches[0].input_ids.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(batches, batched=batched)
    stacked = torch.stack([F.cross_entropy(lg.float(), b.labels) for lg, b in zip(logits, batches)])
    (stacked.sum() * weight).backward()
    return stacked.detach()


def optimizer_step(adapters: Sequence[Any], optimizers: Sequence[Any], schedulers: Sequence[Any],
                   max_grad_norm: float) -> None:
    """Per seed: clip its accumulated gradient, step its optimizer and schedule, clear its gradients."""
    for adapter, opt, sch in zip(adapters, optimizers, schedulers):
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), max_grad_norm)
        opt.step()
        sch.step()
        opt.zero_grad(set_to_none=True)


def train_step(model: Any, adapters: Sequence[Any], optimizers: Sequence[Any], schedulers: Sequence[Any],
               batches: Sequence[PromptedBatch], batched: bool, autocast: bool, max_grad_norm: float) -> torch.Tensor:
    """One optimizer step of every seed on one batch each: forward, the summed loss's backward, per-seed clip
    and step.

    ``model`` is the SeedGroup (or its DDP wrapper). Returns the seeds' losses ``[S]``, detached and on
    the device (no host sync). The seeds' parameters are disjoint, so the summed loss gives each seed
    the gradient of its own run.
    """
    return accumulated_step(model, adapters, optimizers, schedulers, [batches], batched, autocast, max_grad_norm)


def accumulated_step(model: Any, adapters: Sequence[Any], optimizers: Sequence[Any], schedulers: Sequence[Any],
                     micro_batches: Sequence[Sequence[PromptedBatch]], batched: bool, autocast: bool,
                     max_grad_norm: float) -> torch.Tensor:
    """One optimizer step of every seed over several micro-batches (one per seed each): gradient accumulation.

    Each micro-batch's mean loss is weighted by its share of the step's examples (``1/N`` for N equal
    micro-batches), so the step's gradient is that of one batch of all of them, the epoch's last, smaller
    micro-batch included. Under DDP only the last micro-batch all-reduces (``no_sync`` before it). Returns
    the seeds' summed unscaled micro-batch losses ``[S]``.
    """
    total = sum(seed_batches[0].size for seed_batches in micro_batches)
    loss_sums = None
    for i, seed_batches in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            losses = backward(model, seed_batches, batched, autocast, seed_batches[0].size / total)
        loss_sums = losses if loss_sums is None else loss_sums + losses
    optimizer_step(adapters, optimizers, schedulers, max_grad_norm)
    return loss_sums


@dataclass
class SeedTraining:
    """The seeds trained together: one adapter, optimizer and schedule each, over the shared backbone."""

    seeds: list[int]
    ctx: Any  # the model's BuildContext, saved with each adapter
    adapters: list[Adapter]
    group: SeedGroup  # on the runtime's device
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]
    model: Any  # the group, or its DDP wrapper when several workers train it
    steps_per_epoch: int  # optimizer steps: ceil(micro-batches / train.grad_accumulation)
    micro_batches_per_epoch: int  # batches of train.batch_size per worker


def start_seed_training(cfg: ExperimentConfig, inputs: Prepared, seeds: list[int], runtime: Runtime) -> SeedTraining:
    """Fresh adapters for ``seeds`` (each initialised from its seed only), their optimizers and schedules."""
    backbone, spec = inputs.backbone, inputs.spec
    ctx = build_context(cfg.method, backbone, spec.num_labels, spec.label_words, inputs.seen)
    adapters = [build_adapter(ctx, backbone, s) for s in seeds]
    group = SeedGroup(backbone, adapters, seeds).to(runtime.device)
    train = cfg.train
    optimizers = [seed_optimizer(a, train.lr, train.weight_decay, train.head_lr) for a in adapters]
    micro_batches_per_epoch = math.ceil(len(inputs.rows["train"]) / train.batch_size / runtime.world_size)
    steps_per_epoch = math.ceil(micro_batches_per_epoch / train.grad_accumulation)
    schedulers = linear_schedules(optimizers, train, steps_per_epoch * train.epochs)
    return SeedTraining(seeds, ctx, adapters, group, optimizers, schedulers, distributed(group, runtime),
                        steps_per_epoch, micro_batches_per_epoch)


def distributed(group: SeedGroup, runtime: Runtime) -> Any:
    """The group itself on one worker; wrapped in DDP (gradients averaged over workers) on several."""
    if runtime.world_size <= 1:
        return group
    return DistributedDataParallel(group, device_ids=[runtime.device.index] if runtime.on_gpu else None)
