"""Checks run before any training or write: the config and its search space, task data, the backbone, the
files a strategy reads."""

from ipt_ray.preflight.backbone import TOKENIZER_FILES, WEIGHT_FILES, BackboneInfo, check_backbone, identity_of
from ipt_ray.preflight.checks import check_task, preflight, strategy_files

__all__ = ["TOKENIZER_FILES", "WEIGHT_FILES", "BackboneInfo", "check_backbone", "check_task",
           "identity_of", "preflight", "strategy_files"]
