"""The training loop: one config, several seeds, one frozen backbone.

``train_loop_per_worker(loop_config)`` is what Ray Train runs on each worker; the same function runs
in-process (``runtime: local``) and inside a Tune trial (``runtime: tune``). ``loop_config`` is a
plain dict so that it crosses process boundaries::

    {"experiment": ExperimentConfig dict, "seeds": [0, 1], "runtime": "local" | "tune" | "train",
     "resume_from": checkpoint folder or None, "run_dir": where adapters go,
     "metric": the selection metric (default "accuracy"), "report_fn": a callable (local runs only),
     "threads_fn": a callable run between steps that may change torch's threads (in-process runs only)}

Every epoch scores the dev split (``dev_<metric>``: what epochs, Tune, Optuna and schedulers select on)
and, where the protocol has one, the test split (``test_<metric>``: reported only).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ipt_ray.batches import Collator, loader
from ipt_ray.config import ExperimentConfig, as_config, strategy_spec
from ipt_ray.model import parameter_report, save_adapter
from ipt_ray.train.checkpoints import (discard_reported_checkpoint, load_trainer_state, restore_trainer_state,
                                       save_epoch_checkpoint)
from ipt_ray.train.evaluation import epoch_metrics, epoch_report, evaluate, merge_epoch
from ipt_ray.train.inputs import Prepared, backbone_collator, prepared_inputs, train_loader
from ipt_ray.train.runtime import Runtime, make_runtime, progress_bar, release_freed_memory
from ipt_ray.train.step import SeedTraining, accumulated_step, group_lrs, start_seed_training


@dataclass
class LoopRun:
    """What one call of the loop shares over its seed groups and epochs."""

    cfg: ExperimentConfig
    seeds: list[int]  # every seed of the config
    runtime: Runtime
    inputs: Prepared  # on the runtime's device
    collator: Collator
    eval_batches: Any  # the dev split's batches
    test_batches: Any | None  # the test split's batches (reported only, never selected on); None without one
    batched: bool  # the seeds' sub-batches in one backbone pass
    autocast: bool  # bf16 autocast
    metric: str  # the selection metric's key, e.g. "dev_accuracy"
    run_dir: Path  # where adapters (and a local run's checkpoint) go
    started: float  # perf_counter at the start
    threads_fn: Any = None  # called between steps; may change torch's thread count (idle CPUs of a sweep)
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch records, merged over groups
    finished: list[list[int]] = field(default_factory=list)  # seed groups done (from the checkpoint)
    params: dict[str, float] = field(default_factory=dict)  # parameter report of the latest group


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Train the config's seeds (resuming from a checkpoint if there is one); returns the final report."""
    run = open_run(loop_config)
    state = resume(run, loop_config.get("resume_from"))
    groups = seed_groups(run.cfg, run.seeds)
    for group_seeds in groups:
        if group_seeds in run.finished:
            continue
        train_seed_group(run, group_seeds, state)
        state = None  # a checkpoint resumes the first group still to train, no other
    if len(groups) > 1:  # sequential groups: report the merged epochs once all seeds are done
        for record in run.history:
            run.runtime.report(epoch_report(record, run.seeds, run.params), None)
    return final_report(run)


def open_run(loop_config: dict[str, Any]) -> LoopRun:
    """The config, the runtime, and the inputs moved to the runtime's device."""
    cfg: ExperimentConfig = as_config(loop_config["experiment"])
    runtime = make_runtime(loop_config.get("runtime", "local"), cfg.train.device, loop_config.get("report_fn"))
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    started = time.perf_counter()
    inputs = prepared_inputs(cfg)
    inputs.backbone.to(runtime.device)
    collator = backbone_collator(inputs.backbone)
    return LoopRun(
        cfg=cfg, seeds=list(loop_config.get("seeds") or cfg.train.seeds), runtime=runtime, inputs=inputs,
        collator=collator, eval_batches=loader(inputs.rows["dev"], cfg.train.eval_batch_size, collator),
        test_batches=(loader(inputs.rows["test"], cfg.train.eval_batch_size, collator)
                      if "test" in inputs.rows else None),
        batched=cfg.train.execution == "batched" or (cfg.train.execution == "auto" and runtime.on_gpu),
        autocast=runtime.on_gpu and cfg.train.precision in ("auto", "bf16"),
        metric=f"dev_{loop_config.get('metric', 'accuracy')}",
        run_dir=Path(loop_config.get("run_dir") or Path(cfg.train.output_dir) / "latest"), started=started,
        threads_fn=loop_config.get("threads_fn"),
    )


def resume(run: LoopRun, explicit: str | None) -> dict[str, Any] | None:
    """The trainer state to resume from (None for a fresh run); takes over its history and finished groups."""
    folder = run.runtime.latest_checkpoint(explicit)
    if not folder:
        return None
    state = load_trainer_state(folder)
    run.history, run.finished = state["history"], state["finished_groups"]
    return state


def seed_groups(cfg: ExperimentConfig, seeds: list[int]) -> list[list[int]]:
    """The seeds trained together: all of them over the one frozen backbone, or one after another for a
    strategy that trains a whole backbone per seed (fine-tuning)."""
    return [[s] for s in seeds] if strategy_spec(cfg.method.strategy).trains_backbone else [seeds]


def train_seed_group(run: LoopRun, seeds: list[int], state: dict[str, Any] | None) -> None:
    """Train ``seeds`` together for the remaining epochs, then save their adapters."""
    training = start_seed_training(run.cfg, run.inputs, seeds, run.runtime)
    run.params = {**parameter_report(training.adapters[0], run.inputs.backbone), "world_size": run.runtime.world_size}
    resumed_from = restore_trainer_state(training, state) if state is not None and state["seeds"] == seeds else 0
    for epoch in range(resumed_from, run.cfg.train.epochs):
        run_epoch(run, training, epoch, resumed_from)
    run.finished.append(seeds)
    if run.runtime.is_main:
        spec = run.inputs.spec
        for adapter, s in zip(training.adapters, seeds):
            save_adapter(run.run_dir / f"seed_{s}", adapter, run.cfg, run.inputs.backbone, training.ctx, s,
                         spec.label_names, metrics=dict(run.history[-1]["per_seed"][s]))


def run_epoch(run: LoopRun, training: SeedTraining, epoch: int, resumed_from: int) -> None:
    """Train, evaluate, checkpoint and report one epoch (0-based) of the group."""
    t0 = time.perf_counter()
    loss_sums, steps, lrs = train_epoch(run, training, epoch)
    evals = score(run, training, run.eval_batches)
    test_evals = score(run, training, run.test_batches) if run.test_batches is not None else None
    record = merge_epoch(run.history, epoch, epoch_metrics(training.seeds, evals, loss_sums, steps, test_evals, lrs),
                         time.perf_counter() - t0)
    checkpoint_dir = save_epoch_checkpoint(run.runtime, run.run_dir, training, epoch, run.history, run.finished)
    if len(training.seeds) == len(run.seeds):  # every seed in this group: report each epoch as it ends
        report = {**epoch_report(record, run.seeds, run.params), "resumed_from_epoch": resumed_from}
        run.runtime.report(report, checkpoint_dir)
    discard_reported_checkpoint(run.runtime, checkpoint_dir)
    release_freed_memory()  # the epoch's activations: back to the OS, not held for the next trial's shapes
    injected_fault(epoch + 1)


def score(run: LoopRun, training: SeedTraining, batches: Any) -> list[dict[str, float]]:
    """Each seed's metrics on one evaluation split's ``batches`` (:func:`~ipt_ray.train.evaluation.evaluate`)."""
    return evaluate(training.group, batches, run.inputs.spec, run.runtime.device, run.batched, run.autocast)


def train_epoch(run: LoopRun, training: SeedTraining, epoch: int) -> tuple[np.ndarray, int, list[dict[str, float]]]:
    """One pass over the train split for every seed: the seeds' summed micro-batch losses ``[S]``, the
    micro-batch count, and each seed's learning rates (per parameter group) at the epoch's last step.

    An optimizer step every ``train.grad_accumulation`` micro-batches; the epoch's last, incomplete group
    steps too, so no gradient crosses an epoch boundary (nor a checkpoint).
    """
    train = run.cfg.train
    training.model.train()
    loaders = [train_loader(run.inputs.rows["train"], train.batch_size, run.collator, s, epoch, run.runtime)
               for s in training.seeds]
    # summed on the device (float64, as before on the host): no sync per seed and step
    loss_sums = torch.zeros(len(training.seeds), dtype=torch.float64, device=run.runtime.device)
    micro_steps = 0
    lrs: list[dict[str, float]] = []
    bar = progress_bar(train.progress, run.runtime, training.micro_batches_per_epoch,
                       f"epoch {epoch + 1}/{train.epochs} seeds {training.seeds}")
    for group in accumulation_groups(zip(*loaders), train.grad_accumulation):
        if run.threads_fn is not None:
            run.threads_fn()
        group = [[b.to(run.runtime.device) for b in batches] for batches in group]
        lrs = [group_lrs(o) for o in training.optimizers]  # the rates this step uses
        loss_sums += accumulated_step(training.model, training.adapters, training.optimizers, training.schedulers,
                                      group, run.batched, run.autocast, train.max_grad_norm)
        micro_steps += len(group)
        if bar is not None:
            bar.update(len(group))
            bar.set_postfix(loss=f"{loss_sums.mean().item() / micro_steps:.4f}")
    if bar is not None:
        bar.close()
    return loss_sums.cpu().numpy(), micro_steps, lrs


def accumulation_groups(batches: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``batches`` in consecutive lists of ``size`` (the last may be shorter)."""
    group: list[Any] = []
    for item in batches:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def final_report(run: LoopRun) -> dict[str, Any]:
    """The last epoch's report plus the best epoch (by the dev selection metric's seed mean; the earliest on
    ties) with its selection metric and, with a test split, its test metric; the wall time and the run folder."""
    seeds, params, metric = run.seeds, run.params, run.metric
    final = epoch_report(run.history[-1], seeds, params)
    reports = [epoch_report(r, seeds, params) for r in run.history]
    best = max(reports, key=lambda r: r[metric + "_mean"])  # max keeps the first of equals
    final["best_" + metric + "_mean"] = best[metric + "_mean"]
    final["best_epoch"] = best["epoch"]
    test = "test_" + metric[len("dev_"):]
    if test + "_mean" in best:  # the test value at the dev-selected epoch, never a best over test
        final[test + "_mean_at_best_epoch"] = best[test + "_mean"]
        final[test + "_std_at_best_epoch"] = best[test + "_std"]
    final["wall_time_s"] = time.perf_counter() - run.started
    final["run_dir"] = str(run.run_dir)
    return final


def injected_fault(epoch: int) -> None:
    """Fault injection for the failure tests: ``IPT_RAY_FAIL_AFTER_EPOCH=N`` raises once after epoch N.

    The marker file ``IPT_RAY_FAIL_MARKER`` makes it fire once per sweep, so the retry goes through.
    """
    target, marker = os.environ.get("IPT_RAY_FAIL_AFTER_EPOCH"), os.environ.get("IPT_RAY_FAIL_MARKER")
    if target and marker and int(target) == epoch and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        raise RuntimeError(f"injected fault after epoch {epoch} (IPT_RAY_FAIL_AFTER_EPOCH)")


def run_local(cfg: ExperimentConfig, run_dir: str | Path | None = None, seeds: Sequence[int] | None = None,
              report_fn=None) -> dict[str, Any]:
    """One config, in-process, no Ray: ``ipt-ray train``."""
    loop_config = {"experiment": cfg.model_dump(mode="json"), "runtime": "local", "seeds": list(seeds or cfg.train.seeds),
                   "run_dir": str(run_dir) if run_dir else None, "report_fn": report_fn}
    return train_loop_per_worker(loop_config)
