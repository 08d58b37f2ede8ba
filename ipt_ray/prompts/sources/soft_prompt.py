"""Task-level prompt sources: one prompt shared by every instance of the task."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ipt_ray.backbone import read_tensors, soft_prompt_name
from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import BuildContext, PromptSource, register_source


def initial_prompt_rows(ctx: BuildContext, k: int, how: str) -> torch.Tensor:
    """Prompt Tuning's init, ``[k, ctx.prompt_width]``: rows of real word embeddings ('vocab') or noise of
    the same scale. Word-embedding rows are ``d`` wide: where the source must emit wider vectors
    (``prefix_projection: none``) 'vocab' falls back to the noise."""
    emb = ctx.word_embeddings
    std = float(emb.std()) if emb is not None else 0.02
    width = ctx.prompt_width
    if how == "vocab" and emb is not None and width == emb.shape[1]:
        # Skip the first ids (special and unused tokens in BERT/RoBERTa vocabularies).
        low = min(1000, emb.shape[0] - 1)
        ids = torch.randint(low, emb.shape[0], (k,))
        return emb[ids].clone().float()
    return torch.randn(k, width) * std


@register_source("prompt_tuning")
class SoftPrompt(PromptSource):
    """Prompt Tuning / Prefix Tuning: one learned ``[k, w]`` tensor, the same for every instance
    (``w = ctx.prompt_width``). ``forward(batch) -> (P [B, k, w], mask [B, k] of ones)``."""

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


def build_task_prompt(ctx: BuildContext) -> SoftPrompt | None:
    """The task-level prompt placed before an instance-wise source's prompts (``method.task_prompt_length``
    vectors, Prompt Tuning's default init); None without one."""
    length = ctx.method.task_prompt_length
    return SoftPrompt(initial_prompt_rows(ctx, length, "vocab")) if length else None


@register_source("ppt")
class PretrainedSoftPrompt(SoftPrompt):
    """PPT: a soft prompt initialised from a prompt pretrained on other data (a ``[k, w]`` safetensors file,
    ``w = ctx.prompt_width``)."""

    @classmethod
    def build(cls, ctx: BuildContext) -> PretrainedSoftPrompt:
        path = Path(ctx.method.pretrained_prompt or "")
        if not path.is_file():
            raise ValueError(f"method.pretrained_prompt: no such file {str(path)!r}")
        tensors = read_tensors(path, "method.pretrained_prompt")  # safetensors only: a pickle is refused unread
        prompt = tensors[soft_prompt_name(tensors, "method.pretrained_prompt", path)]
        if prompt.dim() != 2 or prompt.shape[1] != ctx.prompt_width:
            why = " (method.injection 'prefix' with method.prefix_projection 'none': 2 * layers * d)" \
                if ctx.prompt_width != ctx.hidden_size else ""
            raise ValueError(
                f"method.pretrained_prompt {str(path)!r} has shape {tuple(prompt.shape)}, "
                f"expected [k, {ctx.prompt_width}] for this backbone{why}"
            )
        k = ctx.method.prompt_length
        if prompt.shape[0] < k:
            raise ValueError(f"method.pretrained_prompt has {prompt.shape[0]} rows, fewer than prompt_length {k}")
        return cls(prompt[:k].float().clone())


@register_source("structured")
class StructuredPrompt(PromptSource):
    """Structured Prompt Tuning (Liu, Lee, Yih 2022): ``P = H(e_task)`` with a hypernetwork H.

    H is ``linear`` (``[t] -> [k*w]``), ``lowrank`` (``[t] -> [r] -> [k*w]``, no bias in between) or
    ``mlp`` (``[t] -> tanh([h]) -> [k*w]``), ``w = ctx.prompt_width``. Only ``e_task`` and H train.
    ``forward(batch) -> (P [B, k, w], mask [B, k] of ones)``.
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
        return cls(m.prompt_length, ctx.prompt_width, m.task_embedding_dim, m.hypernetwork, m.hypernetwork_rank,
                   m.hypernetwork_hidden, init)

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        prompt = self.hyper(self.task_embedding).view(self.length, self.dim)
        b = batch.size
        return prompt.unsqueeze(0).expand(b, -1, -1), batch.input_ids.new_ones(b, self.length)
