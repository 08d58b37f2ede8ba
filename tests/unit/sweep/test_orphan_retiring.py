"""The driver's end-of-sweep retiring of runs of trials a resumed Tune no longer knows (see
``ipt_ray.tracking.orphans``; the tracker side is tested against a real store in test_tracking.py)."""

from __future__ import annotations

from types import SimpleNamespace

from ipt_ray.sweep.driver import retire_orphan_runs


class RecordingTracker:
    def __init__(self, retired: int = 0) -> None:
        self.calls: list[tuple[list[str], dict[str, str] | None]] = []
        self.retired = retired

    def retire_orphans(self, known, tags=None) -> int:
        self.calls.append((list(known), tags))
        return self.retired


def grid(*trial_ids: str | None) -> list[SimpleNamespace]:
    return [SimpleNamespace(metrics={} if t is None else {"trial_id": t, "epoch": 2}) for t in trial_ids]


def test_a_resumed_sweep_retires_with_every_trial_tune_ran_as_known():
    tracker, lines = RecordingTracker(retired=5), []
    retire_orphan_runs(SimpleNamespace(resuming=True), grid("a", "b"), tracker, lines.append, tags={"ipt.phase": "final"})
    assert tracker.calls == [(["a", "b"], {"ipt.phase": "final"})]
    assert lines == []  # the tracker logs what it retired


def test_a_fresh_sweep_and_a_trial_without_its_id_retire_nothing():
    tracker, lines = RecordingTracker(), []
    retire_orphan_runs(SimpleNamespace(resuming=False), grid("a"), tracker, lines.append)
    assert tracker.calls == [] and lines == []  # only a killed driver leaves such runs
    retire_orphan_runs(SimpleNamespace(resuming=True), grid("a", None), tracker, lines.append)
    assert tracker.calls == []  # the known set would be incomplete: deleting could hit a real trial's runs
    assert "kept" in lines[0]
