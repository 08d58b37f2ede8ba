"""A sweep split into Tune runs (``sweep.trials_per_run``) is still one sweep: one Optuna study, one MLflow
parent, one aggregate, and a killed driver resumes the run it was in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest

from ipt_ray.config import load_config
from ipt_ray.sweep import run_sweep
from ipt_ray.sweep import runs as runs_module
from ipt_ray.sweep.search import journal, make_scheduler, open_study

from test_sweep import _logged_epochs, kill_driver_once, runs_by_kind, sweep_yaml

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def assert_each_epoch_once(client, runs):
    """Every child logged epochs 1..n once each (n below the sweep's epochs where a scheduler stopped it)."""
    for run in runs:
        if run.data.tags.get("ipt.kind") == "trial":
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "dev_accuracy")]
            assert steps == list(range(1, len(steps) + 1)), (run.info.run_name, steps)


def test_a_sweep_in_three_tune_runs_shares_one_study_scheduler_parent_and_aggregate(tiny_bert, tmp_path, capsys,
                                                                                     monkeypatch):
    schedulers = []

    def recorded_scheduler(*args, **kwargs):
        schedulers.append(make_scheduler(*args, **kwargs))
        return schedulers[-1]

    monkeypatch.setattr(runs_module, "make_scheduler", recorded_scheduler)
    path = sweep_yaml(tmp_path, tiny_bert, num_samples=5, extra_sweep={
        "trials_per_run": 2, "scheduler": "asha", "grace_period": 1, "reduction_factor": 2})
    out = run_sweep(load_config(path), path)
    sweep_dir = tmp_path / "runs" / "sweeps" / out["name"]
    assert sorted(p.name for p in sweep_dir.glob("run-*")) == ["run-000", "run-001", "run-002"]
    runs_file = json.loads((sweep_dir / "runs.json").read_text())["runs"]
    assert [len(run) for run in runs_file] == [2, 2, 1]
    trial_ids = [trial["metrics"]["trial_id"] for run in runs_file for trial in run]
    assert len(set(trial_ids)) == 5

    # one study: the later runs' TPE saw the earlier trials (numbers go on), each trial told once
    study = open_study(journal(sweep_dir / "optuna.journal"))
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    assert sum(out["optuna_states"].values()) == 5

    client, runs, kinds = runs_by_kind(tmp_path)
    assert kinds == {"parent": 1, "trial": 10, "aggregate": 1}
    assert_each_epoch_once(client, runs)
    children = [r for r in runs if r.data.tags.get("ipt.kind") == "trial"]
    assert {r.data.tags["ipt.trial_id"] for r in children} == set(trial_ids)
    # one ASHA for all runs: its first rung (epoch 1) judged each trial against every earlier one
    assert len(schedulers) == 1
    milestone, recorded = schedulers[0]._brackets[0]._rungs[-1]
    assert milestone == 1 and sorted(recorded) == sorted(trial_ids)
    statuses = Counter(r.data.tags["ipt.status"] for r in children)
    assert out["optuna_states"].get("PRUNED", 0) == statuses["early_stopped"] // 2
    assert len(out["summary"].configs) == 5 and sum(c.best for c in out["summary"].configs) == 1
    printed = capsys.readouterr().out
    assert "Tune run 3 of 3 (1 trials)" in printed and "5 configs x 2 seeds" in printed


def sweep_cli(tmp_path, *args: str) -> tuple[subprocess.Popen, str, float]:
    """``ipt-ray sweep ARGS`` as its own process: (the process, its console, its wall seconds)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    driver = subprocess.Popen([sys.executable, "-m", "ipt_ray.cli", "sweep", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed, _ = driver.communicate(timeout=900)
    return driver, printed, time.perf_counter() - started


HANDED_OVER = r"(\d) Tune runs? left; going on in a fresh driver process \(pid (\d+)\)"


@pytest.mark.slow
@pytest.mark.no_shared_ray  # every process of the sweep starts its own Ray
def test_a_split_sweep_goes_on_in_fresh_processes_and_a_kill_in_its_second_run_resumes_that_run_only(tiny_bert,
                                                                                                     tmp_path):
    """The CLI's driver replaces itself after each Tune run (same pid). Killed in run 2 and `--resume`d: the
    finished run is not run again, run 2 is restored from its snapshot, the resumed process hands over to run 3,
    the scheduler read back holds every trial, no epoch is logged twice, and the printed wall counts every
    process of the resumed chain."""
    # grace_period 2: run 2's trial cannot be stopped before the kill (at its first logged epoch)
    path = sweep_yaml(tmp_path, tiny_bert, epochs=3, num_samples=3, train_samples=160, extra_sweep={
        "trials_per_run": 1, "scheduler": "same_epoch_median", "grace_period": 2, "min_samples_required": 1})
    sweeps = tmp_path / "runs" / "sweeps"

    def second_run_training():  # run 1 has ended and run 2 logged an epoch of its own
        return (any(sweeps.glob("*/runs.json")) and any(sweeps.glob("*/run-001/experiment_state-*.json"))
                and len(_logged_epochs(tmp_path / "mlflow.db")) > 2)  # run 1: 1 trial x 2 seeds

    kill_driver_once(tmp_path, path, second_run_training, 300, "an epoch of the second Tune run")
    killed = (tmp_path / "driver.log").read_text(errors="replace")
    assert len(re.findall(HANDED_OVER, killed)) == 1, killed[-3000:]  # run 1 handed over, then the kill
    sweep_dir = next(sweeps.glob("*/runs.json")).parent
    first_run = json.loads((sweep_dir / "runs.json").read_text())["runs"]
    assert len(first_run) == 1

    driver, printed, elapsed = sweep_cli(tmp_path, str(path), "--resume")
    assert driver.returncode == 0, printed[-4000:]
    assert "1 of 3 Tune runs finished" in printed and "2 of 3 Tune runs finished" in printed
    assert "Tune run 1 of 3" not in printed and printed.count("Tune run 3 of 3") == 1  # run 1 not run again
    assert re.search(r"resuming .*run-001", printed), printed[-4000:]  # run 2 from Tune's snapshot of it
    assert re.findall(HANDED_OVER, printed) == [("1", str(driver.pid))], printed[-4000:]  # same pid

    runs_file = json.loads((sweep_dir / "runs.json").read_text())["runs"]
    assert runs_file[0] == first_run[0] and [len(run) for run in runs_file] == [1, 1, 1]
    trial_ids = [t["metrics"]["trial_id"] for run in runs_file for t in run]
    assert len(set(trial_ids)) == 3
    assert sorted(runs_module.read_scheduler(sweep_dir).curves) == sorted(trial_ids)  # one scheduler throughout
    study = open_study(journal(sweep_dir / "optuna.journal"))
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    client, runs, kinds = runs_by_kind(tmp_path)
    assert kinds == {"parent": 1, "trial": 6, "aggregate": 1}
    assert_each_epoch_once(client, runs)
    assert all(r.info.status == "FINISHED" for r in runs if r.data.tags.get("ipt.kind") == "trial")
    [summary] = re.findall(r"3 configs x 2 seeds in (\d+)s", printed)
    assert int(summary) >= 0.6 * elapsed  # the wall counts both processes of the resumed chain
