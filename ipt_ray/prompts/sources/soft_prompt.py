"""Task-level prompt sources: one prompt shared by every instance of the task."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ipt_ray.backbone import read_tensors, soft_prompt_name
from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import BuildContext, PromptSource, register_source


def initial_prompt_rows(ctx: BuildContext, k: int, how: str) -> torch.Tensor:
    """Prompt Tuning's init: rows of real word embeddings ('vocab') or noise of the same scale."""
    emb = ctx.word_embeddings
    std = float(emb.std()) if emb is not None else 0.02
    if how == "vocab" and emb is not None:
        # Skip the first ids (special and unused tokens in BERT/RoBERTa vocabularies).
        low = min(1000, emb.shape[0] - 1)
        ids = torch.randint(low, emb.shape[0], (k,))
        return emb[ids].clone().float()
    return torch.randn(k, ctx.hidden_size) * std


@register_source("prompt_tuning")
class SoftPrompt(PromptSource):
    """Prompt Tuning / Prefix Tuning: one learned ``[k, d]`` tensor, the same for every instance."""

    def __init__(self, prompt: torch.Tensor):
        super().__init__()
        self.length = int(prompt.shape[0])
        self.prompt = nn.Parameter(prompt)

    @classmethod
    def build(cls, ctx: BuildContext) -> SoftPrompt:
        return cls(initial_prompt_rows(ctx, ctx.method.prompt_length, ctx.method.prompt_init))

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        b = batch.size
        prompts = self.prompt.unsqueeze(0).expand(b, -1, -1)
        return prompts, batch.input_ids.new_ones(b, self.length)


@register_source("ppt")
class PretrainedSoftPrompt(SoftPrompt):
    """PPT: a soft prompt initialised from a prompt pretrained on other data (a ``[k, d]`` safetensors file)."""

    @classmethod
    def build(cls, ctx: BuildContext) -> PretrainedSoftPrompt:
        path = Path(ctx.method.pretrained_prompt or "")
        if not path.is_file():
            raise ValueError(f"method.pretrained_prompt: no such file {str(path)!r}")
        tensors = read_tensors(path, "method.pretrained_prompt")  # safetensors only: a pickle is refused unread
        prompt = tensors[soft_prompt_name(tensors, "method.pretrained_prompt", path)]
        if prompt.dim() != 2 or prompt.shape[1] != ctx.hidden_size:
            raise ValueError(
                f"method.pretrained_prompt {str(path)!r} has shape {tuple(prompt.shape)}, "
                f"expected [k, {ctx.hidden_size}] for this backbone"
            )
        k = ctx.method.prompt_length
        if prompt.shape[0] < k:
            raise ValueError(f"method.pretrained_prompt has {prompt.shape[0]} rows, fewer than prompt_length {k}")
        return cls(prompt[:k].float().clone())


@register_source("structured")
class StructuredPrompt(PromptSource):
    """Structured Prompt Tuning (Liu, Lee, Yih 2022): ``P = H(e_task)`` with a hypernetwork H.

    H is ``linear`` (``[t] -> [k*d]``), ``lowrank`` (``[t] -> [r] -> [k*d]``, no bias in between) or
    ``mlp`` (``[t] -> tanh([h]) -> [k*d]``). Only ``e_task`` and H train.
    """

    def __init__(self, k: int, d: int, t: int, kind: str, rank: int, hidden: int, init: torch.Tensor):
        super().__init__()
        self.length, self.dim = k, d
        self.task_embedding = nn.Parameter(torch.randn(t) / t**0.5)
        if kind == "linear":
            self.hyper = nn.Linear(t, k * d)
        elif kind == "lowrank":
            self.hyper = nn.Sequential(nn.Linear(t, rank, bias=False), nn.Linear(rank, k * d))
        elif kind == "mlp":
            self.hyper = nn.Sequential(nn.Linear(t, hidden), nn.Tanh(), nn.Linear(hidden, k * d))
        else:  # pragma: no cover - the config validates this
            raise ValueError(f"unknown hypernetwork {kind!r} (allowed: linear, lowrank, mlp)")
        last = self.hyper if isinstance(self.hyper, nn.Linear) else self.hyper[-1]
        # Start from the same place Prompt Tuning starts (word-embedding rows), small weights on top.
        with torch.no_grad():
            last.bias.copy_(init.reshape(-1))
            last.weight.mul_(0.1)

    @classmethod
    def build(cls, ctx: BuildContext) -> StructuredPrompt:
        m = ctx.method
        init = initial_prompt_rows(ctx, m.prompt_length, m.prompt_init)
        return cls(m.prompt_length, ctx.hidden_size, m.task_embedding_dim, m.hypernetwork, m.hypernetwork_rank,
                   m.hypernetwork_hidden, init)

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        prompt = self.hyper(self.task_embedding).view(self.length, self.dim)
        b = batch.size
        return prompt.unsqueeze(0).expand(b, -1, -1), batch.input_ids.new_ones(b, self.length)
