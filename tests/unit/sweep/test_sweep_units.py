"""The sweep stage without running a sweep: search space, searcher and scheduler, resources, sweep names."""

from __future__ import annotations

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
