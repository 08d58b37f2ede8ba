"""Typed experiment configuration (pydantic sections), loaded from YAML with --set overrides."""

from ipt_ray.config.sections import (  # noqa: F401
    TaskName,
    Strategy,
    STRATEGIES,
    TRIAL_SLOT,
    ConfigError,
    TaskConfig,
    BackboneConfig,
    MethodConfig,
    TrainConfig,
    ParamSpace,
    SweepConfig,
    TrackingConfig,
    ClusterConfig,
    PRETRAIN_SPLITS,
    PretrainSource,
    PretrainConfig,
    ExperimentConfig,
    set_dotted,
    validate_config,
    parse_value,
    load_config,
    ConfigLike,
    as_config,
)

__all__ = ['TaskName', 'Strategy', 'STRATEGIES', 'TRIAL_SLOT', 'ConfigError', 'TaskConfig', 'BackboneConfig', 'MethodConfig', 'TrainConfig', 'ParamSpace', 'SweepConfig', 'TrackingConfig', 'ClusterConfig', 'PRETRAIN_SPLITS', 'PretrainSource', 'PretrainConfig', 'ExperimentConfig', 'set_dotted', 'validate_config', 'parse_value', 'load_config', 'ConfigLike', 'as_config']
