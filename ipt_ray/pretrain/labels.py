"""Label-name inference: which category an unnamed corpus label is (how the knowledge_cat names were checked)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ipt_ray.backbone import Backbone
from ipt_ray.data import CATEGORY_DESCRIPTIONS
from ipt_ray.prompts.encoders import masked_mean


def sentence_embeddings(backbone: Backbone, texts: Sequence[str], batch_size: int = 32,
                        max_length: int = 128) -> torch.Tensor:
    """Mean-pooled last hidden states of the frozen backbone, ``[N, d]`` (no prompt)."""
    tok = backbone.tokenizer
    out = []
    backbone.encoder.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tok(list(texts[start:start + batch_size]), truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
            out.append(masked_mean(backbone.encoder(**enc).last_hidden_state, enc["attention_mask"]))
    return torch.cat(out) if out else torch.zeros(0, backbone.hidden_size)


def suggest_label_mapping(backbone: Backbone, texts: Sequence[str], labels: Sequence[int],
                          descriptions: dict[str, str] | None = None) -> tuple[dict[int, str], np.ndarray]:
    """A one-to-one label id -> category name guess for an unnamed corpus.

    Each label's centroid (mean of normalised sentence embeddings) is compared by cosine with the
    embedding of each category's ``"<name>: <description>"``; the assignment maximising the total
    similarity (Hungarian algorithm) is returned with the ``[labels, categories]`` similarity matrix.
    Use a sentence-embedding backbone (all-MiniLM-L6-v2); the result is evidence, not ground truth.
    """
    from scipy.optimize import linear_sum_assignment  # heavy: scipy only for this inference

    descriptions = descriptions or CATEGORY_DESCRIPTIONS
    names = list(descriptions)
    ids = sorted(set(int(v) for v in labels))
    emb = F.normalize(sentence_embeddings(backbone, texts), dim=-1)
    label_arr = torch.as_tensor(list(labels))
    centroids = F.normalize(torch.stack([emb[label_arr == i].mean(0) for i in ids]), dim=-1)
    cats = F.normalize(sentence_embeddings(backbone, [f"{n}: {d}" for n, d in descriptions.items()]), dim=-1)
    sim = (centroids @ cats.T).numpy()
    rows, cols = linear_sum_assignment(-sim)
    return {ids[r]: names[c] for r, c in zip(rows, cols)}, sim
