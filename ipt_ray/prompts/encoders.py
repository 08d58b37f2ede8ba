"""The encoders of Encoder IPT, as appendix A.3 of Jiang et al. (2022) describes them, and their k-prompt readout.

An Encoder IPT encoder is a *body* and a *readout*:

- the body (:data:`ENCODERS`) reads the frozen table rows of the instance's first content tokens,
  ``rows [B, m, d]`` with ``mask [B, m]``, and emits per-position features ``[B, m', h]`` with their
  mask ``[B, m']``. It is what ``ipt-ray pretrain`` trains as a topic classifier and what
  ``method.encoder_init`` loads:

  - ``cnn`` (:class:`TextCNN`): three convolution + three pooling layers (``m' = ceil(m / 8)``);
  - ``rnn`` (:class:`StackedLSTM`): three stacked bidirectional LSTM layers, then two per-position
    linear layers (the readout's output layer is the third linear layer);
  - ``mlp`` (:class:`TokenMLP`): two per-position linear layers (the readout's output is the third).

- the readout (:class:`PromptReadout`) pools the features to the k prompts with k learned queries
  (attention pooling over the valid positions) and maps each to the prompt width with one shared
  ``Linear(h -> width)``, plus a per-position base ``[k, width]``.

Why attention pooling and not ``Linear(h -> k * d)``: that layer alone costs ``h * k * d`` parameters
(``h * 102,400`` at k = 100, d = 1024: more than 0.5% of roberta-large for any h > 17), so the encoder's
size would be set by the prompt length, not by the encoder. The readout costs ``k * h + h * width +
k * width`` (0.39M at h = 256, k = 100, d = 1024): the k-dependent terms are one query and one base
row per prompt. Each prompt is still instance-specific: it attends to the positions it chooses.

Initialisation stays Prompt Tuning's: the base starts at the word-embedding rows Prompt Tuning starts
from, the output layer at a tenth of its default scale (as the old ``Linear`` bias / weight did), and
the queries near zero, so pooling starts as the masked mean of the features: exactly what the
pretraining classifier's head reads, so a pretrained body starts in the regime it was trained in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEPTH = 3  # appendix A.3: three convolution / LSTM / linear layers


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x [B, m, h]`` with the masked positions zeroed."""
    return x * mask.unsqueeze(-1).to(x.dtype)


class TextCNN(nn.Module):
    """Three blocks of (Conv1d, kernel 3, 'same' padding; ReLU; max-pool 2, ceil): ``[B, m, d] -> [B, ceil(m/8), h]``.

    Masked positions are zeroed before each convolution, and a pooled position is valid when any of its
    inputs is: with ReLU outputs (>= 0) the max over a window with padding equals the max over its valid
    positions, so a padded instance gives exactly what it gives alone. ``3dh + 6h^2 + 3h`` parameters.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim if i == 0 else hidden, hidden, 3, padding=1) for i in range(DEPTH))
        self.out_dim = hidden

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, valid = rows.transpose(1, 2), mask.to(rows.dtype).unsqueeze(1)  # [B, d, m], [B, 1, m]
        for conv in self.convs:
            x = F.relu(conv(x * valid))
            x = F.max_pool1d(x * valid, 2, 2, ceil_mode=True)
            valid = F.max_pool1d(valid, 2, 2, ceil_mode=True)
        return x.transpose(1, 2), valid.squeeze(1)


class StackedLSTM(nn.Module):
    """Three stacked bidirectional LSTM layers (``ceil(h/2)`` per direction) over the valid rows, then two
    per-position ``Linear`` + tanh layers: ``[B, m, d] -> [B, m, h]``.

    The rows are packed by length: padding never enters a state. ``8ud + 56u^2 + 48u`` (LSTM, u = ceil(h/2))
    ``+ 2u*h + h^2 + 2h`` parameters.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        per_direction = math.ceil(hidden / 2)
        self.lstm = nn.LSTM(dim, per_direction, num_layers=DEPTH, batch_first=True, bidirectional=True)
        self.linears = nn.Sequential(nn.Linear(2 * per_direction, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.out_dim = hidden

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = mask.sum(1).clamp(min=1).cpu()  # an empty row reads one (masked) position; the readout ignores it
        packed = nn.utils.rnn.pack_padded_sequence(rows, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=rows.shape[1])
        return _masked(self.linears(out), mask), mask


class TokenMLP(nn.Module):
    """Two per-position ``Linear`` + tanh layers: ``[B, m, d] -> [B, m, h]`` (``dh + h^2 + 2h`` parameters)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.out_dim = hidden

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _masked(self.net(rows), mask), mask


ENCODERS: dict[str, type[nn.Module]] = {"cnn": TextCNN, "rnn": StackedLSTM, "mlp": TokenMLP}


def masked_mean(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, m, h], [B, m] -> [B, h]``: the mean over valid positions (zeros for a row with none)."""
    m = mask.unsqueeze(-1).to(features.dtype)
    return (features * m).sum(1) / m.sum(1).clamp(min=1.0)


class PromptReadout(nn.Module):
    """k-query attention pooling of body features, then ``Linear(h -> width)`` and a base: ``[B, m', h] -> [B, k, width]``.

    ``P[b, j] = base[j] + W @ sum_i softmax_i(q_j . f[b, i] / sqrt(h)) f[b, i]`` over the valid positions
    ``i`` (a row with none gives ``base``). ``init [k, width]`` starts the base (Prompt Tuning's rows);
    another width (e.g. a prefix width) starts it at noise of the init's scale.
    """

    def __init__(self, hidden: int, k: int, width: int, init: torch.Tensor):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(k, hidden) * 0.02)  # near zero: pooling starts as the masked mean
        self.out = nn.Linear(hidden, width, bias=False)
        base = init.float() if tuple(init.shape) == (k, width) else torch.randn(k, width) * float(init.float().std())
        self.base = nn.Parameter(base.clone())
        with torch.no_grad():
            self.out.weight.mul_(0.1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("bmh,kh->bkm", features, self.queries) / math.sqrt(features.shape[-1])
        scores = scores.masked_fill(~mask.bool().unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * mask.unsqueeze(1).to(scores.dtype)  # an empty row: all zero
        return self.base + self.out(torch.einsum("bkm,bmh->bkh", weights, features))


def build_encoder(kind: str, dim: int, hidden: int) -> nn.Module:
    """The body of ``kind`` (``cnn`` / ``rnn`` / ``mlp``) for rows of width ``dim``, features of width ``hidden``."""
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder {kind!r} (allowed: {', '.join(ENCODERS)})")
    return ENCODERS[kind](dim, hidden)
