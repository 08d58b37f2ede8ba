"""Preflight of the backbone: its files are there, its config and tokenizer load (never its weights), and
what an artefact must match (its identity); the prompt plus the input fit its position embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from huggingface_hub import try_to_load_from_cache
from transformers import AutoConfig, AutoTokenizer
from transformers.utils import logging as hf_logging

from ipt_ray.backbone import BackboneError, is_offline, resolve_name, tokenizer_hash
from ipt_ray.batches import text_token_ids
from ipt_ray.config import BackboneConfig, ConfigError, ExperimentConfig

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    source: str  # local folder or hub name
    revision: str | None
    offline: bool
    config: Any | None  # transformers PretrainedConfig; None when it cannot be had without the network

    def identity(self) -> dict[str, Any]:
        return identity_of(self.name, self.revision, self.offline)


def check_backbone(cfg: BackboneConfig) -> BackboneInfo:
    """Resolve the backbone and check that its files are there; loads its config, never its weights."""
    source = resolve_name(cfg.name)  # alias package, missing folder, folder without config.json
    offline = is_offline(cfg)
    folder = Path(source)
    if folder.is_dir():
        names = {p.name for p in folder.iterdir()}
        if not names & set(TOKENIZER_FILES):
            raise BackboneError(f"backbone.name {cfg.name!r}: folder {source} has no tokenizer files "
                                f"(looked for: {', '.join(TOKENIZER_FILES)})")
        if not names & set(WEIGHT_FILES):
            raise BackboneError(f"backbone.name {cfg.name!r}: folder {source} has no model weights "
                                f"(looked for: {', '.join(WEIGHT_FILES)})")
    elif offline:
        _check_hub_cache(cfg, source)
    else:
        return BackboneInfo(cfg.name, source, cfg.revision, offline, None)  # the hub answers at load time
    return BackboneInfo(cfg.name, source, cfg.revision, offline, _hf_config(source, cfg.revision, cfg.name))


def _check_hub_cache(cfg: BackboneConfig, source: str) -> None:
    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(source, filename, revision=cfg.revision), str)

    why = "HF_HUB_OFFLINE=1" if not cfg.local_files_only else "backbone.local_files_only"
    if not cached("config.json"):
        raise BackboneError(
            f"backbone.name {cfg.name!r} is not in the Hugging Face cache and downloads are off ({why}): "
            f"download it once with network (`hf download {source}`), or give a local folder or the alias "
            "'minilm-l6'")
    if not any(cached(f) for f in TOKENIZER_FILES):
        raise BackboneError(f"backbone.name {cfg.name!r}: the Hugging Face cache has its config but no tokenizer "
                            f"files ({why})")
    if not any(cached(f) for f in WEIGHT_FILES):
        raise BackboneError(f"backbone.name {cfg.name!r}: the Hugging Face cache has its config but no weights "
                            f"({why}; looked for: {', '.join(WEIGHT_FILES)})")


@lru_cache(maxsize=16)
def _hf_config(source: str, revision: str | None, name: str) -> Any:
    try:
        return AutoConfig.from_pretrained(source, revision=revision, local_files_only=True)
    except (OSError, ValueError) as err:
        raise BackboneError(f"backbone.name {name!r}: cannot read its config.json ({err})") from err


@lru_cache(maxsize=16)
def backbone_tokenizer(source: str, revision: str | None, local_only: bool, name: str) -> Any:
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=local_only)
    except (OSError, ValueError, TypeError) as err:
        raise BackboneError(f"backbone.name {name!r}: cannot load its tokenizer ({err})") from err


def identity_of(name: str, revision: str | None = None, local_files_only: bool | None = None) -> dict[str, Any]:
    """What :meth:`ipt_ray.backbone.Backbone.identity` gives, from AutoConfig + AutoTokenizer alone (no weights)."""
    offline = is_offline(BackboneConfig(name=name)) if local_files_only is None else bool(local_files_only)
    source = resolve_name(name)
    local_only = offline or Path(source).is_dir()
    config = _hf_config(source, revision, name) if local_only else _online_config(source, revision)
    tok = backbone_tokenizer(source, revision, local_only, name)
    return {
        "name": name,
        "model_type": config.model_type,
        "hidden_size": int(config.hidden_size),
        "num_layers": int(config.num_hidden_layers),
        "vocab_size": int(config.vocab_size),
        "tokenizer_hash": tokenizer_hash(tok),
    }


def _online_config(source: str, revision: str | None) -> Any:
    return AutoConfig.from_pretrained(source, revision=revision)


class IdentityOnly:
    """Enough of a Backbone for :func:`check_identity`: a name and an identity, no weights."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.name = identity["name"]
        self._identity = identity

    def identity(self) -> dict[str, Any]:
        return self._identity


def check_positions(cfg: ExperimentConfig, info: BackboneInfo) -> None:
    """The prompt and the input share the backbone's position embeddings (input injection)."""
    config = info.config
    max_pos = getattr(config, "max_position_embeddings", None) if config is not None else None
    if not max_pos:
        return
    offset = int(getattr(config, "pad_token_id", 0) or 0) + 1 if config.model_type in ROBERTA_LIKE else 0
    m, n = cfg.method, cfg.task.max_length
    prompts_take_positions = m.uses_prompt and m.injection == "input"
    hard = getattr(m, "hard_prompt", None) if prompts_take_positions else None
    h = len(text_token_ids(backbone_tokenizer(info.source, info.revision, info.offline or Path(info.source).is_dir(),
                                              cfg.backbone.name), hard)) if hard else 0
    k = m.prompt_length + m.task_prompt_length + h if prompts_take_positions else 0
    if offset + k + n > max_pos:
        parts = ["method.prompt_length", *(["task_prompt_length"] if m.task_prompt_length else []),
                 *([f"the {h} tokens of hard_prompt {hard!r}"] if h else [])]
        prompt = " + ".join(parts)
        what = f"task.max_length {n} + {prompt} {k}" if k else f"task.max_length {n}"
        extra = f" (+{offset} position offset)" if offset else ""
        raise ConfigError(f"{what}{extra} = {offset + k + n} positions, more than backbone {cfg.backbone.name!r} "
                          f"has ({max_pos} max_position_embeddings); lower task.max_length or method.prompt_length")
