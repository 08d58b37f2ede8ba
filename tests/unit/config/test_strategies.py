"""The strategy registry: self-described strategies, the method section built from them, plugins."""

from __future__ import annotations

import pytest
from plugins.experiment import plugin_yaml

from ipt_ray.config import (
    ConfigError,
    StrategyOptions,
    StrategySpec,
    load_config,
    method_defaults,
    register_strategy,
    strategy_names,
    strategy_spec,
    validate_config,
)
from ipt_ray.config.strategies import TableOptions


def test_builtin_labels_come_from_their_specs():
    assert strategy_spec("prompt_tuning").display_label({"injection": "prefix"}) == "Prefix Tuning"
    assert strategy_spec("random_ipt").display_label({"injection": "input"}) == "PT + Random IPT"
    assert strategy_spec("encoder_ipt").display_label({"injection": "prefix", "encoder": "rnn"}) == \
        "Prefix + Encoder IPT (rnn)"
    assert strategy_spec("fine_tuning").display_label({"injection": "prefix"}) == "Fine-tuning"
    assert strategy_spec("ppt").display_label({"injection": "prefix"}) == "PPT (prefix)"
    assert strategy_names()[:2] == ("fine_tuning", "prompt_tuning")


def test_every_strategy_field_has_a_default_whatever_the_strategy():
    defaults = method_defaults()
    assert defaults["encoder"] == "cnn" and defaults["table_layout"] == "compact" and defaults["strategy"] == "random_ipt"
    cfg = validate_config({"method": {"strategy": "prompt_tuning", "encoder": "rnn"}})
    assert cfg.method.encoder == "rnn" and cfg.method.table_layout == "compact"


def test_strategy_rules_come_from_the_spec():
    with pytest.raises(ConfigError, match="method.head must be 'classifier' or 'mean_classifier' for strategy 'fine_tuning'"):
        validate_config({"method": {"strategy": "fine_tuning", "head": "verbalizer"}})
    with pytest.raises(ConfigError, match="method.pretrained_prompt is required for strategy 'ppt'"):
        validate_config({"method": {"strategy": "ppt"}})


def test_a_field_declared_by_two_option_models_is_refused():
    class Clash(StrategyOptions):
        table_layout: str = "mine"

    with pytest.raises(ValueError, match="method.table_layout is already declared by TableOptions"):
        register_strategy(StrategySpec("clash", "Clash", options=(Clash,)))
    assert "clash" not in strategy_names()


def test_a_spec_naming_a_field_it_does_not_declare_is_refused():
    with pytest.raises(ValueError, match="names method.encoder"):
        register_strategy(StrategySpec("bad_label", "Bad", options=(TableOptions,), label_field="encoder"))


def test_plugin_strategy_validates_with_its_own_fields(tmp_path, tiny_bert):
    cfg = load_config(plugin_yaml(tmp_path, tiny_bert))
    assert cfg.method.strategy == "scaled_prompt" and cfg.method.prompt_scale == 0.5
    assert strategy_spec("scaled_prompt").base == "prompt_tuning"
    with pytest.raises(ConfigError) as err:
        load_config(plugin_yaml(tmp_path, tiny_bert, prompt_scale=-1))
    assert "method.prompt_scale: Input should be greater than 0" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(plugin_yaml(tmp_path, tiny_bert, strategy="scaled"))
    assert "'scaled_prompt'" in str(err.value)  # the allowed values name the plugin's strategy


def test_a_missing_plugin_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="plugins: no such file"):
        validate_config({"plugins": [str(tmp_path / "nope.py")]})


def test_a_plugin_loaded_in_this_process_stays_out_of_other_configs(tmp_path, tiny_bert):
    """The CI failure of 2026-12-02: after the plugin test loaded `scaled_prompt` in the driver, every
    sweep's config carried `method.prompt_scale`, and its Tune trials (fresh processes, no plugin) refused it."""
    import json
    import subprocess
    import sys

    load_config(plugin_yaml(tmp_path, tiny_bert))  # registers scaled_prompt in this process
    plain = validate_config({"method": {"strategy": "encoder_ipt", "encoder": "rnn", "table_layout": "full"}})
    dumped = plain.model_dump(mode="json")
    assert "prompt_scale" not in dumped["method"]
    # the chosen strategy's fields are all there; another strategy's only where they differ from the default
    assert {"encoder", "encoder_hidden", "seq_util_rate", "table_layout"} <= set(dumped["method"])
    assert "hypernetwork" not in dumped["method"]
    assert plain.with_overrides({"method.strategy": "random_ipt"}).method.table_layout == "full"
    fresh = subprocess.run(
        [sys.executable, "-c", "import json, sys; from ipt_ray.config import validate_config; "
         "print(validate_config(json.loads(sys.stdin.read())).method.encoder)"],
        input=json.dumps(dumped), capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip() == "rnn"
