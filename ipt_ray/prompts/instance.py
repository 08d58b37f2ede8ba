"""Instance-wise prompt sources (IPT, Jiang et al. 2022): the prompt depends on the input itself."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ipt_ray.backbone import PROMPT_TABLE, check_identity, load_artefact
from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import BuildContext, PromptSource, first_content_tokens, register_source
from ipt_ray.prompts.task import _init_rows

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


def initial_table(ctx: BuildContext, init: str) -> torch.Tensor:
    """``random`` (noise at the word-embedding scale), ``backbone`` (the word embeddings) or a checkpoint path."""
    if init == "random":
        std = float(ctx.word_embeddings.std()) if ctx.word_embeddings is not None else 0.02
        return torch.randn(ctx.vocab_size, ctx.hidden_size) * std
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
    """Random / Pretrained IPT: the prompt is the table rows of the instance's first k content tokens.

    ``forward(batch) -> (P [B, k, d], mask [B, k])``; an input with fewer than k content tokens gets
    masked prompt positions.
    """

    def __init__(self, k: int, table: PromptTable):
        super().__init__()
        self.length = k
        self.table = table

    @classmethod
    def build(cls, ctx: BuildContext) -> TokenTablePrompt:
        m = ctx.method
        init = initial_table(ctx, m.table_init or cls.spec.default_table_init)
        return cls(m.prompt_length, PromptTable(m.table_layout, init, ctx.seen_token_ids, m.table_rank))

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = first_content_tokens(batch.input_ids, batch.content_mask, self.length)  # [B, k]
        return self.table(ids), mask


@register_source("pretrained_ipt")
class PretrainedTokenTablePrompt(TokenTablePrompt):
    """Pretrained IPT: the same table, initialised from a topic classifier's embedding (``ipt-ray pretrain``).

    ``method.table_init`` names the checkpoint; without one it starts from the backbone's word embeddings.
    """


class _TextCNN(nn.Module):
    """Kernels 3/4/5 over the rows, max-pooled over valid windows only: ``[B, m, d] -> [B, 3c]``."""

    kernels = (3, 4, 5)

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, k) for k in self.kernels)
        self.out_dim = channels * len(self.kernels)

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        width = max(rows.shape[1], max(self.kernels))
        x = F.pad(rows * mask.unsqueeze(-1), (0, 0, 0, width - rows.shape[1])).transpose(1, 2)
        lengths = mask.sum(1)
        pooled = []
        for kernel, conv in zip(self.kernels, self.convs):
            y = F.relu(conv(x))  # [B, c, width - kernel + 1]
            valid = torch.arange(y.shape[2], device=y.device).unsqueeze(0) < (lengths - kernel + 1).clamp(min=1).unsqueeze(1)
            pooled.append(y.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=2))
        return torch.cat(pooled, dim=1)


class _LSTM(nn.Module):
    """A bidirectional LSTM over the valid rows; final states of both directions: ``[B, 2h]``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(rows, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return torch.cat([h[-2], h[-1]], dim=1)


class _PooledMLP(nn.Module):
    """Masked mean of the rows, then two hidden layers (the third is the shared output layer)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.out_dim = hidden

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(rows.dtype)
        return self.net((rows * m).sum(1) / m.sum(1).clamp(min=1.0))


TextCNN = _TextCNN  # the public name (category pretraining trains one)

ENCODERS: dict[str, type[nn.Module]] = {"cnn": _TextCNN, "rnn": _LSTM, "mlp": _PooledMLP}


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
        self.project = nn.Linear(self.encoder.out_dim, k * dim)
        with torch.no_grad():  # start near Prompt Tuning's init: word-embedding rows, small input weights
            self.project.bias.copy_(init.reshape(-1))
            self.project.weight.mul_(0.1)

    @classmethod
    def build(cls, ctx: BuildContext) -> EncoderPrompt:
        m = ctx.method
        table = initial_table(ctx, m.table_init or cls.spec.default_table_init)
        init = _init_rows(ctx, m.prompt_length, m.prompt_init)
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

