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

# The backbone itself (torch, transformers) loads on first use of one of these names: a sweep's driver reads
# artefact file names from this package and never loads a model (bench/results/scale_bounded.md).
_FROM_LOADING = ('BackboneError', 'ALIASES', 'resolve_name', 'Backbone', 'tokenizer_hash', 'check_identity',
                 'is_offline', 'load_backbone')


def __getattr__(name: str):
    if name in _FROM_LOADING:
        from ipt_ray.backbone import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ['BackboneError', 'ALIASES', 'resolve_name', 'Backbone', 'tokenizer_hash', 'check_identity', 'is_offline', 'load_backbone',
           'ADAPTER', 'PROMPT_TABLE', 'SOFT_PROMPT_NAMES', 'Artefact', 'ArtefactError', 'ArtefactInfo', 'ArtefactKind',
           'artefact_files', 'inspect_artefact', 'load_artefact', 'not_safetensors', 'read_tensors', 'save_artefact',
           'soft_prompt_name', 'tensor_shapes']
