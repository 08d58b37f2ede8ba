"""The sweep stage without running a sweep: search space, searcher and scheduler, resources, sweep names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ipt_ray.config import TRIAL_SLOT, validate_config
from ipt_ray.sweep.driver import resolve_sweep
from ipt_ray.sweep.resources import IdleCpuThreads, RayHandle, reuse_actors, shares_idle_cpus, trial_resources
from ipt_ray.sweep.search import make_scheduler, make_searcher
from ipt_ray.sweep.space import decode_params, encode_choice, grid_space, to_tune_space


def config(**sweep):
    return validate_config({"sweep": {"search_space": {
        "method.prompt_length": {"type": "choice", "values": [4, 8]},
        "train.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2},
        "method": {"type": "choice", "values": [{"strategy": "encoder_ipt", "encoder": "rnn"}]},
    }, **sweep}})


def test_section_choices_travel_as_json_and_come_back_as_overrides():
    space = to_tune_space(config().sweep.search_space)
    sampled = {key: dim.sample() for key, dim in space.items()}
    assert isinstance(sampled["method"], str) and 1e-3 <= sampled["train.lr"] <= 1e-2
    decoded = decode_params(sampled)
    assert decoded["method"] == {"strategy": "encoder_ipt", "encoder": "rnn"}
    assert decode_params({"method": encode_choice({"strategy": "random_ipt"})}) == {"method": {"strategy": "random_ipt"}}


def test_grid_space_takes_choices_only():
    cfg = validate_config({"sweep": {"searcher": "grid", "search_space": {
        "method.prompt_length": {"type": "choice", "values": [4, 8]}}}})
    assert set(grid_space(cfg.sweep.search_space)) == {"method.prompt_length"}


def test_searcher_is_seeded_optuna_and_schedulers_act_on_epochs():
    from ray.tune.search.optuna import OptunaSearch

    searcher = make_searcher(config(searcher_seed=3), "dev_accuracy", max_epochs=4)
    assert isinstance(searcher, OptunaSearch) and searcher.metric == "dev_accuracy"
    assert make_scheduler(config(), 4) is None
    asha = make_scheduler(config(scheduler="asha", grace_period=1), 4)
    assert type(asha).__name__ == "AsyncHyperBandScheduler" and asha._time_attr == "epoch"
    assert type(make_scheduler(config(scheduler="median"), 4)).__name__ == "MedianStoppingRule"


def test_in_process_trials_reserve_cpus_and_train_trials_a_slot():
    assert trial_resources(validate_config({"cluster": {"num_workers": 0, "cpus_per_trial": 2}})) == {"CPU": 2}
    assert trial_resources(validate_config({"cluster": {"num_workers": 2}})) == {"CPU": 0, TRIAL_SLOT: 1}
    assert reuse_actors(validate_config({"cluster": {"num_workers": 0}})) is True


def test_a_new_sweep_gets_a_timestamped_name_and_resume_needs_one(tmp_path):
    cfg = validate_config({"train": {"output_dir": str(tmp_path / "runs")}, "sweep": {"name": "mine"}})
    name, sweep_id, resuming = resolve_sweep(cfg, Path("exp.yaml"), resume=False)
    assert name.startswith("mine-") and sweep_id == name and not resuming
    with pytest.raises(ValueError, match="nothing to resume"):
        resolve_sweep(cfg, Path("exp.yaml"), resume=True)


class FakeTrial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def feed(scheduler, trial, epoch, value):
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "dev_accuracy_mean": value})


def test_same_epoch_median_stops_a_poor_trial_that_runs_ahead_once_a_better_one_catches_up():
    """The quickstart's case: a cheap poor config reports each epoch before a better one."""
    from ray.tune.schedulers import TrialScheduler

    scheduler = make_scheduler(config(scheduler="same_epoch_median", grace_period=1, min_samples_required=1), 4)
    scheduler.set_search_properties("dev_accuracy_mean", "max")
    fast_poor, slow_good, late_poor = FakeTrial("fast"), FakeTrial("slow"), FakeTrial("late")
    assert feed(scheduler, fast_poor, 1, 0.55) == TrialScheduler.CONTINUE  # nobody to compare with yet
    assert feed(scheduler, slow_good, 1, 0.70) == TrialScheduler.CONTINUE  # above the fast one at epoch 1
    # the fast one's epoch 2 (its best so far 0.60) is compared with the good one's best up to epoch 1
    assert feed(scheduler, fast_poor, 2, 0.60) == TrialScheduler.STOP
    assert feed(scheduler, slow_good, 2, 0.72) == TrialScheduler.CONTINUE
    # a later trial meets both at its epoch 1: median of 0.55 (the stopped one still counts) and 0.70
    assert feed(scheduler, late_poor, 1, 0.60) == TrialScheduler.STOP
    assert feed(scheduler, FakeTrial("late_good"), 1, 0.66) == TrialScheduler.CONTINUE


def test_same_epoch_median_minimises_and_waits_for_enough_others():
    from ray.tune.schedulers import TrialScheduler

    scheduler = make_scheduler(config(scheduler="same_epoch_median", grace_period=2, min_samples_required=2), 4)
    scheduler.set_search_properties("dev_accuracy_mean", "min")
    a, b, c = FakeTrial("a"), FakeTrial("b"), FakeTrial("c")
    assert feed(scheduler, a, 1, 9.0) == TrialScheduler.CONTINUE  # within the grace period
    assert feed(scheduler, a, 2, 1.0) == TrialScheduler.CONTINUE
    assert feed(scheduler, b, 2, 2.0) == TrialScheduler.CONTINUE  # one other: not enough
    assert feed(scheduler, c, 2, 1.8) == TrialScheduler.STOP  # above the median loss of 1.0 and 2.0 (1.5)
    assert feed(scheduler, FakeTrial("d"), 2, 1.4) == TrialScheduler.CONTINUE  # below the median of 1.0, 2.0, 1.8


def test_a_trial_takes_the_cpus_no_trial_holds_on_its_own_local_ray(monkeypatch):
    import ray
    import torch

    threads = torch.get_num_threads()
    try:
        free = {"CPU": 1.0}
        monkeypatch.setattr(ray, "available_resources", lambda: dict(free))
        monkeypatch.setattr("os.cpu_count", lambda: 4)
        rebalance = IdleCpuThreads(own_cpus=1, every_s=0.0)
        rebalance()
        assert torch.get_num_threads() == 2
        free["CPU"] = 0.0
        rebalance()
        assert torch.get_num_threads() == 1
        free["CPU"] = 9.0
        rebalance()
        assert torch.get_num_threads() == 4  # never more than the machine's cores
    finally:
        torch.set_num_threads(threads)
    local, joined = RayHandle(True, "local"), RayHandle(False, "ray://head:10001")
    assert shares_idle_cpus(validate_config({}), local)
    assert not shares_idle_cpus(validate_config({}), joined)  # a cluster's free CPUs are not this machine's
    assert not shares_idle_cpus(validate_config({"cluster": {"num_workers": 1}}), local)
    assert not shares_idle_cpus(validate_config({"train": {"num_threads": 1}}), local)


def test_trials_per_run_splits_a_sweep_and_refuses_a_grid():
    from ipt_ray.config import ConfigError
    from ipt_ray.sweep.driver import splits_into_runs
    from ipt_ray.sweep.runs import run_sizes

    assert run_sizes(500, 100) == [100] * 5 and run_sizes(5, 2) == [2, 2, 1]
    assert splits_into_runs(config(num_samples=5, trials_per_run=2))
    assert not splits_into_runs(config(num_samples=5, trials_per_run=5)) and not splits_into_runs(config(num_samples=5))
    # by default a large sweep is split (bounded driver memory); null asks for one run; a grid is one run
    assert config(num_samples=600).sweep.trials_per_run == 250 and splits_into_runs(config(num_samples=600))
    assert not splits_into_runs(config(num_samples=600, trials_per_run=None))
    grid = validate_config({"sweep": {"searcher": "grid", "search_space": {
        "method.prompt_length": {"type": "choice", "values": list(range(1, 400))}}}})
    assert grid.sweep.trials_per_run is None and not splits_into_runs(grid)
    assert validate_config(grid.model_dump()).sweep.trials_per_run is None  # dumped and read back: the same
    with pytest.raises(ConfigError, match="trials_per_run needs sweep.searcher 'optuna' or 'random', not 'grid'"):
        validate_config({"sweep": {"searcher": "grid", "trials_per_run": 2, "search_space": {
            "method.prompt_length": {"type": "choice", "values": [4, 8]}}}})
    with pytest.raises(ConfigError, match="trials_per_run"):
        config(trials_per_run=0)


def test_a_sweep_resumed_from_one_tune_run_on_disk_goes_on_as_that_run(tmp_path):
    """A 600-trial sweep started as one run (before the default split) and resumed under the default of 250."""
    from ipt_ray.sweep.driver import SweepPlan, started_as_one_run

    def plan(resuming):
        return SweepPlan(cfg=config(num_samples=600), config_path=tmp_path / "x.yaml", name="s", sweep_id="i",
                         resuming=resuming, uri="sqlite:///x", root=tmp_path, sweep_dir=tmp_path / "s")

    (tmp_path / "s" / "run-000").mkdir(parents=True)  # a split sweep's first run: still split
    assert not started_as_one_run(plan(True))
    (tmp_path / "s" / "tuner.pkl").write_bytes(b"")  # one run's Tuner and its snapshot
    (tmp_path / "s" / "experiment_state-2026-12-06_07-00-00.json").write_text("{}")
    assert started_as_one_run(plan(True)) and not started_as_one_run(plan(False))


def test_a_scheduler_that_holds_metric_and_mode_keeps_them_for_every_later_run():
    """A later Tune run (TuneConfig without metric and mode) passes None: the scheduler keeps its own."""
    from ray.tune.schedulers import TrialScheduler

    for name in ("asha", "median", "same_epoch_median"):
        scheduler = make_scheduler(config(scheduler=name), 4, target="dev_accuracy_mean")
        assert scheduler.set_search_properties(None, None)  # what Tune calls at each run's start
        assert scheduler.metric == "dev_accuracy_mean"
        assert not scheduler.set_search_properties("dev_accuracy_mean", "max")  # Tune refuses a second one
    minimising = config(scheduler="same_epoch_median", min_samples_required=1, mode="min")
    scheduler = make_scheduler(minimising, 4, target="dev_loss_mean")
    scheduler.set_search_properties(None, None)
    a, b = FakeTrial("a"), FakeTrial("b")
    assert scheduler.on_trial_result(None, a, {"epoch": 1, "dev_loss_mean": 1.0}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, b, {"epoch": 1, "dev_loss_mean": 2.0}) == TrialScheduler.STOP


def test_split_runs_share_one_optuna_study_on_disk_and_abandoned_trials_fail(tmp_path):
    import optuna

    from ipt_ray.sweep.search import fail_abandoned_trials, journal, open_study

    study_file = tmp_path / "optuna.journal"
    assert open_study(journal(study_file)) is None
    first = make_searcher(config(), "dev_accuracy_mean", 4, storage=journal(study_file), run=0)
    second = make_searcher(config(), "dev_accuracy_mean", 4, storage=journal(study_file), run=1)  # a new driver
    space = to_tune_space(config().sweep.search_space)
    for searcher in (first, second):
        searcher.set_search_properties(None, None, space)
    proposed_first = first.suggest("t1")
    first.on_trial_complete("t1", {"dev_accuracy_mean": 0.7, "epoch": 4})
    assert second.suggest("t2") != proposed_first  # its own seed: not the first run's draw again
    study = open_study(journal(study_file))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]
    assert fail_abandoned_trials(study) == 1  # t2 never ended: a killed driver's trial
    assert [t.state.name for t in open_study(journal(study_file)).trials] == ["COMPLETE", "FAIL"]


def test_finished_runs_are_kept_to_what_the_aggregate_reads_and_read_back(tmp_path):
    import numpy as np

    from ipt_ray.results import results_from_tune
    from ipt_ray.sweep.runs import read_runs, trial_record, write_runs

    class Result:  # what Tune's ResultGrid yields
        metrics = {"trial_id": "a_00000", "epoch": 2, "time_total_s": 4.5, "dev_accuracy/seed_0": 0.75,
                   "dev_accuracy_mean": 0.75, "test_accuracy/seed_0": 0.5, "lr": 0.01, "config": {"x": 1}}
        config = {"method.prompt_length": np.int64(4), "train.lr": 0.003}
        error = None
        path = "/tmp/run-000/trial"

    record = trial_record(Result())
    assert set(record.metrics) == {"trial_id", "epoch", "time_total_s", "dev_accuracy/seed_0", "dev_accuracy_mean",
                                   "test_accuracy/seed_0"}
    assert read_runs(tmp_path) == []
    write_runs(tmp_path, [[record]])
    [[back]] = read_runs(tmp_path)
    assert back.metrics == record.metrics
    # the config id MLflow's runs are tagged with (from Tune's config, a numpy int in it) is the one read back
    [fresh], [read] = results_from_tune([Result()], "accuracy", [0], 2), results_from_tune([back], "accuracy", [0], 2)
    assert (read.config_id, read.value, read.test, read.status) == (fresh.config_id, 0.75, 0.5, "completed")


def test_a_tune_run_killed_before_its_first_snapshot_is_not_restored(tmp_path):
    """A Tuner writes tuner.pkl when made, its experiment state only at its first snapshot; restoring the
    former alone gave a run whose searcher had no search space (a killed driver in bench.scale)."""
    from ipt_ray.sweep.driver import has_snapshot

    (tmp_path / "tuner.pkl").write_bytes(b"")
    assert not has_snapshot(tmp_path)
    (tmp_path / "experiment_state-2026-12-05_08-24-30.json").write_text("{}")
    assert has_snapshot(tmp_path)
    assert not has_snapshot(tmp_path / "run-009")


def test_a_restored_searcher_leaves_a_trial_the_killed_driver_already_told_the_journal(tmp_path):
    """A split sweep's driver killed after its Tune snapshot but after a trial ended: the restored run reruns
    the trial (its snapshot has it running) while the shared journal holds it COMPLETE. Seen in CI as
    ``UpdateFinishedTrialError`` from the rerun's first result."""
    from ipt_ray.sweep.search import journal, open_study

    study_file = tmp_path / "optuna.journal"
    space = to_tune_space(config().sweep.search_space)
    killed = make_searcher(config(), "dev_accuracy_mean", 4, storage=journal(study_file))
    killed.set_search_properties(None, None, space)
    killed.suggest("t1")
    killed.save(str(tmp_path / "searcher.pkl"))  # Tune's snapshot: t1 running
    killed.on_trial_complete("t1", {"dev_accuracy_mean": 0.7, "epoch": 4})  # told after the snapshot
    restored = make_searcher(config(), "dev_accuracy_mean", 4, storage=journal(study_file))
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_result("t1", {"dev_accuracy_mean": 0.5, "epoch": 1, "training_iteration": 1})
    restored.on_trial_complete("t1", {"dev_accuracy_mean": 0.6, "epoch": 4})
    [trial] = open_study(journal(study_file)).trials
    assert trial.state.name == "COMPLETE" and trial.value == 0.7 and not trial.intermediate_values


def test_a_scheduler_goes_on_from_where_the_last_finished_run_left_it(tmp_path):
    """A driver that goes on in a fresh process (or resumes between runs) reads the scheduler back from the
    sweep's folder: the trials of the earlier runs still count, its metric and mode are kept."""
    from ray.tune.schedulers import TrialScheduler

    from ipt_ray.sweep.runs import read_scheduler, write_scheduler

    class Controller:  # what the median rule asks Tune (trials waiting for a slot)
        def get_live_trials(self):
            return []

    assert read_scheduler(tmp_path) is None
    write_scheduler(tmp_path, None)  # a sweep without a scheduler writes nothing
    assert read_scheduler(tmp_path) is None
    for name in ("asha", "median", "same_epoch_median"):
        scheduler = make_scheduler(config(scheduler=name, grace_period=1, min_samples_required=1), 4,
                                   target="dev_accuracy_mean")
        scheduler.set_search_properties(None, None)
        for trial_id, value in (("a", 0.9), ("b", 0.8)):
            scheduler.on_trial_add(None, FakeTrial(trial_id))
            scheduler.on_trial_result(Controller(), FakeTrial(trial_id), {"epoch": 1, "dev_accuracy_mean": value,
                                                                  "training_iteration": 1, "time_total_s": 1.0})
        write_scheduler(tmp_path, scheduler)
        back = read_scheduler(tmp_path)
        assert type(back).__name__ == type(scheduler).__name__ and back.metric == "dev_accuracy_mean", name
        poor = FakeTrial("c")
        back.on_trial_add(None, poor)
        decision = back.on_trial_result(Controller(), poor, {"epoch": 1, "dev_accuracy_mean": 0.1, "training_iteration": 1,
                                                     "time_total_s": 1.0})
        assert decision == TrialScheduler.STOP, name  # judged against a and b of the earlier run
    assert not list(tmp_path.glob("*.tmp"))


def test_a_sweeps_driver_loads_no_torch_until_a_config_is_checked():
    """The driver module tree (what a continued sweep's fresh process runs) imports neither torch nor
    transformers: trials train in their own processes, and the preflight that needs transformers runs only in
    a sweep's first process. ~200 MB of driver RSS and a few seconds per process (bench/results/scale_bounded.md)."""
    probe = ("import sys, ipt_ray.cli.sweep, ipt_ray.sweep, ipt_ray.tracking, ipt_ray.tracking.callback; "
             "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
