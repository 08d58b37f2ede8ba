"""The topic classifier whose embedding becomes the prompt table: a TextCNN over a trainable ``[V, d]`` table.

Inputs are the backbone tokenizer's *content* tokens (no special tokens), the same ids the prompt
sources look up, so the rows that move are the rows IPT uses.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ipt_ray.config import PretrainConfig
from ipt_ray.data import Corpus


def tokenize_corpus(corpus: Corpus, tokenizer: Any, max_length: int) -> list[list[int]]:
    """Content-token ids (no special tokens), at most ``max_length`` per text."""
    enc = tokenizer(corpus.texts, add_special_tokens=False, truncation=True, max_length=max_length)
    return [list(ids) for ids in enc["input_ids"]]


class TopicCNN(nn.Module):
    """Kim's TextCNN: kernels 3/4/5 side by side, max-pooled over valid windows only: ``[B, m, d] -> [B, 3c]``.

    The table's classifier (its results are in docs/pretraining.md); Encoder IPT's own, deeper TextCNN
    is :class:`ipt_ray.prompts.TextCNN`.
    """

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


class CategoryClassifier(nn.Module):
    """TextCNN over a trainable table: ``ids [B, n], mask [B, n] -> logits [B, C]``.

    ``table`` is ``[V, d]`` (initialised from the backbone's word embeddings); kernels 3/4/5 with
    ``channels`` filters each, ReLU, max-pool over the valid windows, dropout, linear to ``C``.
    """

    def __init__(self, table: torch.Tensor, num_classes: int, channels: int = 100, dropout: float = 0.5):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(table.detach().clone().float(), freeze=False)
        self.cnn = TopicCNN(table.shape[1], channels)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.cnn.out_dim, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features = self.cnn(self.embedding(ids), mask)
        return self.out(self.dropout(features))


def _batch_rows(ids: list[list[int]], index: np.ndarray, batch_size: int,
                generator: torch.Generator | None = None) -> list[np.ndarray]:
    """Row groups of ``batch_size``, each of similar lengths (less padding: the CNN cost is width-bound).

    Training (``generator`` given): shuffle, sort by length within windows of 16 batches, shuffle the
    batches. Evaluation: sorted by length.
    """
    if generator is None:
        order = sorted(index.tolist(), key=lambda r: len(ids[r]))
        return [np.asarray(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    perm = index[torch.randperm(len(index), generator=generator).numpy()].tolist()
    window = batch_size * 16
    groups = []
    for start in range(0, len(perm), window):
        part = sorted(perm[start:start + window], key=lambda r: len(ids[r]))
        groups += [np.asarray(part[i:i + batch_size]) for i in range(0, len(part), batch_size)]
    return [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]


def _batches(ids: list[list[int]], labels: np.ndarray, index: np.ndarray, batch_size: int, pad_id: int,
             generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]]:
    """``(ids [B, n], mask [B, n], labels [B], rows)`` per batch; rows index the corpus."""
    for rows in _batch_rows(ids, index, batch_size, generator):
        width = max(1, max(len(ids[r]) for r in rows))
        x = torch.full((len(rows), width), pad_id, dtype=torch.long)
        m = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            x[i, :len(ids[r])] = torch.tensor(ids[r], dtype=torch.long)
            m[i, :len(ids[r])] = 1
        yield x, m, torch.as_tensor(labels[rows]), rows


def _predict(model: nn.Module, ids, labels, index, batch_size, pad_id) -> np.ndarray:
    """Predicted category per row of ``index`` (in ``index`` order)."""
    model.eval()
    pred = {}
    with torch.no_grad():
        for x, m, _, rows in _batches(ids, labels, index, batch_size, pad_id):
            pred.update(zip(rows.tolist(), model(x, m).argmax(-1).tolist()))
    return np.asarray([pred[r] for r in index.tolist()], dtype=np.int64)


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """``[n, n]`` counts; rows are the true category, columns the predicted one."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (truth, pred), 1)
    return cm


def _optimizer(model: CategoryClassifier, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """Adam with a small learning rate for the table (its rows stay near the backbone's) and another for the rest."""
    rest = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
    return torch.optim.Adam([
        {"params": [model.embedding.weight], "lr": cfg.embedding_lr},
        {"params": rest, "lr": cfg.lr},
    ])


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, ids: list[list[int]],
                 labels: np.ndarray, train_idx: np.ndarray, batch_size: int, pad_id: int,
                 generator: torch.Generator) -> float:
    """One pass over the training rows; the mean training loss."""
    model.train()
    total, count = 0.0, 0
    for x, m, y, _ in _batches(ids, labels, train_idx, batch_size, pad_id, generator):
        loss = F.cross_entropy(model(x, m), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
    return total / max(count, 1)


def train_classifier(
    cfg: PretrainConfig,
    table: torch.Tensor,
    ids: list[list[int]],
    labels: np.ndarray,
    train_idx: np.ndarray,
    heldout_idx: np.ndarray,
    num_classes: int,
    pad_id: int,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[CategoryClassifier, list[dict[str, float]], np.ndarray]:
    """Train for ``cfg.epochs``; returns the model, per-epoch records and the held-out confusion matrix."""
    torch.manual_seed(cfg.seed)
    model = CategoryClassifier(table, num_classes, cfg.channels, cfg.dropout)
    history, cm = fit(model, _optimizer(model, cfg), cfg.epochs, cfg, ids, labels, train_idx, heldout_idx,
                      num_classes, pad_id, on_epoch)
    return model, history, cm


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, epochs: int, cfg: PretrainConfig, ids: list[list[int]],
        labels: np.ndarray, train_idx: np.ndarray, heldout_idx: np.ndarray, num_classes: int, pad_id: int,
        on_epoch: Callable[[dict[str, float]], None] | None = None) -> tuple[list[dict[str, float]], np.ndarray]:
    """Train ``model(ids [B, n], mask [B, n]) -> logits [B, C]`` for ``epochs`` (batch order seeded by
    ``cfg.seed``); per-epoch records and the last held-out confusion matrix."""
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    pred = np.zeros(0, dtype=np.int64)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss = _train_epoch(model, optimizer, ids, labels, train_idx, cfg.batch_size, pad_id, generator)
        pred = _predict(model, ids, labels, heldout_idx, max(64, cfg.batch_size), pad_id)
        accuracy = float((pred == labels[heldout_idx]).mean()) if len(heldout_idx) else float("nan")
        record = {"epoch": epoch, "train_loss": train_loss, "heldout_accuracy": accuracy,
                  "epoch_time_s": time.perf_counter() - start}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history, confusion_matrix(labels[heldout_idx], pred, num_classes)
