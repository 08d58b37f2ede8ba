"""What the driver keeps of a trial: TrimEndedTrials (an ended trial keeps Tune's running statistics of the
sweep metric and the record of its latest checkpoint only), a sweep's fit() with Tune's lean switches
(no per-trial file loggers, no result copied into each checkpoint's record), and the curves kept instead."""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import pytest
from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment import Trial
from ray.tune.utils.callback import _create_default_callbacks

from ipt_ray.sweep.trial_state import (AUTO_LOGGERS_OFF, CHECKPOINT_METRICS_OFF, ENCODER_LOG_KEY, RESULT_FILES_LOGGER,
                                      EpochCurves, TrimEndedTrials, forget_encoder_log_keys, lean_trial_records,
                                      read_curves)


def result(epoch: int) -> dict[str, float]:
    out = {"training_iteration": epoch, "epoch": epoch, "dev_accuracy_mean": 0.5 + 0.1 * epoch}
    out.update({f"dev_loss/seed_{s}": 1.0 - 0.1 * epoch for s in range(5)})
    return out


def ended_trial() -> Trial:
    trial = Trial("ipt_trial", config={"x": 1}, stub=True)
    for epoch in (1, 2):
        trial.update_last_result(result(epoch))
    return trial


def test_an_ended_trial_keeps_the_sweep_metric_and_its_last_result():
    trial = ended_trial()
    assert "dev_loss/seed_0" in trial.metric_analysis
    size_before = len(trial.run_metadata.get_json_state())
    TrimEndedTrials(["dev_accuracy_mean"]).on_trial_complete(0, [trial], trial)
    assert set(trial.metric_analysis) == set(trial.metric_n_steps) == {"dev_accuracy_mean"}
    assert trial.metric_analysis["dev_accuracy_mean"]["max"] == trial.metric_analysis["dev_accuracy_mean"]["last"] == 0.7
    assert trial.last_result["dev_loss/seed_0"] == 0.8  # what the reports and the MLflow callback read
    state = trial.run_metadata.get_json_state()  # the experiment snapshot: rebuilt, smaller
    assert len(state) < size_before and "dev_loss/seed_0\": {" not in state
    assert json.loads(state)["metric_analysis"] == {"dev_accuracy_mean": trial.metric_analysis["dev_accuracy_mean"]}


def test_a_failed_trial_is_trimmed_too_and_anything_without_tune_state_is_left_alone():
    trial = ended_trial()
    TrimEndedTrials(["dev_accuracy_mean"]).on_trial_error(0, [trial], trial)
    assert set(trial.metric_analysis) == {"dev_accuracy_mean"}
    TrimEndedTrials(["dev_accuracy_mean"]).trim(object())  # no run_metadata: nothing to do, no error


def test_the_keys_tunes_snapshot_encoder_logs_once_per_object_are_forgotten_at_each_trials_end():
    from ray.util import debug

    before = {key for key in debug._logged if key.startswith(ENCODER_LOG_KEY)}
    debug.log_once("some other warning")
    trials = [ended_trial() for _ in range(3)]
    for trial in trials:
        trial.get_json_state()  # what each experiment snapshot does: the deques fall back to cloudpickle
    made = {key for key in debug._logged if key.startswith(ENCODER_LOG_KEY)} - before
    assert any("deque(" in key for key in made)  # one key per value history: grows with trials and epochs
    TrimEndedTrials(["dev_accuracy_mean"]).on_trial_complete(0, trials, trials[0])
    assert not any(key.startswith(ENCODER_LOG_KEY) for key in debug._logged)
    assert "some other warning" in debug._logged  # Ray's other once-only messages stay once-only
    assert forget_encoder_log_keys() == 0


def logger_callbacks() -> list[str]:
    return [type(c).__name__ for c in _create_default_callbacks([]) if "Logger" in type(c).__name__]


@pytest.mark.parametrize("before", [None, "0"])
def test_a_sweep_fits_with_tunes_lean_switches_and_leaves_the_environment_as_it_found_it(before, monkeypatch):
    for name in (AUTO_LOGGERS_OFF, CHECKPOINT_METRICS_OFF):
        if before is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, before)
    assert logger_callbacks()  # Tune's CSV / JSON (/ TensorBoard) loggers by default
    level = logging.getLogger(RESULT_FILES_LOGGER).level
    with lean_trial_records():
        assert logger_callbacks() == []  # what Tune builds when fit() starts
        assert record_metrics(register_checkpoints(Trial("ipt_trial", config={}, stub=True), 1)) == [{}]
        assert logging.getLogger(RESULT_FILES_LOGGER).level == logging.ERROR
    assert os.environ.get(AUTO_LOGGERS_OFF) == before == os.environ.get(CHECKPOINT_METRICS_OFF)
    assert logger_callbacks() and logging.getLogger(RESULT_FILES_LOGGER).level == level
    assert record_metrics(register_checkpoints(Trial("ipt_trial", config={}, stub=True), 1)) == [result(1)]


def register_checkpoints(trial: Trial, epochs: int, root: str = "/tmp/ipt-ray-test-checkpoints") -> Trial:
    """What Tune's driver does with each checkpoint a trial reports (``Trial.on_checkpoint`` without storage)."""
    for epoch in range(1, epochs + 1):
        checkpoint = Checkpoint(f"{root}/checkpoint_{epoch - 1:06d}")
        trial.run_metadata.checkpoint_manager.register_checkpoint(_TrainingResult(checkpoint, result(epoch)))
    return trial


def record_metrics(trial: Trial) -> list[dict]:
    return [r.metrics for r in trial.run_metadata.checkpoint_manager.best_checkpoint_results]


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("ending", ["complete", "error"])
def test_an_ended_trial_keeps_the_record_of_its_latest_checkpoint_only(lean, ending, monkeypatch):
    monkeypatch.setenv(CHECKPOINT_METRICS_OFF, "1" if lean else "0")
    trial = register_checkpoints(ended_trial(), epochs=3)
    manager = trial.run_metadata.checkpoint_manager
    assert record_metrics(trial) == ([{}] * 3 if lean else [result(1), result(2), result(3)])
    size_before = len(trial.run_metadata.get_json_state())
    getattr(TrimEndedTrials(["dev_accuracy_mean"]), f"on_trial_{ending}")(0, [trial], trial)
    assert [r.checkpoint.path for r in manager.best_checkpoint_results] == [manager.latest_checkpoint_result.checkpoint.path]
    assert manager.latest_checkpoint_result.checkpoint.path.endswith("checkpoint_000002")  # what a resume reads
    # A failed trial may be retried from it (Tune then takes its metrics as the last result); a completed one not.
    assert manager.latest_checkpoint_result.metrics == ({} if ending == "complete" else result(3))
    assert len(trial.run_metadata.get_json_state()) < size_before  # the snapshot is rebuilt without them


def test_epoch_curves_keep_each_trials_metric_per_epoch_and_the_latest_report_of_an_epoch_wins(tmp_path):
    path = tmp_path / "select" / "curves.jsonl"
    curves = EpochCurves(path, "accuracy")
    one, two = Trial("ipt_trial", config={}, stub=True), Trial("ipt_trial", config={}, stub=True)
    report = {"epoch": 1, "dev_accuracy/seed_3": 0.5, "test_accuracy/seed_3": 0.4, "dev_loss/seed_3": 0.9,
              "dev_accuracy_mean": 0.5, "time_total_s": 1.0}
    curves.on_trial_result(0, [], one, report)
    curves.on_trial_result(0, [], two, {**report, "dev_accuracy/seed_3": 0.6})
    curves.on_trial_result(0, [], one, {**report, "epoch": 2, "dev_accuracy/seed_3": 0.7})
    curves.on_trial_result(0, [], one, {**report, "epoch": 2, "dev_accuracy/seed_3": 0.8})  # resumed: again
    with path.open("a") as f:
        f.write('{"trial_id": "' + one.trial_id + '", "epoch": 3, "dev_acc')  # a driver killed mid-line
    history = read_curves(path)
    assert history[one.trial_id] == [{"epoch": 1, "dev_accuracy/seed_3": 0.5, "test_accuracy/seed_3": 0.4},
                                     {"epoch": 2, "dev_accuracy/seed_3": 0.8, "test_accuracy/seed_3": 0.4}]
    assert [r["dev_accuracy/seed_3"] for r in history[two.trial_id]] == [0.6]
    assert read_curves(tmp_path / "none.jsonl") == {}


def test_trial_curves_read_the_history_then_tunes_files_then_the_last_result():
    import pandas as pd

    from ipt_ray.sweep.selection import DATA_SEED, trial_curves

    def result(trial_id, frame):
        return SimpleNamespace(config={DATA_SEED: 0}, error=None, metrics_dataframe=frame,
                               metrics={"trial_id": trial_id, "epoch": 2, "dev_accuracy/seed_0": 0.2})

    rows = [{"epoch": 1, "dev_accuracy/seed_0": 0.6}, {"epoch": 2, "dev_accuracy/seed_0": 0.5}]
    grid = [result("a", pd.DataFrame()), result("b", pd.DataFrame(rows)), result("c", pd.DataFrame())]
    curves = {c.trial_id: c for c in trial_curves(grid, "accuracy", 2, history={"a": rows})}
    assert curves["a"].dev == {1: 0.6, 2: 0.5} and curves["a"].status == "completed"
    assert curves["b"].dev == {1: 0.6, 2: 0.5}  # a sweep from before: Tune's result.json
    assert curves["c"].dev == {2: 0.2}  # neither: its last result alone
