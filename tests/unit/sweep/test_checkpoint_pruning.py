"""PruneEndedTrialCheckpoints: a completed trial keeps its latest checkpoint, once no snapshot can name another."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ipt_ray.sweep.driver import prune_checkpoints
from ipt_ray.sweep.trial_state import PruneEndedTrialCheckpoints


def trial_with_checkpoints(root: Path, name: str, n: int) -> SimpleNamespace:
    trial_dir = root / name
    for i in range(n):
        (trial_dir / f"checkpoint_{i:06d}").mkdir(parents=True)
        (trial_dir / f"checkpoint_{i:06d}" / "trainer_state.pt").write_bytes(b"x" * 10)
    latest = trial_dir / f"checkpoint_{n - 1:06d}"
    return SimpleNamespace(checkpoint=SimpleNamespace(path=str(latest)), path=str(trial_dir))


def names(trial: SimpleNamespace) -> list[str]:
    return sorted(p.name for p in Path(trial.path).iterdir())


def test_a_completed_trial_keeps_its_latest_checkpoint_after_three_snapshots_and_a_minute(tmp_path):
    now = [0.0]
    prune = PruneEndedTrialCheckpoints(snapshots=3, min_age_s=60.0, clock=lambda: now[0])
    done, running = trial_with_checkpoints(tmp_path, "done", 5), trial_with_checkpoints(tmp_path, "running", 3)
    prune.on_trial_complete(0, [], done)
    for _ in range(2):  # a snapshot saved before the trial's end may still be the one on storage
        assert prune.get_state() is None
    now[0] = 61.0
    prune.get_state()
    assert names(done) == ["checkpoint_000004"]
    assert names(running) == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002"]  # not ended: untouched
    assert prune.pending == []


def test_nothing_goes_before_the_minute_however_many_snapshots(tmp_path):
    now = [0.0]
    prune = PruneEndedTrialCheckpoints(snapshots=3, min_age_s=60.0, clock=lambda: now[0])
    done = trial_with_checkpoints(tmp_path, "done", 4)
    prune.on_trial_complete(0, [], done)
    for _ in range(10):
        prune.get_state()
    assert len(names(done)) == 4 and len(prune.pending) == 1


def test_a_retried_trials_newer_checkpoints_are_never_deleted(tmp_path):
    prune = PruneEndedTrialCheckpoints(snapshots=1, min_age_s=0.0)
    done = trial_with_checkpoints(tmp_path, "done", 3)
    prune.on_trial_complete(0, [], done)
    (Path(done.path) / "checkpoint_000007").mkdir()  # written later, e.g. by a resumed run of the same trial
    prune.get_state()
    assert names(done) == ["checkpoint_000002", "checkpoint_000007"]


def test_a_trial_without_a_checkpoint_is_ignored(tmp_path):
    prune = PruneEndedTrialCheckpoints(snapshots=1, min_age_s=0.0)
    prune.on_trial_complete(0, [], SimpleNamespace(checkpoint=None))
    prune.get_state()
    assert prune.pending == []


def test_trials_whose_weights_serve_nothing_once_ended_keep_no_checkpoint(tmp_path):
    # a few-shot select phase: only the dev curve of a cross-validation trial chooses anything
    prune = PruneEndedTrialCheckpoints(snapshots=1, min_age_s=0.0, keep_latest=False)
    done, running = trial_with_checkpoints(tmp_path, "done", 3), trial_with_checkpoints(tmp_path, "running", 2)
    prune.on_trial_complete(0, [], done)
    (Path(done.path) / "checkpoint_000007").mkdir()  # a retried run's newer checkpoint stays
    prune.get_state()
    assert names(done) == ["checkpoint_000007"] and len(names(running)) == 2


def test_at_the_end_a_phase_without_use_for_weights_drops_every_completed_trials_checkpoints(tmp_path):
    ok, failed = trial_with_checkpoints(tmp_path, "ok", 3), trial_with_checkpoints(tmp_path, "failed", 3)
    grid = [SimpleNamespace(checkpoint=ok.checkpoint, path=ok.path, error=None),
            SimpleNamespace(checkpoint=failed.checkpoint, path=failed.path, error=RuntimeError("boom"))]
    prune_checkpoints(grid, keep_latest=False)
    assert names(ok) == [] and names(failed) == ["checkpoint_000002"]  # a failed trial may be resumed
    kept = trial_with_checkpoints(tmp_path, "kept", 2)
    prune_checkpoints([SimpleNamespace(checkpoint=kept.checkpoint, path=kept.path, error=None)])
    assert names(kept) == ["checkpoint_000001"]
