"""Checks run before any training or write: config, task data, backbone, files a strategy reads."""

from ipt_ray.preflight.checks import (  # noqa: F401
    MAX_COMBINATIONS,
    TOKENIZER_FILES,
    WEIGHT_FILES,
    preflight,
    sweep_variants,
    check_task,
    check_backbone,
    identity_of,
)

__all__ = ['MAX_COMBINATIONS', 'TOKENIZER_FILES', 'WEIGHT_FILES', 'preflight', 'sweep_variants', 'check_task', 'check_backbone', 'identity_of']
