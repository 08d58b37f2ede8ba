"""The few-shot protocol of Table 3 (Gao et al. 2021): per data seed 2K per class from train, K train + K dev,
cross validation over the 2K, test = the original validation split, never part of cross validation."""

from __future__ import annotations

import collections

import datasets
import numpy as np
import pytest

from ipt_ray.config import TaskConfig
from ipt_ray.data.protocol import few_shot_pool, few_shot_split, protocol_splits


def toy(n_per_class=(30, 20, 12), n_validation=15, seed=0) -> datasets.DatasetDict:
    """Train with ``n_per_class`` rows per class (ids 0..), a validation split of ids 1000.."""
    labels = [c for c, n in enumerate(n_per_class) for _ in range(n)]
    rng = np.random.default_rng(seed)
    val = rng.integers(0, len(n_per_class), n_validation).tolist()
    feature = datasets.ClassLabel(names=[f"c{c}" for c in range(len(n_per_class))])
    make = lambda idx, lab: datasets.Dataset.from_dict(  # noqa: E731
        {"idx": idx, "label": lab}, features=datasets.Features({"idx": datasets.Value("int64"), "label": feature}))
    return datasets.DatasetDict({"train": make(list(range(len(labels))), labels),
                                 "validation": make(list(range(1000, 1000 + n_validation)), val)})


def task(**kw) -> TaskConfig:
    return TaskConfig(name="cb", few_shot_k=4, cv_folds=4, **kw)


def test_each_data_seed_draws_2k_per_class_as_k_train_and_a_disjoint_k_dev():
    data = toy()
    few = few_shot_split(data, k=4, seed=3)
    pool = few_shot_pool(few)
    assert collections.Counter(pool["label"]) == {0: 8, 1: 8, 2: 8}
    assert collections.Counter(few["train"]["label"]) == collections.Counter(few["dev"]["label"]) == {0: 4, 1: 4, 2: 4}
    assert not set(few["train"]["idx"]) & set(few["dev"]["idx"])
    assert few["test"]["idx"] == data["validation"]["idx"]
    splits = protocol_splits(data, task(data_seed=3))  # the final phase: train on K, early-stop on K, test
    assert splits["train"]["idx"] == few["train"]["idx"] and splits["dev"]["idx"] == few["dev"]["idx"]
    assert splits["test"]["idx"] == data["validation"]["idx"]


def test_folds_are_a_stratified_partition_of_the_2k_deterministic_per_data_seed():
    data = toy()
    pool = set(few_shot_pool(few_shot_split(data, k=4, seed=3))["idx"])
    devs = []
    for fold in range(4):
        split = protocol_splits(data, task(data_seed=3, cv_fold=fold))
        assert set(split) == {"train", "dev"}  # cross validation never sees test
        train, dev = set(split["train"]["idx"]), set(split["dev"]["idx"])
        assert not train & dev and train | dev == pool  # each fold covers the 2K, not the K-shot train half
        assert collections.Counter(split["dev"]["label"]) == {0: 2, 1: 2, 2: 2}  # stratified: 8 per class / 4
        devs.append(dev)
        again = protocol_splits(data, task(data_seed=3, cv_fold=fold))
        assert again["dev"]["idx"] == split["dev"]["idx"] and again["train"]["idx"] == split["train"]["idx"]
    assert set().union(*devs) == pool and sum(map(len, devs)) == len(pool)
    other = protocol_splits(data, task(data_seed=4, cv_fold=0))
    assert set(other["train"]["idx"]) | set(other["dev"]["idx"]) != pool  # another data seed, another draw


def test_cross_validation_splits_do_not_depend_on_the_validation_split():
    data = toy()
    permuted = datasets.DatasetDict({"train": data["train"], "validation": data["validation"].map(
        lambda row, i: {"label": (row["label"] + 1 + i) % 3}, with_indices=True)})
    assert permuted["validation"]["label"] != data["validation"]["label"]
    for fold in range(4):
        a, b = protocol_splits(data, task(data_seed=1, cv_fold=fold)), protocol_splits(permuted, task(data_seed=1, cv_fold=fold))
        assert a["train"]["idx"] == b["train"]["idx"] and a["dev"]["idx"] == b["dev"]["idx"]


def test_a_class_too_small_for_2k_is_named():
    with pytest.raises(ValueError, match=r"class 'c2' \(2\) has 12 train examples; k=8 needs 16"):
        protocol_splits(toy(), TaskConfig(name="cb", few_shot_k=8, cv_fold=0))
