"""How prompts enter the frozen backbone."""

from __future__ import annotations

import inspect
from functools import lru_cache

import torch
from torch import nn
from transformers import DynamicCache

from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import BuildContext, Injection, register_injection


def _positions(mask: torch.Tensor, offset: int) -> torch.Tensor:
    """Position ids that skip masked positions, so padding never shifts a real token's position."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0) + offset


def _token_types(batch: PromptedBatch, prompt_len: int) -> torch.Tensor | None:
    if batch.token_type_ids is None:
        return None
    if prompt_len == 0:
        return batch.token_type_ids
    zeros = batch.token_type_ids.new_zeros(batch.size, prompt_len)
    return torch.cat([zeros, batch.token_type_ids], dim=1)


@register_injection("none")
class NoInjection(Injection):
    """Fine-tuning: the plain backbone."""

    @classmethod
    def build(cls, ctx: BuildContext) -> NoInjection:
        return cls()

    def run(self, encoder, batch, state, position_offset):
        out = encoder(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            token_type_ids=batch.token_type_ids,
            position_ids=_positions(batch.attention_mask, position_offset),
        )
        return out.last_hidden_state


@register_injection("input")
class InputInjection(Injection):
    """Prompt Tuning: ``inputs_embeds = [P ; E(x)]``, mask ``[prompt_mask ; mask]``; returns ``[B, n, d]``."""

    @classmethod
    def build(cls, ctx: BuildContext) -> InputInjection:
        return cls()

    def run(self, encoder, batch, state, position_offset):
        embeds = encoder.get_input_embeddings()(batch.input_ids)
        k = 0 if state is None else state[0].shape[1]
        if k:
            prompts, prompt_mask = state
            embeds = torch.cat([prompts.to(embeds.dtype), embeds], dim=1)
            mask = torch.cat([prompt_mask.to(batch.attention_mask.dtype), batch.attention_mask], dim=1)
        else:
            mask = batch.attention_mask
        out = encoder(
            inputs_embeds=embeds,
            attention_mask=mask,
            token_type_ids=_token_types(batch, k),
            position_ids=_positions(mask, position_offset),
        )
        return out.last_hidden_state[:, k:]


@register_injection("prefix")
class PrefixInjection(Injection):
    """Prefix Tuning / P-tuning v2: every layer's keys and values for k prefix positions.

    ``prepare``: ``P [B, k, w] -> kv [B, k, 2 * layers * d]``, through ``MLP(P)`` (``prefix_projection:
    mlp``, ``w = d``, Prefix Tuning's reparameterisation) or as given (``none``, ``w = 2 * layers * d``,
    P-tuning v2 on RoBERTa: only reshaped). ``run`` reshapes it to per-layer ``[B, heads, k, head_dim]``
    tensors in a fresh ``DynamicCache`` (transformers 5) and passes a 2-D mask of length ``k + n``. Input
    positions start at the backbone's first position, as without a prefix.
    """

    def __init__(self, dim: int, layers: int, heads: int, hidden: int, projection: str = "mlp"):
        super().__init__()
        self.layers, self.heads, self.head_dim = layers, heads, dim // heads
        self.kv_width = 2 * layers * dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, self.kv_width)) \
            if projection == "mlp" else None

    @classmethod
    def build(cls, ctx: BuildContext) -> PrefixInjection:
        m = ctx.method
        return cls(ctx.hidden_size, ctx.num_layers, ctx.num_heads, m.prefix_hidden, m.prefix_projection)

    def prepare(self, prompts, prompt_mask):
        if self.mlp is not None:
            return self.mlp(prompts), prompt_mask
        if prompts.shape[-1] != self.kv_width:
            raise ValueError(f"method.prefix_projection 'none' needs prompts of width 2 * layers * d = "
                             f"{self.kv_width}; the source made width {prompts.shape[-1]} (BuildContext.prompt_width)")
        return prompts, prompt_mask

    def run(self, encoder, batch, state, position_offset):
        kv, prompt_mask = state
        b, k, _ = kv.shape
        kv = kv.view(b, k, 2 * self.layers, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cache = DynamicCache(config=encoder.config)
        for layer in range(self.layers):
            cache.update(kv[2 * layer], kv[2 * layer + 1], layer)
        mask = torch.cat([prompt_mask.to(batch.attention_mask.dtype), batch.attention_mask], dim=1)
        out = encoder(
            input_ids=batch.input_ids,
            attention_mask=mask,
            token_type_ids=batch.token_type_ids,
            position_ids=_positions(batch.attention_mask, position_offset),
            use_cache=False,
            **{_cache_kwarg(type(encoder)): cache},
        )
        return out.last_hidden_state


@lru_cache(maxsize=None)
def _cache_kwarg(encoder_class: type) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` during 5.x (the old name goes in 5.40)."""
    return "cache" if "cache" in inspect.signature(encoder_class.forward).parameters else "past_key_values"
