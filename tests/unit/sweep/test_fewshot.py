"""sweep.few_shot: its config errors, the two phases' trial points, and cross validation's choice of
hyper-parameters on synthetic curves (per data seed, fold means, ties, test never read)."""

from __future__ import annotations

import math

import pytest

from ipt_ray.config import ConfigError, ExperimentConfig
from ipt_ray.results import aggregate
from ipt_ray.sweep.selection import (Choice, TrialCurve, choices_from_json, choices_to_json, choose_hyper,
                                     final_points, final_results, few_shot_keys, phase_config_id, select_points,
                                     selected_epoch)

METHODS = [{"strategy": "prompt_tuning", "injection": "prefix"}, {"strategy": "random_ipt", "injection": "prefix"}]


def fewshot(task=None, few_shot=None, **sweep):
    space = sweep.pop("search_space", None) or {
        "method": {"type": "choice", "values": METHODS},
        "train.lr": {"type": "choice", "values": [0.01, 0.03]},
        "method.prompt_length": {"type": "choice", "values": [4, 8]}}
    return {"task": {"name": "cb", "few_shot_k": 8, "cv_folds": 2, **(task or {})},
            "sweep": {"searcher": "grid", "search_space": space, "few_shot": few_shot or {}, **sweep}}


def config(**kw) -> ExperimentConfig:
    return ExperimentConfig.from_dict(fewshot(**kw))


# ---------------------------------------------------------------- config


def test_defaults_and_compare_keys():
    cfg = config()
    assert cfg.sweep.few_shot.data_seeds == [0, 1, 2, 3, 4]
    assert few_shot_keys(cfg) == (["method"], ["train.lr", "method.prompt_length"])
    cfg = config(search_space={"method.strategy": {"type": "choice", "values": ["prompt_tuning", "random_ipt"]},
                               "task.name": {"type": "choice", "values": ["cb", "rte"]},
                               "train.lr": {"type": "choice", "values": [0.01]}})
    assert few_shot_keys(cfg) == (["method.strategy", "task.name"], ["train.lr"])
    cfg = config(few_shot={"compare": ["method", "method.prompt_length"]})
    assert few_shot_keys(cfg) == (["method", "method.prompt_length"], ["train.lr"])
    assert ExperimentConfig().sweep.few_shot is None  # off unless asked for


@pytest.mark.parametrize("data, match", [
    (fewshot(searcher="optuna"), "needs sweep.searcher 'grid', not 'optuna'.*same hyper-parameter values"),
    (fewshot(scheduler="asha"), "needs sweep.scheduler 'none'"),
    (fewshot(few_shot={"compare": ["train.batch_size"]}), r"compare: \['train.batch_size'\] are not search keys"),
    (fewshot(few_shot={"data_seeds": [1, 1]}), "data_seeds must be distinct"),
    (fewshot(few_shot={"data_seeds": []}), "data_seeds"),
    (fewshot(few_shot={"folds": 3}), "few_shot.folds"),
    (fewshot(search_space={"task.cv_fold": {"type": "choice", "values": [0, 1]}}),
     "sweep.search_space.task.cv_fold: sweep.few_shot runs the folds"),
    (fewshot(search_space={"task.data_seed": {"type": "choice", "values": [0, 1]}}), "task.data_seed"),
    (fewshot(search_space={"task": {"type": "choice", "values": [{"name": "cb", "data_seed": 2}]}}),
     "may not set cv_fold or data_seed"),
    (fewshot(task={"few_shot_k": None}), "sweep.few_shot needs task.few_shot_k"),
])
def test_config_errors_name_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_dict(data)


def test_k_may_come_from_every_task_choice():
    data = fewshot(task={"few_shot_k": None}, search_space={"task": {"type": "choice", "values": [
        {"name": "cb", "few_shot_k": 8}, {"name": "rte", "few_shot_k": 16}]}, "train.lr": {"type": "choice", "values": [0.1]}})
    assert few_shot_keys(ExperimentConfig.from_dict(data)) == (["task"], ["train.lr"])


# ---------------------------------------------------------------- points and ids


def test_select_crosses_groups_hyper_seeds_and_folds_and_final_takes_the_choices():
    cfg = config(few_shot={"data_seeds": [5, 6]})
    points = select_points(cfg)
    assert len(points) == 2 * 4 * 2 * 2
    assert points[0] == {"method": '{"injection": "prefix", "strategy": "prompt_tuning"}', "train.lr": 0.01,
                         "method.prompt_length": 4, "task.data_seed": 5, "task.cv_fold": 0}
    assert {(p["task.data_seed"], p["task.cv_fold"]) for p in points} == {(5, 0), (5, 1), (6, 0), (6, 1)}
    choice = Choice({"method": "m"}, 6, {"train.lr": 0.03}, 0.7, 2)
    assert final_points([choice]) == [{"method": "m", "train.lr": 0.03, "task.data_seed": 6}]
    select_id, final_id = phase_config_id("select", ["method"]), phase_config_id("final", ["method"])
    a, b = {"method": "m", "train.lr": 0.01, "task.data_seed": 0}, {"method": "m", "train.lr": 0.03, "task.data_seed": 1}
    assert select_id(a) == select_id({**a, "task.data_seed": 9}) != select_id(b)  # the data seed is a seed
    assert final_id(a) == final_id(b) == choice.group_id  # one config per group, whatever each seed chose
    assert choices_from_json(choices_to_json([choice])) == [choice]


# ---------------------------------------------------------------- the choice


def curve(group, lr, seed, fold, dev, test=None, status="completed"):
    params = {"method": group, "train.lr": lr, "task.data_seed": seed, "task.cv_fold": fold}
    return TrialCurve(f"{group}-{lr}-{seed}-{fold}", params, dict(enumerate(dev, 1)),
                      dict(enumerate(test, 1)) if test else {}, status)


def test_selected_epoch_is_the_earliest_best_dev_epoch():
    assert selected_epoch({1: 0.5, 2: 0.7, 3: 0.7, 4: math.nan}, "max") == 2
    assert selected_epoch({1: 0.5, 2: 0.4}, "min") == 2
    assert selected_epoch({1: math.nan}, "max") is None


def test_choice_per_group_and_data_seed_by_fold_mean_at_dev_selected_epochs():
    curves = [
        # seed 0: lr 0.01 folds peak at 0.9 and 0.5 (mean 0.7); lr 0.03 at 0.6 and 0.6 (mean 0.6)
        curve("a", 0.01, 0, 0, [0.2, 0.9, 0.1]), curve("a", 0.01, 0, 1, [0.5, 0.3]),
        curve("a", 0.03, 0, 0, [0.6, 0.6]), curve("a", 0.03, 0, 1, [0.1, 0.6]),
        # seed 1: the other way round
        curve("a", 0.01, 1, 0, [0.5]), curve("a", 0.01, 1, 1, [0.5]),
        curve("a", 0.03, 1, 0, [0.8]), curve("a", 0.03, 1, 1, [0.7]),
        # group b, seed 0: a tie (0.6 both): the earlier grid point wins; a failed fold loses
        curve("b", 0.01, 0, 0, [0.6]), curve("b", 0.01, 0, 1, [0.6]),
        curve("b", 0.03, 0, 0, [0.6]), curve("b", 0.03, 0, 1, [0.6]),
        curve("b", 0.1, 0, 0, [0.99]), curve("b", 0.1, 0, 1, [0.99], status="failed"),
    ]
    order = [{"train.lr": 0.03}, {"train.lr": 0.01}, {"train.lr": 0.1}]
    chosen = {(c.group["method"], c.data_seed): c for c in choose_hyper(curves, ["method"], ["train.lr"], "max", order)}
    assert chosen[("a", 0)].hyper == {"train.lr": 0.01} and chosen[("a", 0)].mean == pytest.approx(0.7)
    assert chosen[("a", 1)].hyper == {"train.lr": 0.03} and chosen[("a", 1)].mean == pytest.approx(0.75)
    assert chosen[("b", 0)].hyper == {"train.lr": 0.03} and chosen[("b", 0)].n_folds == 2  # the grid's order
    assert [c["hyper"]["train.lr"] for c in chosen[("b", 0)].candidates] == [0.03, 0.01, 0.1]
    reversed_order = choose_hyper(curves, ["method"], ["train.lr"], "max", order[::-1][1:] + order[:1])
    assert {c.data_seed: c.hyper for c in reversed_order if c.group["method"] == "b"} == {0: {"train.lr": 0.01}}
    assert choose_hyper(list(reversed(curves)), ["method"], ["train.lr"], "max", order) == list(chosen.values())


def test_test_values_never_change_the_choice_and_final_reports_test_at_the_dev_selected_epoch():
    dev = {(0.01, 0): [0.5, 0.8], (0.01, 1): [0.6, 0.6], (0.03, 0): [0.7, 0.4], (0.03, 1): [0.7, 0.5]}
    honest = [curve("a", lr, 0, f, d, test=[0.5, 0.5]) for (lr, f), d in dev.items()]
    permuted = [curve("a", lr, 0, f, d, test=[0.99, 0.0]) for (lr, f), d in dev.items()]
    assert choose_hyper(honest, ["method"], ["train.lr"], "max") == choose_hyper(permuted, ["method"], ["train.lr"], "max")
    final = [TrialCurve("t0", {"method": "a", "train.lr": 0.01, "task.data_seed": 0}, {1: 0.6, 2: 0.9, 3: 0.9},
                        {1: 0.95, 2: 0.55, 3: 0.99}),
             TrialCurve("t1", {"method": "a", "train.lr": 0.03, "task.data_seed": 1}, {1: 0.7, 2: 0.5},
                        {1: 0.65, 2: 0.8})]
    results = final_results(final, ["method"], "max")
    assert [(r.seed, r.value, r.test) for r in results] == [(0, 0.9, 0.55), (1, 0.7, 0.65)]  # not the best test
    summary = aggregate(results, "accuracy", "max")
    [group] = summary.configs
    assert group.values == {0: 0.9, 1: 0.7} and group.test_values == {0: 0.55, 1: 0.65}
    assert group.test_mean == pytest.approx(0.6) and group.test_std == pytest.approx(math.sqrt(0.005))
    assert group.params == {"method": "a"}  # the row, not one data seed's chosen lr
