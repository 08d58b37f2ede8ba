"""BackgroundWriter: different trials' writes side by side over HTTP, each trial's in order."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from ipt_ray.tracking.journal import Journal, read_journal
from ipt_ray.tracking.writer import BackgroundWriter, trial_waves


def rec(op: str, trial: str | None = None) -> dict[str, Any]:
    return {"op": op, "args": {} if trial is None else {"trial_id": trial}}


def test_trial_waves_keep_each_trial_in_order_and_other_writes_alone():
    records = [rec("log_result", "t0"), rec("log_result", "t1"), rec("end_trial", "t0"), rec("adopt_orphans", "t2"),
               rec("log_result", "t1"), rec("log_adapters", "t1"), rec("finish")]
    assert trial_waves(records) == [[[0, 2], [1]], [[3]], [[4, 5]], [[6]]]
    assert trial_waves([]) == []


class FakeTracker:
    """What the writer needs of a SweepTracker: a URI, a journal, ``_replay`` and ``_reset_cache``."""

    def __init__(self, uri: str, journal: Path, replay) -> None:
        self.uri = uri
        self._outage = Journal(journal, lambda: 0, uri=uri, sweep_id="sw", sweep_name="demo", experiment="e")
        self.replay, self.applied, self.resets = replay, [], 0

    def _replay(self, record: dict[str, Any]) -> None:
        self.replay(record)
        self.applied.append((record["args"].get("trial_id"), record["args"].get("epoch")))

    def _reset_cache(self) -> None:
        self.resets += 1


def submit_two_trials(writer: BackgroundWriter, epochs: int = 2) -> None:
    with writer.lock:  # all on disk before the writer reads: one batch of records
        for epoch in range(1, epochs + 1):
            for trial in ("t0", "t1"):
                writer.journal.append("log_result", {"trial_id": trial, "epoch": epoch})


def test_over_http_two_trials_writes_are_in_flight_together_and_each_trials_stay_in_order(tmp_path):
    together = threading.Barrier(2, timeout=10)  # breaks unless both trials' first writes are in flight at once

    def replay(record: dict[str, Any]) -> None:
        if record["args"]["epoch"] == 1:
            together.wait()

    tracker = FakeTracker("http://127.0.0.1:5000", tmp_path / "journal.jsonl", replay)
    writer = BackgroundWriter(tracker)
    submit_two_trials(writer)
    writer.stop(timeout_s=30)
    for trial in ("t0", "t1"):
        assert [e for t, e in tracker.applied if t == trial] == [1, 2]
    assert read_journal(tmp_path / "journal.jsonl") == []


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "sqlite:////tmp/mlflow.db"])
def test_a_refused_write_keeps_it_and_everything_after_it_journaled(tmp_path, uri):
    def replay(record: dict[str, Any]) -> None:
        if record["args"] == {"trial_id": "t0", "epoch": 2}:
            raise ValueError("refused")

    tracker = FakeTracker(uri, tmp_path / "journal.jsonl", replay)
    writer = BackgroundWriter(tracker)
    submit_two_trials(writer)  # journal: t0 e1, t1 e1, t0 e2, t1 e2
    with pytest.raises(ValueError, match="refused"):
        writer.stop(timeout_s=30)
    left = [(r["args"]["trial_id"], r["args"]["epoch"]) for r in read_journal(tmp_path / "journal.jsonl")]
    assert left == [("t0", 2), ("t1", 2)]  # t1's epoch 2 may have landed too: replayed again (idempotent)
    assert ("t0", 2) not in tracker.applied and tracker.resets == 1
