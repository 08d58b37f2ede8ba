"""The encoders of Encoder IPT: ``[B, m, d]`` rows of the first content tokens (and their mask) -> ``[B, h]``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TextCNN(nn.Module):
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


class StackedLSTM(nn.Module):
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


class PooledMLP(nn.Module):
    """Masked mean of the rows, then two hidden layers (the third is the shared output layer)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.out_dim = hidden

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(rows.dtype)
        return self.net((rows * m).sum(1) / m.sum(1).clamp(min=1.0))



ENCODERS: dict[str, type[nn.Module]] = {"cnn": TextCNN, "rnn": StackedLSTM, "mlp": PooledMLP}
