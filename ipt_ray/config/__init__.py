"""Typed experiment configuration (pydantic sections), loaded from YAML with ``--set`` overrides.

``strategies`` is the strategy registry every stage reads; ``method`` the section built from it.
"""

from ipt_ray.config.base import TRIAL_SLOT, ConfigError, StrictSection, TaskName, section_fields, set_dotted
from ipt_ray.config.dataset import BUILTIN_TASKS, DATASET_FORMATS, DATASET_SPLITS, DatasetConfig, template_fields
from ipt_ray.config.loading import (
    ConfigLike,
    absolute_dataset_files,
    absolute_paths,
    as_config,
    load_config,
    parse_overrides,
    parse_value,
    path_fields,
    validate_config,
)
from ipt_ray.config.method import MethodConfig, method_defaults, method_fields
from ipt_ray.config.plugins import load_plugin, load_plugins
from ipt_ray.config.pretraining import PRETRAIN_SPLITS, PretrainConfig, PretrainSource
from ipt_ray.config.sections import (
    BackboneConfig,
    ClusterConfig,
    ExperimentConfig,
    ParamSpace,
    SweepConfig,
    TaskConfig,
    TrackingConfig,
    TrainConfig,
)
from ipt_ray.config.strategies import (
    FileOption,
    StrategyOptions,
    StrategySpec,
    hard_prompt_for,
    register_strategy,
    strategy_names,
    strategy_spec,
    strategy_specs,
)
from ipt_ray.config.variants import MAX_COMBINATIONS, config_key, sweep_variants

__all__ = [
    "TRIAL_SLOT", "ConfigError", "StrictSection", "TaskName", "section_fields", "set_dotted", "ConfigLike",
    "BUILTIN_TASKS", "DATASET_FORMATS", "DATASET_SPLITS", "DatasetConfig", "template_fields", "absolute_dataset_files",
    "absolute_paths", "as_config", "load_config", "parse_overrides", "parse_value", "path_fields", "validate_config",
    "MethodConfig", "method_defaults", "method_fields", "load_plugin", "load_plugins", "PRETRAIN_SPLITS",
    "PretrainConfig", "PretrainSource", "BackboneConfig", "ClusterConfig", "ExperimentConfig", "ParamSpace",
    "SweepConfig", "TaskConfig", "TrackingConfig", "TrainConfig", "FileOption", "StrategyOptions", "StrategySpec",
    "hard_prompt_for", "register_strategy", "strategy_names", "strategy_spec", "strategy_specs",
    "MAX_COMBINATIONS", "config_key", "sweep_variants",
]
