"""``ipt-ray report --sync SWEEP``: replay, after the sweep, the writes it journaled while MLflow was away."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ipt_ray.tracking.client import TrackingError
from ipt_ray.tracking.journal import JOURNAL_FILE, read_journal
from ipt_ray.tracking.readback import SWEEP_FILE, find_sweep_dir
from ipt_ray.tracking.tracker import SweepTracker
from ipt_ray.tracking.uri import resolve_tracking_uri


def sync_sweep(sweep: str, tracking_uri: str | None = None, experiment: str | None = None,
               base: Path | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Replay the writes a sweep journaled while MLflow was unreachable.

    ``tracking_uri`` defaults to the sweep's own (from ``ipt_sweep.json``); give it when the server moved.
    The experiment is the one the journal was written for. Returns the sweep's ``name``, ``uri``,
    ``experiment``, ``sweep_dir`` and the number of writes ``replayed``.
    """
    directory = find_sweep_dir(sweep, base)
    meta = json.loads((directory / SWEEP_FILE).read_text())
    journal = directory / JOURNAL_FILE
    records = read_journal(journal)
    experiment = (records[0]["experiment"] if records else None) or meta.get("experiment") or experiment
    uri = resolve_tracking_uri(tracking_uri or meta.get("tracking_uri"))
    result = {"name": meta["name"], "sweep_id": meta["sweep_id"], "uri": uri, "experiment": experiment,
              "sweep_dir": str(directory), "replayed": 0}
    if not records:
        out(f"sweep {meta['name']}: nothing to sync ({journal.name} is empty or absent)")
        return result
    if experiment is None:
        raise TrackingError(f"{journal}: no experiment recorded; pass --experiment")
    tracker = SweepTracker(uri, experiment, meta["sweep_id"], meta["name"], journal=journal)
    result["replayed"] = tracker.sync()
    out(f"sweep {meta['name']}: {result['replayed']} journaled tracking writes replayed to {uri} "
        f"(experiment {experiment!r})")
    return result
