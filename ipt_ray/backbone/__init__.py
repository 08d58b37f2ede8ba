"""The frozen pretrained language model and its tokenizer, offline-friendly, and its identity."""

from ipt_ray.backbone.loading import (  # noqa: F401
    BackboneError,
    ALIASES,
    resolve_name,
    Backbone,
    tokenizer_hash,
    check_identity,
    is_offline,
    load_backbone,
)

__all__ = ['BackboneError', 'ALIASES', 'resolve_name', 'Backbone', 'tokenizer_hash', 'check_identity', 'is_offline', 'load_backbone']
