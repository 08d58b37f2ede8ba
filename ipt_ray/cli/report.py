"""``ipt-ray report SWEEP...``: a sweep's results table (paper-style when it compares methods or tasks) from MLflow."""

from __future__ import annotations

import argparse
import sys

from mlflow.tracking import MlflowClient

from ipt_ray.report import paper
from ipt_ray.tracking import TrackingError, find_sweep_runs, resolve_tracking_uri, sync_sweep

USER_ERRORS = (TrackingError,)  # MLflow unreachable, journal unreadable: a message, not a traceback


def run(args: argparse.Namespace) -> int:
    names = list(args.sweep) if isinstance(args.sweep, (list, tuple)) else [args.sweep]
    if args.sync:  # replay what each sweep journaled while MLflow was unreachable, then report as usual
        names = _sync(args, names)
    uri = resolve_tracking_uri(args.tracking_uri)
    sweeps = []
    for name in names:  # several sweeps (e.g. one per task, or a method family each) are combined
        runs = find_sweep_runs(uri, args.experiment, name)
        if not runs:
            print(f"error: no trial runs of sweep {name!r} in experiment {args.experiment!r} at {uri}", file=sys.stderr)
            return 2
        sweeps.append(runs)
    paper.report_sweeps(MlflowClient(tracking_uri=uri), sweeps, metric=args.metric, mode=args.mode, out=args.out,
                        force_paper=args.paper, task_metrics=paper.parse_task_metrics(args.task_metric),
                        epoch=args.epoch, log=not args.no_log)
    return 0


def _sync(args: argparse.Namespace, names: list[str]) -> list[str]:
    """Sync each sweep; ``args`` then point at the store and experiment the last one was synced to."""
    synced_names = []
    for name in names:
        synced = sync_sweep(name, tracking_uri=args.tracking_uri)  # TrackingError: main() says it
        synced_names.append(synced["name"])
        args.tracking_uri = synced["uri"]
        args.experiment = synced["experiment"] or args.experiment
    return synced_names
