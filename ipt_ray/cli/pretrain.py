"""``ipt-ray pretrain CONFIG``: category pretraining -> the prompt-table checkpoint for ``method.table_init``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ipt_ray.config import load_config
from ipt_ray.pretrain import run_pretrain
from ipt_ray.tracking import TrackingError

USER_ERRORS = (TrackingError,)  # MLflow unreachable: a message, not a traceback


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    result = run_pretrain(cfg, base_dir=Path(args.config).resolve().parent, track=not args.no_tracking)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "checkpoint": str(result.checkpoint), "heldout_accuracy": result.heldout_accuracy,
            "wall_time_s": result.wall_time_s, "mlflow_run_id": result.run_id, "history": result.history,
            "category_counts": result.category_counts, "encoders": result.encoders}, indent=2))
    return 0
