"""Typed configuration: precise errors that name the field path and the allowed values."""

from __future__ import annotations

import pytest
import yaml

from ipt_ray.cli import main
from ipt_ray.config import ConfigError, ExperimentConfig, load_config

QUICKSTART = "experiments/quickstart.yaml"


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("data,expected", [
    ({"method": {"prompt_lenght": 8}}, ["method.prompt_lenght", "unknown key", "prompt_length"]),
    ({"tracker": {}}, ["tracker", "unknown key", "tracking"]),
    ({"method": {"prompt_length": "long"}}, ["method.prompt_length", "valid integer", "'long'"]),
    ({"method": {"prompt_length": -1}}, ["method.prompt_length", "greater than or equal to 0"]),
    ({"method": {"seq_util_rate": 0}}, ["method.seq_util_rate", "greater than 0"]),
    ({"method": {"seq_util_rate": 1.5}}, ["method.seq_util_rate", "less than or equal to 1"]),
    ({"method": {"encoder": "gru"}}, ["method.encoder", "'cnn', 'rnn' or 'mlp'", "'gru'"]),
    ({"method": {"strategy": "magic"}}, ["method.strategy", "'random_ipt'", "'encoder_ipt'", "'magic'"]),
    ({"task": {"name": "squad"}}, ["task.name", "'boolq'", "'ag_news'"]),
    ({"task": {"data_dir": "/no/such/dir"}}, ["task.data_dir", "is not a directory"]),
    ({"train": {"seeds": [1, 1]}}, ["train.seeds", "distinct"]),
    ({"sweep": {"search_space": {"method.prompt_len": {"type": "choice", "values": [1]}}}},
     ["sweep.search_space", "unknown search key 'method.prompt_len'"]),
    ({"sweep": {"search_space": {"train.lr": {"type": "loguniform", "low": 0, "high": 1}}}}, ["loguniform", "'low' > 0"]),
    ({"sweep": {"search_space": {"train.lr": {"type": "uniform", "low": 2, "high": 1}}}}, ["must be < 'high'"]),
    ({"method": {"strategy": "fine_tuning", "head": "verbalizer"}}, ["method.head must be 'classifier' or 'mean_classifier'"]),
])
def test_bad_config_names_field_and_allowed_values(tmp_path, data, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data))
    for fragment in expected:
        assert fragment in str(err.value)


def test_all_errors_are_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, {"method": {"prompt_length": -1, "encoder": "gru"}, "train": {"lr": "x"}}))
    assert "3 configuration error(s)" in str(err.value)


def test_overrides_are_typed_yaml_scalars(tmp_path):
    cfg = load_config(QUICKSTART, ["method.prompt_length=32", "train.lr=1e-3", "train.seeds=[0,1,2]",
                                   "method.strategy=encoder_ipt"])
    assert cfg.method.prompt_length == 32 and cfg.train.lr == 1e-3 and cfg.train.seeds == [0, 1, 2]
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(QUICKSTART, ["method.prompt_length"])


def test_relative_data_dir_is_relative_to_the_yaml(tmp_path):
    (tmp_path / "data" / "CB").mkdir(parents=True)
    path = write(tmp_path, {"task": {"name": "cb", "data_dir": "data/CB"}})
    assert load_config(path).task.data_dir == str((tmp_path / "data" / "CB").resolve())


def test_paths_in_search_space_choices_are_absolute_too(tmp_path):
    """Each trial runs in its own directory: a choice's table / encoder folder resolves like the base's."""
    path = write(tmp_path, {"method": {"strategy": "prompt_tuning"}, "sweep": {"search_space": {
        "method": {"type": "choice", "values": [
            {"strategy": "prompt_tuning"},
            {"strategy": "encoder_ipt", "table_init": "pre", "encoder_init": "pre"},
            {"strategy": "random_ipt", "table_init": "random"}]},
        "method.table_init": {"type": "choice", "values": ["random", "pre"]}}}})
    space = load_config(path).sweep.search_space
    choices = space["method"].values
    assert choices[1]["table_init"] == choices[1]["encoder_init"] == str((tmp_path / "pre").resolve())
    assert choices[2]["table_init"] == "random"  # a word, not a path
    assert space["method.table_init"].values == ["random", str((tmp_path / "pre").resolve())]


def test_every_experiment_yaml_validates():
    from pathlib import Path

    files = sorted(Path("experiments").glob("*.yaml"))
    assert files
    for path in files:
        assert isinstance(load_config(path), ExperimentConfig), path


def test_cli_validate_exit_codes(tmp_path, capsys):
    assert main(["validate", QUICKSTART]) == 0
    assert main(["validate", str(write(tmp_path, {"method": {"table_layout": "sparse"}}))]) == 2
    err = capsys.readouterr().err
    assert "method.table_layout" in err and "'full', 'compact' or 'lowrank'" in err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "broken.yaml").write_text("method: [unclosed")
    assert main(["validate", str(tmp_path / "broken.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_a_section_can_be_one_search_dimension_of_partial_sections(tmp_path):
    from ipt_ray.sweep import decode_params, to_tune_space

    variants = [{"strategy": "random_ipt", "injection": "prefix"}, {"strategy": "encoder_ipt", "encoder": "rnn"}]
    cfg = load_config(write(tmp_path, {"method": {"prompt_length": 32},
                                       "sweep": {"search_space": {"method": {"type": "choice", "values": variants}}}}))
    sampled = to_tune_space(cfg.sweep.search_space)["method"].sample()  # JSON text, as Optuna needs scalars
    assert isinstance(sampled, str)
    trial_cfg = cfg.with_overrides(decode_params({"method": sampled}))
    assert trial_cfg.method.prompt_length == 32  # untouched fields keep the base value
    assert trial_cfg.method.strategy in ("random_ipt", "encoder_ipt")
    with pytest.raises(ConfigError, match="unknown field"):
        load_config(write(tmp_path, {"sweep": {"search_space": {"method": {"type": "choice", "values": [{"stratgy": 1}]}}}}))


def test_a_config_built_in_code_with_a_relative_path_is_refused_before_a_sweep():
    """Only load_config knows a YAML's folder; a dict handed to validate_config keeps its relative path, and
    the sweep's preflight names it."""
    from ipt_ray.config import validate_config
    from ipt_ray.preflight.checks import _check_absolute_paths

    cfg = validate_config({"method": {"strategy": "pretrained_ipt", "table_init": "runs/pretrain/x"}})
    with pytest.raises(ConfigError, match=r"method\.table_init 'runs/pretrain/x' is relative, but Tune runs each"):
        _check_absolute_paths(cfg)
