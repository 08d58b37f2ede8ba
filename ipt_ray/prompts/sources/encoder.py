"""Encoder IPT (Jiang et al. 2022): a small encoder reads the frozen table rows of the instance's first
tokens and emits its k prompts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import BuildContext, PromptSource, first_content_tokens, register_source
from ipt_ray.prompts.encoders import ENCODERS
from ipt_ray.prompts.sources.soft_prompt import initial_prompt_rows
from ipt_ray.prompts.sources.token_table import initial_table


@register_source("encoder_ipt")
class EncoderPrompt(PromptSource):
    """Encoder IPT: frozen table rows of the first ``max(1, ceil(r * n))`` content tokens -> encoder -> k prompts.

    ``forward(batch) -> (P [B, k, d], mask [B, k] of ones)``. ``n`` is the instance's content-token
    count and ``r`` is ``seq_util_rate``. Only the encoder trains; the table is a non-persistent
    buffer rebuilt from ``table_init`` at load time.
    """

    def __init__(self, k: int, table: torch.Tensor, encoder: str, hidden: int, seq_util_rate: float, init: torch.Tensor):
        super().__init__()
        self.length, self.rate = k, seq_util_rate
        self.register_buffer("table", table, persistent=False)
        dim = table.shape[1]
        self.encoder = ENCODERS[encoder](dim, hidden)
        self.project = nn.Linear(self.encoder.out_dim, init.numel())  # k * ctx.prompt_width (init is [k, w])
        with torch.no_grad():  # start near Prompt Tuning's init: word-embedding rows, small input weights
            self.project.bias.copy_(init.reshape(-1))
            self.project.weight.mul_(0.1)

    @classmethod
    def build(cls, ctx: BuildContext) -> EncoderPrompt:
        m = ctx.method
        table = initial_table(ctx, m.table_init or cls.spec.default_table_init)
        init = initial_prompt_rows(ctx, m.prompt_length, m.prompt_init)
        return cls(m.prompt_length, table, m.encoder, m.encoder_hidden, m.seq_util_rate, init)

    def read_lengths(self, content_mask: torch.Tensor) -> torch.Tensor:
        n = content_mask.sum(1).float()
        return torch.clamp(torch.ceil(n * self.rate - 1e-6), min=1).long()

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = first_content_tokens(batch.input_ids, batch.content_mask, self.read_lengths(batch.content_mask))
        rows = F.embedding(ids, self.table)
        features = self.encoder(rows, mask)
        prompts = self.project(features).view(batch.size, self.length, -1)
        return prompts, batch.input_ids.new_ones(batch.size, self.length)
