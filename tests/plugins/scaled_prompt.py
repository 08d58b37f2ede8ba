"""A strategy defined outside ipt_ray: the proof that a new strategy is one self-describing class.

Scaled Prompt Tuning: a soft prompt ``[k, d]`` times one learned scalar per prompt position. Its
``StrategySpec`` gives everything the rest of ipt-ray reads: its own ``method.prompt_scale`` field,
its label, the base method the significance tests compare it against, its qualifier.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ipt_ray.batches import PromptedBatch
from ipt_ray.config import StrategyOptions, StrategySpec
from ipt_ray.prompts import BuildContext, PromptSource, register_source


class ScaledPromptOptions(StrategyOptions):
    prompt_scale: float = Field(1.0, gt=0.0, le=10.0, description="initial scale of every prompt position")


SCALED_PROMPT = StrategySpec(
    "scaled_prompt", "Scaled PT", base="prompt_tuning", options=(ScaledPromptOptions,), qualifiers=("prompt_scale",),
    order=15, description="a soft prompt times a learned scale per position")


@register_source(SCALED_PROMPT)
class ScaledSoftPrompt(PromptSource):
    """``forward(batch) -> (P [B, k, d], mask [B, k])``: ``P = scale[:, None] * prompt``, the same for every instance."""

    def __init__(self, prompt: torch.Tensor, scale: float):
        super().__init__()
        self.length = int(prompt.shape[0])
        self.prompt = nn.Parameter(prompt)  # [k, d]
        self.scale = nn.Parameter(torch.full((self.length,), float(scale)))  # [k]

    @classmethod
    def build(cls, ctx: BuildContext) -> ScaledSoftPrompt:
        k = ctx.method.prompt_length
        return cls(torch.randn(k, ctx.hidden_size) * 0.02, ctx.method.prompt_scale)

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = (self.scale[:, None] * self.prompt).unsqueeze(0).expand(batch.size, -1, -1)
        return prompts, batch.input_ids.new_ones(batch.size, self.length)
