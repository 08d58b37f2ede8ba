"""Random / Pretrained IPT (Jiang et al. 2022): the prompt is the prompt-table rows of the input's first k tokens."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ipt_ray.backbone import PROMPT_TABLE, check_identity, load_artefact
from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import BuildContext, PromptSource, first_content_tokens, register_source

TABLE_FORMAT = PROMPT_TABLE.format


def load_prompt_table(path: str | Path, ctx: BuildContext) -> torch.Tensor:
    """A ``[V, d]`` table saved by ``ipt-ray pretrain`` (safetensors + JSON, no pickle); refused if made for
    another tokenizer or width."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"method.table_init: no such prompt-table checkpoint {str(path)!r}")
    saved = load_artefact(path, PROMPT_TABLE)
    identity = ctx.extras.get("backbone")
    if identity is not None:
        check_identity(saved.identity, identity, f"prompt table {path}")
    table = saved.tensors["table"].float()
    if tuple(table.shape) != (ctx.vocab_size, ctx.hidden_size):
        raise ValueError(f"{path}: table shape {tuple(table.shape)} != ({ctx.vocab_size}, {ctx.hidden_size})")
    return table


def initial_table(ctx: BuildContext, init: str, width: int | None = None) -> torch.Tensor:
    """A ``[V, width]`` table (``width`` default ``d``): ``random`` (noise at the word-embedding scale),
    ``backbone`` (the word embeddings) or a checkpoint path; the last two are ``d`` wide only."""
    width = ctx.hidden_size if width is None else width
    if init == "random":
        std = float(ctx.word_embeddings.std()) if ctx.word_embeddings is not None else 0.02
        return torch.randn(ctx.vocab_size, width) * std
    if width != ctx.hidden_size:  # the config refuses this (MethodConfig.check_strategy_rules); a clear word here too
        raise ValueError(f"method.table_init {init!r} gives {ctx.hidden_size}-wide rows, not the {width} this "
                         "source emits (method.prefix_projection 'none'): use method.table_init 'random'")
    if init == "backbone":
        if ctx.word_embeddings is None:
            raise ValueError("method.table_init 'backbone' needs the backbone's word embeddings")
        return ctx.word_embeddings.detach().clone().float()
    return load_prompt_table(init, ctx)


class PromptTable(nn.Module):
    """Token id -> prompt row, in one of three layouts (``ids [...] -> rows [..., d]``).

    - ``full``: one row per vocabulary id (the paper's layout), ``V * d`` parameters.
    - ``compact``: rows only for ids seen in the task's training data plus one shared unknown row.
    - ``lowrank``: ``[V, r] @ [r, d]``.
    """

    def __init__(self, layout: str, init: torch.Tensor, seen_ids: torch.Tensor | None = None, rank: int = 16):
        super().__init__()
        self.layout = layout
        vocab, dim = init.shape
        if layout == "full":
            self.rows = nn.Embedding(vocab, dim, _weight=init.clone())
        elif layout == "compact":
            if seen_ids is None:
                raise ValueError("table_layout 'compact' needs the ids seen in the training data")
            seen = torch.unique(seen_ids.long())
            id_to_row = torch.zeros(vocab, dtype=torch.long)
            id_to_row[seen] = torch.arange(1, len(seen) + 1)
            self.register_buffer("id_to_row", id_to_row)
            weight = torch.cat([init.mean(0, keepdim=True), init[seen]], dim=0)
            self.rows = nn.Embedding(len(seen) + 1, dim, _weight=weight.clone())
        elif layout == "lowrank":
            u, s, v = torch.svd_lowrank(init, q=rank, niter=4)
            self.rows = nn.Embedding(vocab, rank, _weight=(u * s).contiguous())
            self.up = nn.Linear(rank, dim, bias=False)
            with torch.no_grad():
                self.up.weight.copy_(v)
        else:  # pragma: no cover - the config validates this
            raise ValueError(f"unknown table_layout {layout!r} (allowed: full, compact, lowrank)")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.layout == "compact":
            return self.rows(self.id_to_row[ids])
        if self.layout == "lowrank":
            return self.up(self.rows(ids))
        return self.rows(ids)


@register_source("random_ipt")
class TokenTablePrompt(PromptSource):
    """Random / Pretrained IPT: the prompt is the table rows of the instance's first k content tokens,
    after those of the ``h`` hard-prompt ids (``method.hard_prompt``, Table 5) when there are any.

    ``forward(batch) -> (P [B, h + k, w], mask [B, h + k])`` with ``w = ctx.prompt_width``; an input
    with fewer than k content tokens gets masked prompt positions. The hard ids are a non-persistent
    buffer: the same tokenizer (checked by the adapter's backbone identity) gives them back at load time.
    """

    def __init__(self, k: int, table: PromptTable, hard_ids: torch.Tensor | None = None):
        super().__init__()
        self.content_length = k
        hard = torch.zeros(0, dtype=torch.long) if hard_ids is None else hard_ids.long().flatten()
        self.register_buffer("hard_ids", hard, persistent=False)
        self.length = len(hard) + k
        self.table = table

    @classmethod
    def build(cls, ctx: BuildContext) -> TokenTablePrompt:
        m = ctx.method
        hard = ctx.hard_prompt_ids if getattr(m, "hard_prompt", None) else None
        if getattr(m, "hard_prompt", None) and (hard is None or not len(hard)):
            raise ValueError(f"method.hard_prompt {m.hard_prompt!r} has no token ids for this tokenizer")
        seen = ctx.seen_token_ids
        if hard is not None and seen is not None:  # compact layout: the hard ids get rows of their own
            seen = torch.cat([seen.long().flatten(), hard.long()])
        init = initial_table(ctx, m.table_init or cls.spec.default_table_init, ctx.prompt_width)
        return cls(m.prompt_length, PromptTable(m.table_layout, init, seen, m.table_rank), hard)

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = first_content_tokens(batch.input_ids, batch.content_mask, self.content_length)  # [B, k]
        if len(self.hard_ids):
            hard = self.hard_ids.to(ids.device).unsqueeze(0).expand(batch.size, -1)  # [B, h]
            ids, mask = torch.cat([hard, ids], dim=1), torch.cat([torch.ones_like(hard), mask], dim=1)
        return self.table(ids), mask


@register_source("pretrained_ipt")
class PretrainedTokenTablePrompt(TokenTablePrompt):
    """Pretrained IPT: the same table, initialised from a topic classifier's embedding (``ipt-ray pretrain``).

    ``method.table_init`` names the checkpoint; without one it starts from the backbone's word embeddings.
    """
