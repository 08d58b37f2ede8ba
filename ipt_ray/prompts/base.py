"""The three orthogonal pieces of a prompted model and their registries.

- A *source* makes prompt vectors ``P: [B, k, d]`` and a prompt mask ``[B, k]`` (1 = real position).
- An *injection* puts them into the frozen backbone (input layer or per-layer key/values) and returns
  the hidden states of the input tokens only, ``[B, n, d]``, aligned with ``input_ids``.
- A *head* turns those hidden states into class logits ``[B, C]``.

Adding a strategy is one class with ``@register_source("name")``; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from ipt_ray.batches import PromptedBatch
from ipt_ray.config import MethodConfig, StrategySpec, register_strategy, strategy_spec


@dataclass
class BuildContext:
    """What a piece may need to build itself; all derived from the backbone, task and training data."""

    method: MethodConfig
    hidden_size: int
    num_layers: int
    num_heads: int
    vocab_size: int
    num_labels: int
    word_embeddings: torch.Tensor | None = None  # [V, d] frozen copy, for initialisation
    label_word_ids: list[int] | None = None  # verbalizer
    mask_token_id: int | None = None
    seen_token_ids: torch.Tensor | None = None  # ids occurring in the task's training data (compact table)
    hard_prompt_ids: torch.Tensor | None = None  # [h] token ids of method.hard_prompt (no special tokens)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_width(self) -> int:
        """The width of the vectors a source must emit (:meth:`MethodConfig.prompt_width`)."""
        return self.method.prompt_width(self.hidden_size, self.num_layers)

    def persistable(self) -> dict[str, Any]:
        """The data-derived parts an adapter needs to rebuild the same shapes at load time."""
        return {"seen_token_ids": self.seen_token_ids}


class PromptSource(nn.Module):
    """Makes prompt vectors for a batch: ``forward(batch) -> (P [B, k, d], mask [B, k])``."""

    length: int

    @classmethod
    def build(cls, ctx: BuildContext) -> PromptSource:
        raise NotImplementedError

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


class Injection(nn.Module):
    """Puts prompts into the backbone.

    ``prepare(P, mask)`` turns prompts into per-instance state (batch first, so several seeds' states
    concatenate along dim 0); ``run(encoder, batch, state)`` runs the backbone and returns the input
    tokens' hidden states ``[B, n, d]``.
    """

    @classmethod
    def build(cls, ctx: BuildContext) -> Injection:
        raise NotImplementedError

    def prepare(self, prompts: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return prompts, prompt_mask

    def run(
        self, encoder: nn.Module, batch: PromptedBatch, state: tuple[torch.Tensor, torch.Tensor] | None, position_offset: int
    ) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Head(nn.Module):
    """``forward(hidden [B, n, d], batch, mlm_head) -> logits [B, C]``."""

    @classmethod
    def build(cls, ctx: BuildContext) -> Head:
        raise NotImplementedError


T = TypeVar("T", bound=type)


def _registry(kind: str) -> tuple[dict[str, type], Callable[[str], Callable[[T], T]]]:
    table: dict[str, type] = {}

    def register(name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            if name in table:
                raise ValueError(f"{kind} {name!r} registered twice")
            table[name] = cls
            cls.registered_name = name  # type: ignore[attr-defined]
            return cls

        return deco

    return table, register


SOURCES: dict[str, type] = {}
INJECTIONS, register_injection = _registry("injection")
HEADS, register_head = _registry("head")


def register_source(strategy: StrategySpec | str) -> Callable[[T], T]:
    """Bind a :class:`PromptSource` class to a strategy: ``@register_source(StrategySpec(...))`` registers
    the strategy's self-description too (its fields, label, base method, files, flags); a name binds a
    class to a strategy already described in :mod:`ipt_ray.config.strategies`."""
    spec = register_strategy(strategy) if isinstance(strategy, StrategySpec) else strategy_spec(strategy)

    def deco(cls: T) -> T:
        if spec.name in SOURCES and SOURCES[spec.name] is not cls:
            raise ValueError(f"prompt source {spec.name!r} registered twice")
        SOURCES[spec.name] = cls
        cls.registered_name = spec.name  # type: ignore[attr-defined]
        cls.spec = spec  # type: ignore[attr-defined]
        return cls

    return deco


def lookup(table: dict[str, type], kind: str, name: str) -> type:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r} (allowed: {', '.join(sorted(table))})")
    return table[name]


def first_content_tokens(
    input_ids: torch.Tensor, content_mask: torch.Tensor, limit: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` content-token ids of each row, left-aligned, and their mask.

    ``limit`` is an int or a per-row tensor ``[B]``. Returns ``ids [B, m]`` (0 where masked) and
    ``mask [B, m]`` with ``m = max(limit)`` (``m = limit`` for an int, even for an empty batch).
    Vectorised: no loop over the batch, and no device sync for an int limit.
    """
    batch = input_ids.shape[0]
    limits = torch.as_tensor(limit, device=input_ids.device).expand(batch) if not torch.is_tensor(limit) or limit.dim() == 0 \
        else limit
    if torch.is_tensor(limit):
        width = int(limits.max().item()) if batch else 0
    else:
        width = int(limit)
    rank = content_mask.long().cumsum(dim=1) - 1
    keep = content_mask.bool() & (rank < limits.unsqueeze(1))
    rows, cols = keep.nonzero(as_tuple=True)
    ids = input_ids.new_zeros(batch, width)
    mask = input_ids.new_zeros(batch, width)
    ids[rows, rank[rows, cols]] = input_ids[rows, cols]
    mask[rows, rank[rows, cols]] = 1
    return ids, mask
