"""Config of the paper's method options: defaults, precise errors that name the fields, labels."""

from __future__ import annotations

import pytest

from ipt_ray.config import ConfigError, ExperimentConfig, strategy_spec, validate_config


def method(**fields):
    return validate_config({"method": fields}).method


def test_defaults_keep_existing_configs_as_they_were():
    m = method()
    assert m.prefix_projection == "mlp" and m.task_prompt_length == 0 and m.hard_prompt is None
    dumped = validate_config({"method": {"strategy": "random_ipt"}}).model_dump(mode="json")["method"]
    assert dumped["prefix_projection"] == "mlp" and dumped["task_prompt_length"] == 0 and dumped["hard_prompt"] is None
    # another strategy's hard_prompt default stays out of a dump
    assert "hard_prompt" not in validate_config({"method": {"strategy": "prompt_tuning"}}).model_dump()["method"]


@pytest.mark.parametrize("fields,expected", [
    ({"prefix_projection": "linear"}, ["method.prefix_projection", "'none' or 'mlp'", "'linear'"]),
    ({"task_prompt_length": -1}, ["method.task_prompt_length", "greater than or equal to 0"]),
    ({"hard_prompt": "  "}, ["method.hard_prompt", "leave method.hard_prompt unset"]),
    ({"strategy": "prompt_tuning", "task_prompt_length": 4},
     ["method.task_prompt_length is for instance-wise strategies", "random_ipt", "pretrained_ipt", "encoder_ipt", "strategy 'prompt_tuning' is task-level", "method.prompt_length"]),
    ({"strategy": "structured", "task_prompt_length": 1}, ["strategy 'structured' is task-level"]),
    ({"strategy": "pretrained_ipt", "injection": "prefix", "prefix_projection": "none"},
     ["method.table_init 'backbone'", "method.injection 'prefix'", "method.prefix_projection 'none'",
      "set method.table_init 'random' or method.prefix_projection 'mlp'"]),
    ({"strategy": "random_ipt", "injection": "prefix", "prefix_projection": "none", "table_init": "backbone"},
     ["method.table_init 'backbone'", "strategy 'random_ipt'"]),
    ({"strategy": "pretrained_ipt", "injection": "prefix", "prefix_projection": "none", "table_init": "/ckpt/table"},
     ["method.table_init '/ckpt/table'", "2 * layers * d"]),
])
def test_bad_combinations_name_their_fields(fields, expected):
    with pytest.raises(ConfigError) as err:
        validate_config({"method": fields})
    for text in expected:
        assert text in str(err.value)


@pytest.mark.parametrize("fields", [
    {"strategy": "random_ipt", "injection": "prefix", "prefix_projection": "none"},
    {"strategy": "pretrained_ipt", "injection": "prefix", "prefix_projection": "none", "table_init": "random"},
    {"strategy": "encoder_ipt", "injection": "prefix", "prefix_projection": "none"},  # its table is the encoder's input
    {"strategy": "pretrained_ipt", "injection": "input", "prefix_projection": "none"},  # no prefix: nothing to project
    {"strategy": "random_ipt", "injection": "prefix", "prompt_length": 0, "task_prompt_length": 2},
    {"strategy": "encoder_ipt", "task_prompt_length": 8},
    {"strategy": "pretrained_ipt", "hard_prompt": "Culture and the Arts"},
])
def test_combinations_that_work_validate(fields):
    assert validate_config({"method": fields}).method.strategy == fields["strategy"]


def test_prefix_injection_still_needs_some_prompt():
    with pytest.raises(ConfigError, match="method.prompt_length must be >= 1 with injection 'prefix'"):
        validate_config({"method": {"injection": "prefix", "prompt_length": 0}})


def test_hard_prompt_names_its_label_and_table_init_qualifies_random_ipt():
    spec = strategy_spec("random_ipt")
    assert spec.display_label({"injection": "prefix", "hard_prompt": "Human Activities"}) == \
        "Prefix + Random IPT + hard prompts"
    assert spec.display_label({"injection": "input", "hard_prompt": "Human Activities"}) == "PT + Random IPT + hard prompts"
    assert spec.display_label({"injection": "prefix", "hard_prompt": None}) == "Prefix + Random IPT"
    assert strategy_spec("pretrained_ipt").display_label({"injection": "prefix", "hard_prompt": "x"}) == \
        "Prefix + Pretrained IPT + hard prompts"
    # a strategy without the field ignores it (a search may vary the strategy with the field fixed)
    assert strategy_spec("prompt_tuning").display_label({"injection": "prefix", "hard_prompt": "x"}) == "Prefix Tuning"
    assert {"table_init", "hard_prompt"} <= set(spec.qualifiers)
    assert "backbone" in spec.option_fields()["table_init"].description  # the ablation is documented


def test_report_rows_tell_the_backbone_table_ablation_and_hard_prompts_apart():
    from ipt_ray.report.labels import method_rows
    from ipt_ray.results import ConfigSummary

    def config(cid, **params):
        params = {"method.strategy": "random_ipt", "method.injection": "prefix",
                  **{f"method.{k}": v for k, v in params.items()}}
        return ConfigSummary(config_id=cid, trial_ids=[cid], params=params, values={0: 0.5}, mean=0.5, std=0.0,
                             n_seeds=1, status="TERMINATED")

    rows = method_rows([config("a"), config("b", table_init="backbone"), config("c", hard_prompt="Human Activities")])
    labels = {cid: row.label for cid, row in rows.items()}
    assert labels["c"] == "Prefix + Random IPT + hard prompts"
    assert labels["a"] != labels["b"] and "table_init=backbone" in labels["b"]
    assert rows["c"].base == rows["a"].base == "Prefix Tuning"


def test_a_hard_prompt_per_task_becomes_the_runs_text():
    """Table 5 in one sweep: method.hard_prompt maps each task to its type words; a run sees its task's text."""
    texts = {"ag_news": "Human Activities", "sst2": "Culture and the Arts"}
    method = {"strategy": "random_ipt", "injection": "prefix", "hard_prompt": texts}
    cfg = ExperimentConfig.from_dict({"task": {"name": "sst2"}, "method": method})
    assert cfg.method.hard_prompt == "Culture and the Arts"
    assert ExperimentConfig.from_dict(cfg.model_dump()).method.hard_prompt == "Culture and the Arts"
    with pytest.raises(ConfigError, match=r"method.hard_prompt has no text for task.name 'imdb' \(it has: 'ag_news', 'sst2'\)"):
        ExperimentConfig.from_dict({"task": {"name": "imdb"}, "method": method})
    # a strategy without hard prompts ignores the mapping
    plain = ExperimentConfig.from_dict({"task": {"name": "imdb"}, "method": {**method, "strategy": "prompt_tuning"}})
    assert plain.method.hard_prompt is None
    with pytest.raises(ConfigError, match="empty hard prompt"):
        ExperimentConfig.from_dict({"task": {"name": "sst2"}, "method": {**method, "hard_prompt": {"sst2": " "}}})
