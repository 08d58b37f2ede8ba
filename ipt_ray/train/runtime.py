"""Where the loop runs (in-process, in a Tune trial, on a Ray Train worker) and how its results leave."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import torch
from tqdm.auto import tqdm


@dataclass
class Runtime:
    """Where the loop runs: rank/world, device, and how results leave it."""

    kind: str  # local | tune | train
    device: torch.device
    rank: int = 0
    world_size: int = 1
    report_fn: Callable[[dict[str, Any], str | None], None] | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        if self.report_fn is not None:
            self.report_fn(metrics, checkpoint_dir)
        elif self.kind == "tune":
            from ray import tune  # heavy, optional: only inside a Tune trial

            ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report(metrics, checkpoint=ckpt)
        elif self.kind == "train":
            import ray.train  # heavy, optional: only on a Ray Train worker

            ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir and self.is_main else None
            ray.train.report(metrics, checkpoint=ckpt)

    def latest_checkpoint(self, explicit: str | None) -> str | None:
        """The folder to resume from: ``explicit``, else the checkpoint Tune / Ray Train restored, else None."""
        if explicit:
            return explicit
        ckpt = None
        if self.kind == "tune":
            from ray import tune  # heavy, optional: only inside a Tune trial

            ckpt = tune.get_checkpoint()
        elif self.kind == "train":
            import ray.train  # heavy, optional: only on a Ray Train worker

            ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        return ckpt.to_directory()


def make_runtime(kind: str, device_pref: str, report_fn=None) -> Runtime:
    rank, world = 0, 1
    if kind == "train":
        import ray.train  # heavy, optional: only on a Ray Train worker

        ctx = ray.train.get_context()
        rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available()):
        if kind == "train":
            import ray.train.torch  # heavy, optional: only on a Ray Train worker

            device = ray.train.torch.get_device()
        else:
            device = torch.device("cuda")
    else:
        device = torch.device("cpu")
    return Runtime(kind=kind, device=device, rank=rank, world_size=world, report_fn=report_fn)


def progress_bar(enabled: bool, runtime: Runtime, total: int, desc: str):
    """A tqdm bar for the epoch's steps, only for local runs on the main rank (None otherwise)."""
    if not enabled or not runtime.is_main or runtime.kind != "local":
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return to the OS the heap memory glibc holds for reuse but no live tensor uses.

    Why: glibc keeps freed chunks below its (dynamic, up to 32 MB) mmap threshold in the heap, so a
    process's resident memory climbs to the high-water mark of every activation shape it has seen. A reused
    Tune actor sees many (prompt lengths, batch tails, eval batches): two CPU trials of the Figure 5 twin
    held 8-9 GB each after 9 trials and Ray's memory monitor killed the sweep. Measured on MiniLM, 7
    successive trials in one process: 1,618 MB resident without this call, 660 MB after it each time (measured
    with a full collection; the young-generation one below was not re-measured on that probe).
    Called after every epoch; a no-op without ``malloc_trim``. Only the young generations are collected
    (~2 ms): a full ``gc.collect()`` walks the ~400k objects torch, transformers and Ray keep (~330 ms here),
    twice per trial of the scale benchmark, and an epoch's activations are freed by reference counting.
    """
    gc.collect(1)
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
