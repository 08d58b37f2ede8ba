"""Reading a sweep back: its runs from MLflow, its folder on disk, its seed results and context.

This is all ``ipt-ray report SWEEP`` needs to rebuild the table from MLflow alone. The readers take a
client duck-typed like ``MlflowClient`` (``get_run``, ``download_artifacts``, ``search_runs``,
``log_artifact``) and runs like MLflow's (``info``, ``data.tags/params/metrics``), so tests can fake them.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from ipt_ray.results import (
    Epoch,
    Mode,
    SeedResult,
    SweepContext,
    at_best_epoch,
    dev_key,
    parse_param,
    split_key,
    to_float,
)
from ipt_ray.tracking.client import TrackingError, quote, search_all, tag_filter

#: The sweep's metadata file in its folder (name, sweep id, tracking URI, experiment); the sweep driver writes it.
SWEEP_FILE = "ipt_sweep.json"
#: Tag prefix of the hyper-parameters selection chose for a run (a few-shot final run: ``ipt.chosen.train.lr``).
CHOSEN_TAG = "ipt.chosen."


def find_sweep_runs(uri: str, experiment: str, sweep: str) -> list[Run]:
    """The child trial runs of sweep ``sweep`` (its id, or its parent run's name; the most recent sweep
    of that name wins). This is all ``ipt-ray report SWEEP`` needs to rebuild the table.

    A few-shot sweep's cross-validation runs (tag ``ipt.phase`` ``select``) are left out: they chose the
    hyper-parameters; the table is its ``final`` runs."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"no MLflow experiment {experiment!r} at {uri}")

    def search(filter_string: str, order_by: list[str] | None = None) -> list[Run]:
        return search_all(client, exp.experiment_id, filter_string, order_by)

    newest = ["attributes.start_time DESC"]
    parents = (search(tag_filter({"ipt.kind": "parent", "ipt.sweep_id": sweep}), newest)
               or search(f"{tag_filter({'ipt.kind': 'parent'})} and attributes.run_name = {quote(sweep)}", newest))
    if not parents:
        raise TrackingError(f"no sweep {sweep!r} (sweep id or name) in experiment {experiment!r} at {uri}")
    sweep_id = parents[0].data.tags["ipt.sweep_id"]
    runs = search(tag_filter({"ipt.sweep_id": sweep_id, "ipt.kind": "trial"}), ["attributes.start_time ASC"])
    return [r for r in runs if r.data.tags.get("ipt.phase") != "select"]


def find_sweep_dir(sweep: str, base: Path | None = None) -> Path:
    """A sweep's folder (the one holding ``ipt_sweep.json``): ``sweep`` itself when it is that folder,
    else ``runs/sweeps/<sweep>`` or ``*/sweeps/<sweep>``, ``*/*/sweeps/<sweep>`` under ``base`` (cwd)."""
    base = Path.cwd() if base is None else Path(base)
    given = Path(sweep).expanduser()
    candidates = [given if given.is_absolute() else base / given, base / "runs" / "sweeps" / sweep]
    for pattern in (f"*/sweeps/{sweep}", f"*/*/sweeps/{sweep}"):
        candidates += sorted(base.glob(pattern))
    for candidate in candidates:
        if (candidate / SWEEP_FILE).is_file():
            return candidate.resolve()
    raise TrackingError(f"no folder of sweep {sweep!r} (with {SWEEP_FILE}) under {base} (looked in runs/sweeps, "
                        f"*/sweeps, */*/sweeps); give the sweep's folder instead, e.g. <train.output_dir>/sweeps/{sweep}")


def results_from_mlflow(runs: Iterable[Any], metric: str, *, epoch: Epoch = "last",
                        history: Callable[[str, str], Iterable[Any]] | None = None,
                        mode: Mode = "max") -> list[SeedResult]:
    """Seed results from the child runs of a sweep (:func:`find_sweep_runs`), MLflow alone.

    ``epoch="last"`` (default): the value is ``run.data.metrics["dev_<metric>"]``, which MLflow keeps
    as the value at the largest step, i.e. the last epoch (the tracker never logs a step twice): no
    metric-history calls needed. A run with ``test_<metric>`` gives its test value the same way.

    ``epoch="best"``: early stopping on dev, as P-tuning v2 reports. ``history(run_id, key)`` (e.g.
    ``MlflowClient.get_metric_history``) gives each run's per-epoch values; per config, the epoch with
    the best dev seed mean (``mode``; the earliest on ties) is chosen, and every seed reports its value at
    that epoch, so all seeds of a config are read at the same epoch. Test values are read at that
    dev-chosen epoch (their history is fetched only for runs that logged ``test_<metric>``).

    A run with ``selected/<key>`` metrics (a few-shot final run, each early-stopped on its own dev set:
    :meth:`~ipt_ray.tracking.SweepTracker.log_selected`) gives those values under either ``epoch``.

    Params come back as text and are parsed to int/float/bool where they look like one.
    """
    if epoch not in ("last", "best"):
        raise ValueError(f"epoch must be 'last' or 'best', not {epoch!r}")
    if epoch == "best" and history is None:
        raise ValueError("epoch 'best' needs history(run_id, key), e.g. MlflowClient.get_metric_history")
    key, test = dev_key(metric), split_key(metric)
    out: list[SeedResult] = []
    selected: list[SeedResult] = []  # read at each run's own dev-selected epoch already
    curves: list[dict[int, float]] = []
    test_curves: list[dict[int, float]] = []
    for run in runs:
        tags = run.data.tags
        if "ipt.config_id" not in tags or "ipt.seed" not in tags:
            continue
        if f"selected/{key}" in run.data.metrics:
            selected.append(_seed_result(run, f"selected/{key}", f"selected/{test}"))
            continue
        out.append(_seed_result(run, key, test))
        if history is not None and epoch == "best":
            curves.append(_curve(history, run.info.run_id, key))
            test_curves.append(_curve(history, run.info.run_id, test) if test in run.data.metrics else {})
    return (at_best_epoch(out, curves, mode, test_curves) if epoch == "best" else out) + selected


def _curve(history: Callable[[str, str], Iterable[Any]], run_id: str, key: str) -> dict[int, float]:
    """Epoch -> finite value of ``key`` in one run's metric history."""
    points = {int(m.step): to_float(m.value) for m in history(run_id, key)}
    return {s: v for s, v in points.items() if math.isfinite(v)}


def _seed_result(run: Any, key: str, test: str) -> SeedResult:
    """One child run as a seed result: its last ``key`` (and ``test``) value, its params parsed back
    (without ``seed``) and what selection chose for it (``ipt.chosen.<key>`` tags of a few-shot final run)."""
    tags = run.data.tags
    return SeedResult(
        config_id=tags["ipt.config_id"],
        trial_id=tags.get("ipt.trial_id", run.info.run_id),
        seed=int(tags["ipt.seed"]),
        value=to_float(run.data.metrics.get(key)),
        params={k: parse_param(v) for k, v in run.data.params.items() if k != "seed"},
        status=tags.get("ipt.status", "running"),
        test=to_float(run.data.metrics.get(test)),
        chosen={k[len(CHOSEN_TAG):]: parse_param(v) for k, v in sorted(tags.items()) if k.startswith(CHOSEN_TAG)},
    )


def sweep_context_from_mlflow(client: Any, runs: Sequence[Any]) -> SweepContext:
    """The :class:`~ipt_ray.results.SweepContext` of the sweep that ``runs`` (its child runs) belong to.

    The parent is the child's ``mlflow.parentRunId``; a missing parent or YAML artifact leaves those
    fields empty.
    """
    tags = runs[0].data.tags if runs else {}
    sweep_id = str(tags.get("ipt.sweep_id", ""))
    parent_id = tags.get("mlflow.parentRunId")
    if not parent_id:
        return SweepContext(name=sweep_id, sweep_id=sweep_id)
    parent = client.get_run(parent_id)
    params = {k: parse_param(v) for k, v in parent.data.params.items()}
    name = str(parent.data.tags.get("mlflow.runName") or getattr(parent.info, "run_name", "") or sweep_id)
    return SweepContext(name=name, sweep_id=sweep_id, params=params, base=_stored_yaml(client, parent_id))


def _stored_yaml(client: Any, run_id: str) -> dict[str, Any]:
    """The run's ``experiment.yaml`` artifact as a mapping; ``{}`` when it is missing or unreadable."""
    try:
        with tempfile.TemporaryDirectory(prefix="ipt-report-") as tmp:
            path = client.download_artifacts(run_id, "experiment.yaml", tmp)
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - no artifact / unreadable YAML: labels fall back to the trial params
        return {}
    return loaded if isinstance(loaded, dict) else {}


def log_report_artifacts(client: Any, runs: Sequence[Any], paths: Iterable[Path],
                         artifact_path: str = "paper") -> str | None:
    """Upload report files into the sweep's aggregate run (under ``artifact_path``); its run id, or None
    when the sweep has no aggregate run (e.g. its driver stopped before aggregating)."""
    if not runs:
        return None
    sweep_id = runs[0].data.tags.get("ipt.sweep_id")
    if not sweep_id or "'" in sweep_id:
        return None
    found = client.search_runs([runs[0].info.experiment_id],
                               f"tags.`ipt.sweep_id` = '{sweep_id}' and tags.`ipt.kind` = 'aggregate'",
                               max_results=1)
    if not found:
        return None
    run_id = found[0].info.run_id
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)
    return run_id
