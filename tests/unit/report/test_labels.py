"""Method labels, row order and significance pairs come from the strategy registry, not from strategy names."""

from __future__ import annotations

import json

import pytest

from ipt_ray.config import StrategySpec, strategy_specs
from ipt_ray.report import labels, paper
from ipt_ray.results import SeedResult, aggregate, config_id


def fake(strategy: str, values, **method) -> list[SeedResult]:
    params = {"method": json.dumps({"strategy": strategy, **method}, sort_keys=True), "task.name": "cb"}
    cid = config_id(params)
    return [SeedResult(cid, f"t-{cid}", s, v, params, "completed") for s, v in enumerate(values)]


@pytest.fixture
def halved(monkeypatch) -> StrategySpec:
    """A strategy the report has never heard of, seen through the registry only (nothing registered for good)."""
    spec = StrategySpec("halved_prompt", "Halved PT", base="prompt_tuning", order=15)
    specs = {s.name: s for s in strategy_specs()} | {spec.name: spec}
    monkeypatch.setattr(labels, "strategy_names", lambda: tuple(specs))
    monkeypatch.setattr(labels, "strategy_spec", specs.__getitem__)
    monkeypatch.setattr(labels, "strategy_specs", lambda: sorted(specs.values(), key=lambda s: s.order))
    return spec


def test_a_new_strategy_gets_its_label_place_and_base_from_its_spec(halved):
    results = (fake("prompt_tuning", [0.60, 0.62, 0.61]) + fake("prompt_tuning", [0.65, 0.66, 0.64], injection="prefix")
               + fake("halved_prompt", [0.70, 0.72, 0.71]) + fake("halved_prompt", [0.60, 0.61, 0.62], injection="prefix")
               + fake("random_ipt", [0.66, 0.67, 0.68]) + fake("structured", [0.5, 0.52, 0.51]))
    table = paper.build_table(aggregate(results, "accuracy"))
    # the methods no base is tested against first (spec order, prefix after input), then the tested ones:
    # input injection, then prefix, each by spec order
    assert table.methods == ["Prompt Tuning", "Prefix Tuning", "Structured PT", "Halved PT", "PT + Random IPT",
                             "Halved PT (prefix)"]
    assert table.bases == {"Halved PT": "Prompt Tuning", "PT + Random IPT": "Prompt Tuning",
                           "Halved PT (prefix)": "Prefix Tuning"}
    tested = {(r["method"], r["base"]) for r in paper.significance(table)}
    assert tested == set(table.bases.items())  # Structured PT has no base: not tested


def test_an_unregistered_strategy_is_named_listed_last_and_not_tested():
    results = fake("prompt_tuning", [0.6, 0.62]) + fake("gone_plugin", [0.7, 0.71])
    table = paper.build_table(aggregate(results, "accuracy"))
    assert table.methods == ["Prompt Tuning", "gone_plugin"] and table.bases == {}
    assert paper.significance(table) == []


def test_identity_params_are_every_specs_label_field_and_qualifiers():
    identity = labels.identity_params()
    for spec in strategy_specs():
        assert {f"method.{q}" for q in spec.qualifiers} <= identity
        if spec.label_field:
            assert f"method.{spec.label_field}" in identity
    assert {"method.strategy", "method.injection", "method.head", "task.name", "task.cv_fold"} <= identity
    assert "method.prompt_length" not in identity and "train.lr" not in identity  # hyper-parameters
