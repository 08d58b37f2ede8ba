"""The sweep stage without running a sweep: search space, searcher and scheduler, resources, sweep names."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipt_ray.config import TRIAL_SLOT, validate_config
from ipt_ray.sweep.driver import resolve_sweep
from ipt_ray.sweep.resources import reuse_actors, trial_resources
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
