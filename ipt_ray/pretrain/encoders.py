"""Encoder IPT's encoders, pretrained as topic classifiers on the trained table (``pretrain.encoders``).

Each reads the trained ``[V, d]`` table frozen, as Encoder IPT will read it (``method.table_init`` set to
the same folder), so the encoder learns on exactly the rows it meets downstream. The classifier head
reads the masked mean of the encoder's features: the pooling Encoder IPT's readout starts from
(:class:`ipt_ray.prompts.PromptReadout`, queries near zero). The encoder (``encoder.*``) and the head
(``head.*``, to classify texts later) are saved in ``<output>/encoder_<type>/``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ipt_ray.config import PretrainConfig
from ipt_ray.config.strategies import EncoderOptions
from ipt_ray.pretrain.classifier import fit
from ipt_ray.prompts.encoders import build_encoder, masked_mean


class EncoderClassifier(nn.Module):
    """Frozen table -> Encoder IPT encoder -> masked mean -> dropout -> linear: ``ids [B, n], mask [B, n] -> [B, C]``."""

    def __init__(self, table: torch.Tensor, kind: str, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.register_buffer("table", table.detach().clone().float(), persistent=False)
        self.encoder = build_encoder(kind, table.shape[1], hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_dim, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features, valid = self.encoder(F.embedding(ids, self.table), mask)
        return self.head(self.dropout(masked_mean(features, valid)))


def encoder_width(cfg: PretrainConfig, kind: str, dim: int) -> int:
    """``pretrain.encoder_hidden``, or the default ``method.encoder_hidden`` has for width ``dim``."""
    return cfg.encoder_hidden or EncoderOptions.default_hidden(kind, dim)


def train_encoder(cfg: PretrainConfig, kind: str, table: torch.Tensor, ids: list[list[int]], labels: np.ndarray,
                  train_idx: np.ndarray, heldout_idx: np.ndarray, num_classes: int, pad_id: int,
                  on_epoch: Callable[[dict[str, float]], None] | None = None,
                  ) -> tuple[EncoderClassifier, list[dict[str, float]], np.ndarray]:
    """Train the ``kind`` encoder classifier for ``cfg.encoder_epochs`` (Adam, ``cfg.encoder_lr``); returns
    the model, per-epoch records and the held-out confusion matrix."""
    torch.manual_seed(cfg.seed)
    model = EncoderClassifier(table, kind, encoder_width(cfg, kind, table.shape[1]), num_classes, cfg.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.encoder_lr)
    history, cm = fit(model, optimizer, cfg.encoder_epochs, cfg, ids, labels, train_idx, heldout_idx, num_classes,
                      pad_id, on_epoch)
    return model, history, cm
