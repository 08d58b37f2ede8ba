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
    assert set(few) == {"train", "dev"}  # cross validation chooses hyper-parameters only: no test
    assert len(few["train"]) + len(few["dev"]) == 48 and len(few["dev"]) == 12  # folds of the 2K per class
    assert not set(few["train"]["idx"]) & set(few["dev"]["idx"])


# ---------------------------------------------------------------- task.protocol: dev for selection, test reported


def test_paper_protocol_is_the_default_and_unchanged() -> None:
    assert TaskConfig(name="cb").protocol == "paper" and TaskConfig(name="cb").heldout_fraction == 0.1
    cb = T.load_task("cb")
    _, splits = T.load_splits(TaskConfig(name="cb"))
    assert set(splits) == {"train", "dev"}  # no test split: the paper reports its validation numbers
    assert splits["train"]["idx"] == cb["train"]["idx"] and splits["dev"]["idx"] == cb["validation"]["idx"]


def test_heldout_protocol_carves_a_stratified_seeded_disjoint_dev_from_train() -> None:
    cb = T.load_task("cb")
    _, splits = T.load_splits(TaskConfig(name="cb", protocol="heldout", data_seed=3))
    assert set(splits) == {"train", "dev", "test"}
    train, dev = set(splits["train"]["idx"]), set(splits["dev"]["idx"])
    assert not train & dev and train | dev == set(cb["train"]["idx"])  # disjoint, covering train
    assert splits["test"]["idx"] == cb["validation"]["idx"]  # the original validation set, reported only
    # round(0.1 * n) of every class (CB train: 115 entailment, 119 contradiction, 16 neutral)
    assert label_counts(splits["dev"]) == {"contradiction": 12, "entailment": 12, "neutral": 2}
    assert splits["dev"]["idx"] == sorted(splits["dev"]["idx"])  # original order kept
    again = T.load_splits(TaskConfig(name="cb", protocol="heldout", data_seed=3))[1]
    other = T.load_splits(TaskConfig(name="cb", protocol="heldout", data_seed=4))[1]
    assert again["dev"]["idx"] == splits["dev"]["idx"] and other["dev"]["idx"] != splits["dev"]["idx"]
    quarter = T.load_splits(TaskConfig(name="cb", protocol="heldout", heldout_fraction=0.25))[1]
    assert len(quarter["dev"]) == 29 + 30 + 4
    # subsampling caps train after the carve, dev and test alike
    small = T.load_splits(TaskConfig(name="cb", protocol="heldout", max_train_samples=40, max_eval_samples=20))[1]
    assert (len(small["train"]), len(small["dev"]), len(small["test"])) == (40, 20, 20)
    assert not set(small["train"]["idx"]) & set(small["dev"]["idx"])


def test_few_shot_keeps_its_own_splits_under_either_protocol() -> None:
    paper = T.load_splits(TaskConfig(name="cb", few_shot_k=8, data_seed=1))[1]
    heldout = T.load_splits(TaskConfig(name="cb", few_shot_k=8, data_seed=1, protocol="heldout"))[1]
    for part in ("train", "dev", "test"):
        assert heldout[part]["idx"] == paper[part]["idx"]
    assert paper["test"]["idx"] == T.load_task("cb")["validation"]["idx"]


def _toy(**splits: list[int]) -> datasets.DatasetDict:
    """A DatasetDict as a user dataset may give it: ``idx`` (100 * split number + row) and ``label`` per split."""
    return datasets.DatasetDict({
        name: datasets.Dataset.from_dict({"idx": [100 * k + i for i in range(len(labels))], "label": labels})
        for k, (name, labels) in enumerate(splits.items())})


def test_a_datasets_own_test_split_is_the_test_set() -> None:
    labels = [0] * 20 + [1] * 10
    full = _toy(train=labels, validation=[0, 1] * 5, test=[1, 0] * 4)
    paper = T.protocol_splits(full, TaskConfig(name="cb"))
    assert paper["dev"]["idx"] == full["validation"]["idx"] and paper["test"]["idx"] == full["test"]["idx"]
    assert paper["train"]["idx"] == full["train"]["idx"]
    heldout = T.protocol_splits(full, TaskConfig(name="cb", protocol="heldout"))
    assert heldout["test"]["idx"] == full["test"]["idx"] and len(heldout["dev"]) == 2 + 1  # 10% of each class
    assert not set(heldout["train"]["idx"]) & set(heldout["dev"]["idx"])
    # no validation split: dev is carved from train whatever the protocol; the test split stays the test set
    no_validation = T.protocol_splits(_toy(train=labels, test=[1, 0] * 4), TaskConfig(name="cb"))
    assert len(no_validation["dev"]) == 3 and len(no_validation["train"]) == 27 and len(no_validation["test"]) == 8
    # train only: a carved dev and no test
    assert set(T.protocol_splits(_toy(train=labels), TaskConfig(name="cb"))) == {"train", "dev"}
    # few-shot: K per class from train, the dataset's test split as test
    few = T.protocol_splits(full, TaskConfig(name="cb", few_shot_k=2))
    assert len(few["train"]) == len(few["dev"]) == 4 and few["test"]["idx"] == full["test"]["idx"]
