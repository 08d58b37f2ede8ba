"""PruneEndedTrialCheckpoints inside a real Tune run: a completed trial is down to its latest checkpoint
while later trials still run (Tune calls the callback at each experiment snapshot it saves)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.no_shared_ray  # a one-CPU Ray of its own
def test_completed_trials_keep_only_their_latest_checkpoint_while_the_sweep_runs(tmp_path, monkeypatch):
    import ray
    from ray import tune

    from ipt_ray.sweep.trial_state import PruneEndedTrialCheckpoints

    def checkpointing_trainable(config: dict) -> None:  # defined here: Ray pickles it by value for its workers
        for epoch in range(4):
            folder = tempfile.mkdtemp()
            Path(folder, "state.bin").write_bytes(b"x" * 1000)
            tune.report({"acc": epoch + config["x"]}, checkpoint=tune.Checkpoint.from_directory(folder))
            time.sleep(0.2)
        time.sleep(1.0)  # a few snapshots pass before the next trial starts

    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")  # snapshots every second: the test stays short
    seen: list[int] = []

    class CountAtTrialStart(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            seen.extend(len(list(Path(t.checkpoint.path).parent.glob("checkpoint_*")))
                        for t in trials if t.status == "TERMINATED" and t.checkpoint is not None)

    prune = PruneEndedTrialCheckpoints(snapshots=1, min_age_s=0.0)
    ray.init(num_cpus=1, include_dashboard=False)
    try:
        grid = tune.Tuner(
            checkpointing_trainable, param_space={"x": tune.grid_search(list(range(4)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=1),
            run_config=tune.RunConfig(storage_path=str(tmp_path), name="prune", verbose=0,
                                      callbacks=[prune, CountAtTrialStart()],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=None))).fit()
    finally:
        ray.shutdown()
    assert prune.saved > 0  # Tune did call get_state at its snapshots
    assert seen and set(seen) == {1}  # every completed trial, seen while others ran: its latest checkpoint only
    assert sorted(len(list(Path(r.path).glob("checkpoint_*"))) for r in grid) == [1, 1, 1, 1]
    assert all(r.checkpoint.path.endswith("checkpoint_000003") for r in grid)
