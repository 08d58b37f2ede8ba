"""The sweep's aggregate run: mean and std per config over seeds, the best config, the results files.

Metrics ``<config_id>/<metric>_mean|_std`` and ``best/<metric>_mean|_std`` (dev: what chose the best
config) and, where the protocol has a test split, ``<config_id>/test_<metric>_mean|_std`` and
``best/test_<metric>_mean|_std`` (the same seeds and epochs on test, reported only) are logged at step = the
aggregation's version (1, 2, ... on re-aggregation after a resume), so the latest value is current. The
best config's params go into tags ``best.<key>`` (tags, not params: MLflow params are immutable and the
best config may change when a resumed sweep re-aggregates), with ``ipt.best_config_id``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlflow.entities import Metric, Run, RunTag
from mlflow.tracking import MlflowClient

from ipt_ray.results import SweepSummary, summary_record
from ipt_ray.tracking.client import MAX_TAG_VALUE, mlflow_params, now_ms

log = logging.getLogger(__name__)


def aggregate_version(existing: Run | None) -> int:
    """The version the next aggregation gets: one more than the existing run's."""
    return 1 if existing is None else int(existing.data.tags.get("ipt.aggregate_version", 0)) + 1


def aggregate_metrics(summary: SweepSummary, version: int) -> list[Metric]:
    """Per-config and best-config mean/std (dev, and test where there is one) at step ``version``."""
    ts, m = now_ms(), summary.metric
    metrics: list[Metric] = []
    for c in summary.configs:
        if c.n_seeds:
            metrics += [Metric(f"{c.config_id}/{m}_mean", c.mean, ts, version),
                        Metric(f"{c.config_id}/{m}_std", c.std, ts, version)]
        if c.test_values:
            metrics += [Metric(f"{c.config_id}/test_{m}_mean", c.test_mean, ts, version),
                        Metric(f"{c.config_id}/test_{m}_std", c.test_std, ts, version)]
    best = summary.best
    if best is not None:
        metrics += [Metric(f"best/{m}_mean", best.mean, ts, version), Metric(f"best/{m}_std", best.std, ts, version),
                    Metric("best/n_seeds", float(best.n_seeds), ts, version)]
        if best.test_values:
            metrics += [Metric(f"best/test_{m}_mean", best.test_mean, ts, version),
                        Metric(f"best/test_{m}_std", best.test_std, ts, version)]
    return metrics


def aggregate_tags(summary: SweepSummary, version: int, key: str) -> dict[str, str]:
    """The aggregation's facts, and the best config's id and params."""
    tags = {"ipt.aggregate_version": str(version), "ipt.metric": summary.metric, "ipt.mode": summary.mode,
            "ipt.n_configs": str(len(summary.configs)), "ipt.aggregate_key": key}
    best = summary.best
    if best is not None:
        tags["ipt.best_config_id"] = best.config_id
        tags.update({f"best.{k}": v[:MAX_TAG_VALUE] for k, v in mlflow_params(best.params).items()})
    return tags


def log_aggregate_values(client: MlflowClient, run_id: str, summary: SweepSummary, version: int, key: str,
                         existing: Run | None) -> None:
    """Metrics and tags of one aggregation; ``best.*`` tags of an earlier best config that the current one
    lacks are deleted from ``existing``."""
    tags = aggregate_tags(summary, version, key)
    stale_best = [k for k in existing.data.tags if k.startswith("best.")] if existing is not None else []
    for tag in stale_best:
        if tag not in tags:
            client.delete_tag(run_id, tag)
    client.log_batch(run_id, metrics=aggregate_metrics(summary, version), tags=[RunTag(k, v) for k, v in tags.items()])


def upload_aggregate_files(client: MlflowClient, run_id: str, summary: SweepSummary, artifacts: dict[str, Path]) -> str:
    """The results files, ``summary.json``; the run is finished. Returns ``run_id``."""
    for path in artifacts.values():
        if Path(path).is_file():
            client.log_artifact(run_id, str(path))
        else:  # a replay after the sweep folder was cleaned: the metrics and summary.json still land
            log.warning("MLflow: artifact %s is gone; not uploaded to the aggregate run", path)
    client.log_dict(run_id, summary_record(summary), "summary.json")
    client.set_terminated(run_id, "FINISHED")
    return run_id
