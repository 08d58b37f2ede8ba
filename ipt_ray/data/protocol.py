"""The evaluation protocol: few-shot K-per-class splits, stratified CV folds, subsets and held-out parts.

:func:`load_splits` applies it to a :class:`~ipt_ray.config.TaskConfig`: the ``train`` / ``dev`` (/
``test``) datasets a run trains, selects and reports on. Selection (epochs, hyper-parameters) sees dev
only; test is reported beside it. ``task.protocol``: ``paper`` selects on the original validation split
(as the paper reports), ``heldout`` on a dev set carved from train, reporting validation as test.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from ipt_ray.config import TaskConfig
from ipt_ray.data.custom import custom_task
from ipt_ray.data.loading import load_task
from ipt_ray.data.specs import TaskSpec, get_task

__all__ = ["few_shot_split", "few_shot_pool", "cv_folds", "subsample", "stratified_split", "carve_dev", "protocol_splits", "load_splits"]


def _labels(ds: datasets.Dataset) -> np.ndarray:
    if "label" not in ds.column_names:
        raise ValueError(f"dataset has no 'label' column (has: {', '.join(ds.column_names)})")
    return np.asarray(ds["label"], dtype=np.int64)


def _class_name(ds: datasets.Dataset, c: int) -> str:
    names = getattr(ds.features.get("label"), "names", None)
    return f"'{names[c]}' ({c})" if names and 0 <= c < len(names) else str(c)


def _classes(ds: datasets.Dataset, labels: np.ndarray) -> np.ndarray:
    """All classes the schema declares (so an absent class is noticed), else those present."""
    names = getattr(ds.features.get("label"), "names", None)
    return np.arange(len(names)) if names else np.unique(labels)


def few_shot_split(
    dd: datasets.DatasetDict, k: int, seed: int
) -> datasets.DatasetDict:
    """FewGLUE/LM-BFF protocol: K per class for train, a disjoint equal dev, test = validation.

    Both K-shot sets are drawn from the original train split so the original
    validation split stays untouched as the test set.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    train = dd["train"]
    test_key = "validation" if "validation" in dd else "test"
    if test_key not in dd:
        raise ValueError(f"need a 'validation' (or 'test') split, have: {', '.join(dd)}")
    labels = _labels(train)
    rng = np.random.default_rng(seed)
    tr: list[np.ndarray] = []
    dv: list[np.ndarray] = []
    for c in _classes(train, labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < 2 * k:
            raise ValueError(
                f"class {_class_name(train, int(c))} has {len(pool)} train examples; "
                f"k={k} needs {2 * k} ({k} train + {k} dev)"
            )
        pool = rng.permutation(pool)
        tr.append(pool[:k])
        dv.append(pool[k : 2 * k])
    train_idx = rng.permutation(np.concatenate(tr))
    dev_idx = rng.permutation(np.concatenate(dv))
    return datasets.DatasetDict(
        {
            "train": train.select(train_idx),
            "dev": train.select(dev_idx),
            "test": dd[test_key],
        }
    )


def few_shot_pool(few: datasets.DatasetDict) -> datasets.Dataset:
    """The 2K examples per class of a :func:`few_shot_split` (its train half, then its dev half): what the
    few-shot protocol's cross validation splits into folds."""
    return datasets.concatenate_datasets([few["train"], few["dev"]])


def cv_folds(
    train: datasets.Dataset, n_folds: int = 4, seed: int = 0
) -> list[tuple[datasets.Dataset, datasets.Dataset]]:
    """Stratified K-fold ``(train, dev)`` pairs; the dev parts partition ``train``.

    scikit-learn's ``StratifiedKFold`` (shuffled, seeded): examples are dealt round-robin into folds
    by class, the deal continuing across classes so fold sizes differ by at most one. It needs some
    class to have at least ``n_folds`` examples.
    """
    from sklearn.model_selection import StratifiedKFold  # heavy: scikit-learn loads only for CV

    n = len(train)
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be in [2, {n}] for {n} examples, got {n_folds}")
    labels = _labels(train)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [
        (train.select(train_idx), train.select(dev_idx))
        for train_idx, dev_idx in folds.split(np.zeros((n, 1)), labels)
    ]


def subsample(ds: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """Stratified random subset of ``n`` rows (original order kept); ``n >= len`` is a no-op.

    Class quotas are proportional, rounded by largest remainder so they sum to ``n``. (Not
    scikit-learn's ``train_test_split(stratify=...)``: that rejects one-row classes and subsets
    smaller than the number of classes, which this accepts.)
    """
    if n >= len(ds):
        return ds
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    labels = _labels(ds)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(ds)
    quota = np.floor(exact).astype(np.int64)
    # Stable sort on -remainder: ties go to the lower class id, deterministically.
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=int(q), replace=False)
        for c, q in zip(classes, quota, strict=True)
    ]
    return ds.select(np.sort(np.concatenate(picks)))


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, heldout_idx)``, each sorted: ``round(fraction * n_c)`` rows of every class ``c`` held out.

    ``labels`` is ``[n]`` (int). A class with at least two rows keeps at least one on each side; one
    with a single row trains. (Not scikit-learn's ``train_test_split(stratify=...)``, which rejects
    one-row classes and rounds the total rather than each class.)
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, heldout = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_held = int(round(fraction * len(rows)))
        n_held = min(max(n_held, 1), len(rows) - 1) if len(rows) >= 2 else 0
        heldout.append(rows[:n_held])
        train.append(rows[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(heldout))


def carve_dev(train: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train, dev)``: a stratified, seeded ``fraction`` of every class of ``train`` held out as dev
    (:func:`stratified_split`); the two are disjoint and cover ``train``, each in its original order."""
    train_idx, dev_idx = stratified_split(_labels(train), fraction, seed)
    return train.select(train_idx), train.select(dev_idx)


def protocol_splits(data: datasets.DatasetDict, task: TaskConfig) -> dict[str, datasets.Dataset]:
    """``train`` / ``dev`` (/ ``test``) of a loaded task under ``task.protocol`` (before any subsampling).

    - Few-shot (Gao et al. 2021): per ``data_seed``, K per class for train and a disjoint K per class for
      dev (the 2K per class the protocol samples), validation (a dataset's own ``test``) as test. With
      ``cv_fold``: the fold's (train, dev) pair of a stratified ``cv_folds``-fold split of those 2K per
      class (:func:`few_shot_pool`), and no test split: cross validation only chooses hyper-parameters,
      so it never scores (or pays for) test.
    - ``paper``: train, validation as dev (as the paper selects and reports); a dataset's own ``test``
      is the test set.
    - ``heldout``, or no validation split: dev is a stratified ``heldout_fraction`` of train, and the
      test set is the dataset's ``test``, else the original validation split.
    """
    given_test = data["test"] if "test" in data else None
    if task.few_shot_k is not None:
        few = few_shot_split(data, task.few_shot_k, task.data_seed)
        if task.cv_fold is not None:
            train, dev = cv_folds(few_shot_pool(few), n_folds=task.cv_folds, seed=task.data_seed)[task.cv_fold]
            return {"train": train, "dev": dev}
        return {"train": few["train"], "dev": few["dev"], "test": few["test"] if given_test is None else given_test}
    if task.protocol == "heldout" or "validation" not in data:
        train, dev = carve_dev(data["train"], task.heldout_fraction, task.data_seed)
        test = given_test if given_test is not None else data["validation"] if "validation" in data else None
    else:
        train, dev, test = data["train"], data["validation"], given_test
    return {"train": train, "dev": dev, **({"test": test} if test is not None else {})}


def load_splits(task: TaskConfig) -> tuple[TaskSpec, dict[str, Any]]:
    """The protocol's splits (:func:`protocol_splits`): ``train`` and ``dev`` always, ``test`` where the
    protocol has one; a run selects (epochs, configs) on dev only and reports test beside it.

    ``max_train_samples`` subsamples train, ``max_eval_samples`` dev and test (stratified, seeded).
    """
    if task.dataset is not None:
        spec, data = custom_task(task)
    else:
        spec = get_task(task.name)
        data = load_task(spec, data_dir=task.data_dir, source=task.source)
    splits = protocol_splits(data, task)
    if task.max_train_samples:
        splits["train"] = subsample(splits["train"], task.max_train_samples, task.data_seed)
    if task.max_eval_samples:
        for name in ("dev", "test"):
            if name in splits:
                splits[name] = subsample(splits[name], task.max_eval_samples, task.data_seed)
    return spec, splits
