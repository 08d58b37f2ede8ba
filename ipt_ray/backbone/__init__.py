"""The frozen pretrained language model and its tokenizer, offline-friendly, and its identity; artefacts
made for it (adapters, prompt tables) as safetensors + JSON, never pickles."""

from ipt_ray.backbone.artefacts import (  # noqa: F401
    ADAPTER,
    PROMPT_TABLE,
    SOFT_PROMPT_NAMES,
    Artefact,
    ArtefactError,
    ArtefactInfo,
    ArtefactKind,
    artefact_files,
    inspect_artefact,
    load_artefact,
    not_safetensors,
    read_tensors,
    save_artefact,
    soft_prompt_name,
    tensor_shapes,
)
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

__all__ = ['BackboneError', 'ALIASES', 'resolve_name', 'Backbone', 'tokenizer_hash', 'check_identity', 'is_offline', 'load_backbone',
           'ADAPTER', 'PROMPT_TABLE', 'SOFT_PROMPT_NAMES', 'Artefact', 'ArtefactError', 'ArtefactInfo', 'ArtefactKind',
           'artefact_files', 'inspect_artefact', 'load_artefact', 'not_safetensors', 'read_tensors', 'save_artefact',
           'soft_prompt_name', 'tensor_shapes']
