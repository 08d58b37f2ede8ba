"""The crash-and-resume experiment the training tests share: one uninterrupted run, one crashed after
epoch 1 and resumed from its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


class Crash(RuntimeError):
    pass


def uninterrupted_and_resumed(cfg: Any, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(full, resumed)``: the final metrics of ``cfg`` run without a break, and of the same run crashed
    after its first epoch and resumed from ``folder / "crashed" / "checkpoint"``."""
    from ipt_ray.train import run_local, train_loop_per_worker  # heavy: only in the tests that train

    full = run_local(cfg, run_dir=folder / "full")

    def crash_after_first_epoch(metrics, checkpoint):
        if metrics["epoch"] == 1:
            raise Crash

    with pytest.raises(Crash):
        run_local(cfg, run_dir=folder / "crashed", report_fn=crash_after_first_epoch)
    resumed = train_loop_per_worker({"experiment": cfg.model_dump(mode="json"), "runtime": "local",
                                     "run_dir": str(folder / "crashed"),
                                     "resume_from": str(folder / "crashed" / "checkpoint")})
    return full, resumed
