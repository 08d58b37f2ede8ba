"""The paper tables with a test split: test beside dev, chosen on dev only, and said so in the notes."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

from ipt_ray.report import paper
from ipt_ray.results import SeedResult, aggregate, config_id


def fake(params: dict, dev, test) -> list[SeedResult]:
    cid = config_id(params)
    return [SeedResult(cid, f"t-{cid}", s, d, params, "completed", test=t) for s, (d, t) in enumerate(zip(dev, test))]


def cfg(task: str, strategy: str, lr: float = 0.01, **extra) -> dict:
    return {"method": json.dumps({"strategy": strategy}), "task.name": task, "train.lr": lr, **extra}


def results(**extra) -> list[SeedResult]:
    # Prompt Tuning on CB: lr 0.03 has the better test but the worse dev; lr 0.01 is chosen
    return (fake(cfg("cb", "prompt_tuning", 0.01, **extra), [0.70, 0.72], [0.60, 0.62])
            + fake(cfg("cb", "prompt_tuning", 0.03, **extra), [0.60, 0.62], [0.90, 0.92])
            + fake(cfg("rte", "prompt_tuning", **extra), [0.55, 0.57], [0.50, 0.52])
            + fake(cfg("cb", "random_ipt", **extra), [0.80, 0.82], [0.70, 0.74])
            + fake(cfg("rte", "random_ipt", **extra), [0.65, 0.67], [0.58, 0.60]))


def test_cells_carry_the_dev_chosen_groups_test_values():
    table = paper.build_table(aggregate(results(), "accuracy"))
    assert table.has_test and table.protocols == ["paper"]
    chosen = table.cell("Prompt Tuning", "cb")
    assert chosen.hyper["train.lr"] == 0.01 and chosen.mean == pytest.approx(0.71)
    assert chosen.test_values == pytest.approx({0: 0.60, 1: 0.62}) and chosen.test_mean == pytest.approx(0.61)


def test_markdown_shows_test_beside_dev_and_says_where_it_is_from():
    md = paper.to_markdown(paper.build_table(aggregate(results(), "accuracy")))
    lines = md.splitlines()
    # the paper's Table 2 values sit beside each task's dev and test columns
    assert lines[0].startswith("| method | paper row | CB dev | CB test | CB paper | RTE dev | RTE test | RTE paper |")
    assert lines[0].endswith("| avg dev | avg test |")
    row = next(line for line in lines if line.startswith("| Prompt Tuning |"))
    assert row.startswith("| Prompt Tuning | T2: Prompt Tuning | 71.0 ± 1.4 | 61.0 ± 1.4 | 71.3 [a,b,c] | "
                          "56.0 ± 1.4 | 51.0 ± 1.4 | 50.2 [a,b,c] |")
    assert row.endswith("| 63.5 | 56.0 |")
    ipt = next(line for line in lines if line.startswith("| PT + Random IPT |"))
    assert "| **81.0 ± 1.4** | 72.0 ± 2.8 |" in ipt  # bold marks the dev best; test is never bold
    assert "test: the original validation set, at the dev-selected epoch" in md
    assert "heldout" not in md


def test_heldout_protocol_is_named_in_the_notes():
    md = paper.to_markdown(paper.build_table(aggregate(results(**{"task.protocol": "heldout"}), "accuracy")))
    assert "Dev (`task.protocol: heldout`): a stratified, seeded part of each task's train split" in md
    # the paper's split differs from ours: its Table 2 reports the validation set that also selected
    assert ("split: ours test column = the validation set, at the epoch and configuration chosen on a dev set "
            "held out from train (task.protocol heldout); the paper (Table 2) the validation set") in md


def test_folds_average_test_values_like_dev_ones():
    rows = []
    for fold, (dev, test) in enumerate([([0.6, 0.7], [0.5, 0.6]), ([0.8, 0.9], [0.7, 0.8])]):
        rows += fake(cfg("cb", "prompt_tuning", **{"task.few_shot_k": 8, "task.cv_fold": fold}), dev, test)
    cell = paper.build_table(aggregate(rows, "accuracy")).cell("Prompt Tuning", "cb")
    assert cell.n_folds == 2 and cell.values == pytest.approx({0: 0.7, 1: 0.8})
    assert cell.test_values == pytest.approx({0: 0.6, 1: 0.7})


def test_csv_has_test_columns_only_with_a_test_split(tmp_path):
    path = paper.to_csv(paper.build_table(aggregate(results(), "accuracy")), tmp_path / "paper.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert {"test_mean", "test_std", "test_seed_0", "test_seed_1"} <= set(rows[0])
    pt_cb = next(r for r in rows if r["method"] == "Prompt Tuning" and r["task"] == "cb")
    assert float(pt_cb["test_mean"]) == pytest.approx(0.61) and float(pt_cb["test_seed_1"]) == 0.62
    dev_only = [replace(r, test=float("nan")) for r in results()]
    path = paper.to_csv(paper.build_table(aggregate(dev_only, "accuracy")), tmp_path / "dev.csv")
    with path.open() as f:
        assert not [c for c in next(csv.reader(f)) if c.startswith("test_")]


def test_significance_tests_the_reported_test_values_not_the_dev_that_chose_them():
    from scipy import stats

    table = paper.build_table(aggregate(results(), "accuracy"))
    rows = {r["task"]: r for r in paper.significance(table)}
    cb = rows["cb"]  # Random IPT test [0.70, 0.74] against Prompt Tuning's dev-chosen lr 0.01: test [0.60, 0.62]
    assert cb["split"] == "test" and cb["delta"] == pytest.approx(0.72 - 0.61)
    assert cb["p"] == pytest.approx(stats.ttest_ind([0.70, 0.74], [0.60, 0.62], equal_var=False).pvalue)
    assert "| PT + Random IPT | Prompt Tuning | CB | test | +11.0 |" in paper.significance_markdown(table)
