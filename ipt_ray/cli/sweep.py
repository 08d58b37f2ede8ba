"""``ipt-ray sweep CONFIG``: the Ray Tune + Optuna sweep of one experiment YAML, tracked in MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path

from ipt_ray.config import load_config
from ipt_ray.sweep import run_sweep
from ipt_ray.tracking import TrackingError

USER_ERRORS = (TrackingError,)  # MLflow unreachable: a message, not a traceback


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    run_sweep(cfg, args.config, resume=args.resume if args.resume is not None else False,
              config_text=Path(args.config).read_text())
    return 0
