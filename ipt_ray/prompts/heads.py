"""Heads: input-token hidden states ``[B, n, d]`` -> class logits ``[B, C]``."""

from __future__ import annotations

import torch
from torch import nn

from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import BuildContext, Head, register_head
from ipt_ray.prompts.encoders import masked_mean


class SeededDropout(nn.Module):
    """Dropout with its own generator, so a seed's masks do not depend on other seeds in the same process."""

    def __init__(self, p: float, seed: int):
        super().__init__()
        self.p, self.seed = p, seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator(x.device), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)

    def rng_state(self) -> dict[str, torch.Tensor]:
        return {k: g.get_state() for k, g in self._generators.items()}

    def set_rng_state(self, states: dict[str, torch.Tensor]) -> None:
        for key, state in states.items():
            self.generator(torch.device(key)).set_state(state)


@register_head("classifier")
class ClassifierHead(Head):
    """A linear layer on the first input position (``[CLS]`` / ``<s>``); it trains."""

    def __init__(self, dim: int, num_labels: int, dropout: float, seed: int):
        super().__init__()
        self.dropout = SeededDropout(dropout, seed)
        self.linear = nn.Linear(dim, num_labels)

    @classmethod
    def build(cls, ctx: BuildContext) -> ClassifierHead:
        return cls(ctx.hidden_size, ctx.num_labels, ctx.method.head_dropout, int(ctx.extras.get("seed", 0)))

    def forward(self, hidden: torch.Tensor, batch: PromptedBatch, mlm_head: nn.Module | None) -> torch.Tensor:
        return self.linear(self.dropout(hidden[:, 0]))


@register_head("mean_classifier")
class MeanClassifierHead(ClassifierHead):
    """A linear layer on the mean of the input tokens' hidden states (padding excluded); it trains.

    The readout sentence-embedding backbones were trained with (all-MiniLM-L6-v2 pools by the mean), whose
    first position is not trained as a summary: a logistic regression on frozen MiniLM reads CB at 75.0%
    from the mean and 67.9% from ``[CLS]`` (``python -m bench.frozen_probe``)."""

    def forward(self, hidden: torch.Tensor, batch: PromptedBatch, mlm_head: nn.Module | None) -> torch.Tensor:
        return self.linear(self.dropout(masked_mean(hidden, batch.attention_mask)))  # pooled: [B, d]


@register_head("verbalizer")
class VerbalizerHead(Head):
    """The frozen MLM head's logits at the ``<mask>`` position for one label word per class."""

    def __init__(self, label_word_ids: list[int], mask_token_id: int):
        super().__init__()
        self.register_buffer("label_word_ids", torch.tensor(label_word_ids, dtype=torch.long))
        self.mask_token_id = mask_token_id

    @classmethod
    def build(cls, ctx: BuildContext) -> VerbalizerHead:
        if ctx.label_word_ids is None or ctx.mask_token_id is None:
            raise ValueError("method.head 'verbalizer' needs a tokenizer with a mask token and label words")
        return cls(ctx.label_word_ids, ctx.mask_token_id)

    def forward(self, hidden: torch.Tensor, batch: PromptedBatch, mlm_head: nn.Module | None) -> torch.Tensor:
        if mlm_head is None:
            raise ValueError("method.head 'verbalizer' needs a backbone loaded with its MLM head")
        is_mask = batch.input_ids == self.mask_token_id
        position = is_mask.float().argmax(dim=1)
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), position]
        return mlm_head(rows)[:, self.label_word_ids]
