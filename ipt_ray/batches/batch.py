"""One tokenised batch as every stage after tokenisation sees it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PromptedBatch:
    """One tokenised batch. ``content_mask`` marks real tokens that are not special tokens."""

    input_ids: torch.Tensor  # [B, n]
    attention_mask: torch.Tensor  # [B, n]
    content_mask: torch.Tensor  # [B, n]
    token_type_ids: torch.Tensor | None = None  # [B, n]
    labels: torch.Tensor | None = None  # [B]
    group: torch.Tensor | None = None  # [B] question ids (MultiRC exact match)

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> PromptedBatch:
        return PromptedBatch(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()})
