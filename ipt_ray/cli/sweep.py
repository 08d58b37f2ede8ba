"""``ipt-ray sweep CONFIG``: the Ray Tune + Optuna sweep of one experiment YAML, tracked in MLflow."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ipt_ray.config import load_config
from ipt_ray.sweep import run_sweep
from ipt_ray.tracking import TrackingError

USER_ERRORS = (TrackingError,)  # MLflow unreachable: a message, not a traceback


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    out = run_sweep(cfg, args.config, resume=args.resume if args.resume is not None else False,
                    config_text=Path(args.config).read_text(), restartable=True, started_at=args.started_at)
    if out.get("runs_left"):
        go_on_in_a_fresh_process(args, out["name"], out["runs_left"], out["started_at"])
    return 0


def go_on_in_a_fresh_process(args: argparse.Namespace, sweep: str, runs_left: int, started_at: float) -> None:
    """Replace this process with ``ipt-ray sweep CONFIG --set ... --resume SWEEP``: same pid, console and
    process group (``ray job stop``, a kill and ``ray job logs`` see one driver), none of the memory this
    one grew (:mod:`ipt_ray.sweep.runs`)."""
    import ray  # heavy, optional: only when a sweep ran

    ray.shutdown()  # a joined cluster sees this driver's job end (a private Ray is already stopped)
    left = f"{runs_left} Tune run{'s' if runs_left > 1 else ''} left"
    print(f"sweep {sweep}: {left}; going on in a fresh driver process (pid {os.getpid()})", flush=True)
    sys.stderr.flush()
    logging.shutdown()  # exec runs no atexit hook: flush the log handlers now
    overrides = [arg for value in args.set for arg in ("--set", value)]
    os.execv(sys.executable, [sys.executable, "-m", "ipt_ray.cli", "sweep", args.config, *overrides,
                              "--resume", sweep, "--started-at", repr(started_at)])
