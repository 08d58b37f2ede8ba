"""The protocol: few-shot K-per-class splits, stratified CV folds, subsets, held-out parts, load_splits."""

from __future__ import annotations

import collections

import datasets
import numpy as np
import pytest

import ipt_ray.data as T
from ipt_ray.config import TaskConfig
from data_helpers import label_counts


@pytest.fixture(scope="module")
def rte() -> datasets.DatasetDict:
    return T.load_task("rte")


def test_few_shot_split(rte: datasets.DatasetDict) -> None:
    fs = T.few_shot_split(rte, k=16, seed=13)
    assert set(fs) == {"train", "dev", "test"}
    for part in ("train", "dev"):
        assert len(fs[part]) == 32
        assert label_counts(fs[part]) == {"entailment": 16, "not_entailment": 16}
    assert not set(fs["train"]["idx"]) & set(fs["dev"]["idx"])
    assert fs["test"]["idx"] == rte["validation"]["idx"]
    again = T.few_shot_split(rte, k=16, seed=13)
    assert again["train"]["idx"] == fs["train"]["idx"] and again["dev"]["idx"] == fs["dev"]["idx"]
    other = T.few_shot_split(rte, k=16, seed=42)
    assert set(other["train"]["idx"]) != set(fs["train"]["idx"])


def test_few_shot_split_too_few_examples() -> None:
    cb = T.load_task("cb")
    assert label_counts(T.few_shot_split(cb, k=8, seed=1)["train"]) == {
        "entailment": 8, "contradiction": 8, "neutral": 8}
    with pytest.raises(ValueError, match=r"class 'neutral' \(2\) has 16 train examples; k=16 needs 32"):
        T.few_shot_split(cb, k=16, seed=1)


def test_cv_folds_disjoint_covering_stratified() -> None:
    train = T.load_task("cb")["train"]
    folds = T.cv_folds(train, n_folds=4, seed=0)
    assert len(folds) == 4
    all_idx = set(train["idx"])
    devs = [set(dev["idx"]) for _, dev in folds]
    for (tr, dev), dset in zip(folds, devs):
        assert not set(tr["idx"]) & dset and set(tr["idx"]) | dset == all_idx
    assert set().union(*devs) == all_idx and sum(map(len, devs)) == len(train)
    sizes = [len(d) for d in devs]
    assert max(sizes) - min(sizes) <= 1
    total = collections.Counter(train["label"])
    for _, dev in folds:
        for c, n in collections.Counter(dev["label"]).items():
            assert abs(n - total[c] / 4) <= 1
    assert [d["idx"] for _, d in T.cv_folds(train, 4, 0)] == [d["idx"] for _, d in folds]
    assert [d["idx"] for _, d in T.cv_folds(train, 4, 1)] != [d["idx"] for _, d in folds]


def test_subsample(rte: datasets.DatasetDict) -> None:
    ds = rte["validation"]  # 146 entailment / 131 not_entailment
    sub = T.subsample(ds, 100, seed=0)
    assert len(sub) == 100
    assert label_counts(sub) == {"entailment": 53, "not_entailment": 47}
    assert sub["idx"] == sorted(sub["idx"]) and set(sub["idx"]) <= set(ds["idx"])
    assert T.subsample(ds, 100, seed=0)["idx"] == sub["idx"]
    assert T.subsample(ds, 100, seed=1)["idx"] != sub["idx"]
    assert T.subsample(ds, 277, seed=0) is ds and T.subsample(ds, 10_000, seed=0) is ds


def test_stratified_split_holds_out_a_rounded_fraction_of_every_class() -> None:
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    train, held = T.stratified_split(labels, 0.3, seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(len(labels)))
    assert list(train) == sorted(train) and list(held) == sorted(held)
    # round(0.3 * n) per class; two rows keep one on each side; a single row trains
    assert collections.Counter(labels[held].tolist()) == {0: 3, 1: 2, 2: 1}
    again, _ = T.stratified_split(labels, 0.3, seed=0)
    assert np.array_equal(train, again)
    assert any(not np.array_equal(train, T.stratified_split(labels, 0.3, seed=s)[0]) for s in (1, 2, 3))


def test_load_splits_applies_the_task_protocol() -> None:
    spec, full = T.load_splits(TaskConfig(name="cb", max_eval_samples=20))
    assert spec is T.TASKS["cb"] and set(full) == {"train", "dev"}
    assert len(full["train"]) == 250 and len(full["dev"]) == 20
    _, few = T.load_splits(TaskConfig(name="cb", few_shot_k=8, cv_fold=1, data_seed=3))
    assert set(few) == {"train", "dev", "test"} and len(few["test"]) == 56
    assert len(few["train"]) + len(few["dev"]) == 24 and len(few["dev"]) == 6
    assert not set(few["train"]["idx"]) & set(few["dev"]["idx"])
