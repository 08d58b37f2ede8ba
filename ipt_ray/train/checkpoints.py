"""The trainer state a run resumes from: adapters, optimizers, schedules, dropout RNGs and the history.

A checkpoint folder holds ``trainer_state.pt`` (written with ``torch.save``, read back with torch's
restricted unpickler: tensors, numbers, strings and containers only, so loading runs no code) and
``progress.json``. Local runs keep one checkpoint beside their adapters; under Tune / Ray Train the
folder is a temporary one that Ray copies into its own storage when the epoch is reported.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ipt_ray.train.runtime import Runtime
from ipt_ray.train.step import SeedTraining

CHECKPOINT_FILE = "trainer_state.pt"
PROGRESS_FILE = "progress.json"


def save_trainer_state(path: Path, training: SeedTraining, epoch: int, history: list, finished: list) -> None:
    """Write the state after ``epoch`` (0-based) of ``training``; ``finished`` lists the seed groups done before."""
    path.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "seeds": training.group.seeds,
        "adapters": {k: v.detach().cpu() for k, v in training.group.state_dict().items()},
        "optimizers": [o.state_dict() for o in training.optimizers],
        "schedulers": [s.state_dict() for s in training.schedulers],
        "dropout_rng": [a.head.dropout.rng_state() if hasattr(a.head, "dropout") else {} for a in training.adapters],
        "history": history,
        "finished_groups": finished,
    }
    torch.save(state, path / CHECKPOINT_FILE)
    (path / PROGRESS_FILE).write_text(json.dumps({"epoch": epoch, "seeds": training.group.seeds}))


def load_trainer_state(path: str | Path) -> dict[str, Any]:
    """The state :func:`save_trainer_state` wrote; ``weights_only``: a tampered file cannot run code."""
    return torch.load(Path(path) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def restore_trainer_state(training: SeedTraining, state: dict[str, Any]) -> int:
    """Load ``state`` into ``training`` (same seeds); returns the epoch to continue from (0-based)."""
    training.group.load_state_dict(state["adapters"])
    for o, sch, saved_o, saved_sch in zip(training.optimizers, training.schedulers, state["optimizers"],
                                          state["schedulers"]):
        saved_o, saved_sch = regrouped(o, saved_o, saved_sch)
        o.load_state_dict(saved_o)
        sch.load_state_dict(saved_sch)
    for a, rng in zip(training.adapters, state["dropout_rng"]):
        if rng:
            a.head.dropout.set_rng_state(rng)
    return state["epoch"] + 1


def regrouped(optimizer: torch.optim.Optimizer, saved: dict[str, Any],
              schedule: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's optimizer and schedule state in ``optimizer``'s parameter groups.

    Checkpoints written before the groups (prompt / head / backbone) hold one group over the same
    parameters in the same flat order, all at one learning rate: that group is split to the current
    groups' sizes. Any other mismatch is an error that names both layouts.
    """
    groups, current = saved["param_groups"], optimizer.param_groups
    if len(groups) == len(current):
        return saved, schedule
    sizes = [len(g["params"]) for g in current]
    if len(groups) != 1 or len(groups[0]["params"]) != sum(sizes):
        raise ValueError(f"the checkpoint's optimizer has {len(groups)} parameter group(s) of sizes "
                         f"{[len(g['params']) for g in groups]}, this run's {sizes}: not the same adapter")
    ids, start, split = list(groups[0]["params"]), 0, []
    for group, n in zip(current, sizes):
        split.append({**groups[0], "name": group.get("name"), "params": ids[start:start + n]})
        start += n
    schedule = {**schedule, **{k: list(schedule[k]) * len(current) for k in ("base_lrs", "_last_lr") if k in schedule}}
    return {**saved, "param_groups": split}, schedule


def save_epoch_checkpoint(runtime: Runtime, run_dir: Path, training: SeedTraining, epoch: int, history: list,
                          finished: list) -> str | None:
    """The main rank's checkpoint folder after ``epoch``; None on the other ranks."""
    if not runtime.is_main:
        return None
    # local runs keep one checkpoint beside the adapters; Ray copies its own
    checkpoint_dir = str(run_dir / "checkpoint") if runtime.kind == "local" else tempfile.mkdtemp(prefix="ipt-ckpt-")
    save_trainer_state(Path(checkpoint_dir), training, epoch, history, finished)
    return checkpoint_dir


def discard_reported_checkpoint(runtime: Runtime, checkpoint_dir: str | None) -> None:
    """Remove the temporary folder once Ray has copied it (a local run's checkpoint stays)."""
    if checkpoint_dir and runtime.kind != "local":
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
