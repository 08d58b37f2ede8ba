"""What the instance-wise prompts encode (``ipt-ray interpret``).

- :func:`nearest_tokens`: for one input, the vocabulary tokens whose backbone input embeddings are
  nearest (cosine) to each of that instance's prompt vectors: the paper's Table 4 case study.
- :func:`projection_plot`: a 2-D PCA of the frozen backbone's sentence representations (mean-pooled last
  hidden states) next to the instances' prompts (mean of their prompt vectors), coloured by
  label or category: the paper's Figure 4.

Both work for every prompt source: the prompt vectors are ``adapter.source(batch) -> (P [B, k, d],
mask [B, k])``, i.e. what the injection receives (before the prefix MLP, for prefix injection), which
lives in the backbone's input-embedding space. Adapters with ``method.prefix_projection: none`` are
refused: their source emits every layer's keys and values (``2 * layers * d`` wide), not input-space vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ipt_ray.backbone import Backbone
from ipt_ray.batches import Collator, PromptedBatch
from ipt_ray.config import PretrainSource
from ipt_ray.data import get_task, load_manifest, load_source, load_task
from ipt_ray.prompts.encoders import masked_mean

__all__ = ["encode_texts", "prompt_vectors", "sentence_representations", "nearest_tokens", "projection_plot", "Projection",
           "load_projection_data", "format_nearest"]

TextInput = str | tuple[str, str]


#: Tokens per input when the caller gives none: ``task.max_length``'s default (the CLI passes the adapter's).
DEFAULT_MAX_LENGTH = 128


def encode_texts(backbone: Backbone, texts: Sequence[TextInput], max_length: int = DEFAULT_MAX_LENGTH) -> PromptedBatch:
    """A padded batch as the classifier head sees it: one segment, or a ``(text_a, text_b)`` pair."""
    tok = backbone.tokenizer
    firsts = [t[0] if isinstance(t, tuple) else t for t in texts]
    seconds = [t[1] if isinstance(t, tuple) else None for t in texts]
    kwargs: dict[str, Any] = {"truncation": True, "return_special_tokens_mask": True, "max_length": max_length}
    rows = []
    for a, b in zip(firsts, seconds):  # one at a time: pairs and singles may mix
        enc = tok(a, b, **kwargs)
        rows.append({k: enc[k] for k in enc} | {"label": 0})
    return Collator(int(tok.pad_token_id or 0), backbone.uses_token_types)(rows)


def _source(adapter: Any):
    source = getattr(adapter, "source", None)
    if source is None or getattr(source, "length", 0) == 0:
        raise ValueError("this adapter has no prompt source (fine-tuning, or prompt_length 0): nothing to interpret")
    return source


def prompt_vectors(adapter: Any, backbone: Backbone, texts: Sequence[TextInput], max_length: int = DEFAULT_MAX_LENGTH,
                   batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P [N, k, d], mask [N, k])`` of each text's instance-wise prompt."""
    source = _source(adapter)
    was_training = source.training
    source.eval()
    prompts, masks = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = encode_texts(backbone, texts[start:start + batch_size], max_length)
                p, m = source(batch)
                prompts.append(p.float())
                masks.append(m)
    finally:
        source.train(was_training)
    width, dim = prompts[0].shape[-1], backbone.word_embeddings.weight.shape[1]
    if width != dim:  # prefix_projection none: per-layer keys/values, not input-space vectors
        raise ValueError(
            f"this adapter's prompts are {width} wide, not the backbone's input-embedding width {dim}: its "
            f"source feeds every layer's keys and values directly (method.prefix_projection: none, 2 x layers "
            f"x d per position), so its prompts have no nearest tokens or input-space projection; interpret "
            f"works for input injection and for prefix injection through the MLP (prefix_projection: mlp)")
    return torch.cat(prompts), torch.cat(masks)


def sentence_representations(backbone: Backbone, texts: Sequence[TextInput], max_length: int = DEFAULT_MAX_LENGTH,
                             batch_size: int = 32) -> torch.Tensor:
    """``[N, d]``: the frozen backbone's last hidden states (no prompt), mean-pooled over the input tokens."""
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = encode_texts(backbone, texts[start:start + batch_size], max_length)
            kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            if batch.token_type_ids is not None:
                kwargs["token_type_ids"] = batch.token_type_ids
            hidden = backbone.encoder(**kwargs).last_hidden_state.float()
            out.append(masked_mean(hidden, batch.attention_mask))
    return torch.cat(out)


def nearest_tokens(adapter: Any, backbone: Backbone, text: TextInput, top_k: int = 5, *,
                   skip_special: bool = True, max_length: int = DEFAULT_MAX_LENGTH) -> list[list[tuple[str, float]]]:
    """For each (unmasked) prompt vector of ``text``'s prompt, the ``top_k`` nearest vocabulary tokens.

    Returns one list per prompt position that is not masked (a token-table prompt of an input shorter
    than ``k`` has fewer), each ``[(token, cosine), ...]`` in decreasing cosine; tokens are the
    tokenizer's own (e.g. ``Ġword`` for byte-level BPE, ``##ing`` for WordPiece). Special tokens are
    skipped unless ``skip_special=False``.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    prompts, mask = prompt_vectors(adapter, backbone, [text], max_length)
    vectors = prompts[0][mask[0].bool()]  # [k', d]
    vocab = backbone.word_embeddings.weight.detach().float()
    sims = F.normalize(vectors, dim=-1) @ F.normalize(vocab, dim=-1).T  # [k', V]
    if skip_special:
        special = [i for i in backbone.tokenizer.all_special_ids if 0 <= i < vocab.shape[0]]
        sims[:, special] = float("-inf")
    values, ids = sims.topk(min(top_k, sims.shape[1]), dim=-1)
    tok = backbone.tokenizer
    return [[(tok.convert_ids_to_tokens(int(i)), float(v)) for i, v in zip(row_ids, row_vals)]
            for row_ids, row_vals in zip(ids.tolist(), values.tolist())]


def format_nearest(rows: list[list[tuple[str, float]]]) -> str:
    """A plain-text table: one line per prompt position."""
    lines = [f"{'prompt':>6}  nearest tokens (cosine)"]
    for i, row in enumerate(rows):
        lines.append(f"{i:>6}  " + "  ".join(f"{tok} ({cos:.3f})" for tok, cos in row))
    return "\n".join(lines)


# ---------------------------------------------------------------- projection


@dataclass
class Projection:
    path: Path
    sentence_xy: np.ndarray  # [N, 2]
    prompt_xy: np.ndarray  # [N, 2]
    labels: list[str]
    explained_variance: dict[str, list[float]] = field(default_factory=dict)
    silhouette: dict[str, float] = field(default_factory=dict)  # by label, cosine, in the full space


def _pca2(x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    from sklearn.decomposition import PCA  # heavy: scikit-learn only for the projection

    n = min(2, x.shape[0], x.shape[1])
    pca = PCA(n_components=n, random_state=0)
    xy = pca.fit_transform(x)
    if n < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - n)))
    return xy, [float(v) for v in pca.explained_variance_ratio_]


def _silhouette(x: np.ndarray, labels: Sequence[str]) -> float:
    from sklearn.metrics import silhouette_score  # heavy: scikit-learn only for the projection

    distinct = len(set(labels))
    if distinct < 2 or distinct >= len(labels):
        return float("nan")
    return float(silhouette_score(x, list(labels), metric="cosine"))


def projection_plot(adapter: Any, backbone: Backbone, texts: Sequence[TextInput], labels: Sequence[Any],
                    path: str | Path, *, max_length: int = DEFAULT_MAX_LENGTH, title: str | None = None) -> Projection:
    """Side by side, a 2-D PCA of the sentence representations and of the instances' prompts.

    Sentence representation: mean over the input tokens of the frozen backbone's last hidden states (no
    prompt). Prompt representation: mean of the instance's unmasked prompt vectors. Each panel has its
    own PCA (the two live in different spaces); points are coloured by ``labels``. Writes a PNG.
    """
    from matplotlib import colormaps  # heavy: matplotlib only for the plot
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if len(texts) < 2:
        raise ValueError("a projection needs at least 2 texts")
    labels = [str(v) for v in labels]
    sentences = sentence_representations(backbone, texts, max_length).numpy()
    prompts, mask = prompt_vectors(adapter, backbone, texts, max_length)
    pooled = masked_mean(prompts.float(), mask).numpy()
    sentence_xy, sentence_var = _pca2(sentences)
    prompt_xy, prompt_var = _pca2(pooled)
    silhouette = {"sentence": _silhouette(sentences, labels), "prompt": _silhouette(pooled, labels)}

    fig = Figure(figsize=(11, 5), dpi=120)
    FigureCanvasAgg(fig)
    classes = sorted(set(labels))
    cmap = colormaps["tab20" if len(classes) > 10 else "tab10"]
    colours = {c: cmap(i % cmap.N) for i, c in enumerate(classes)}
    panels = [("sentence representations (backbone, mean-pooled)", sentence_xy, sentence_var, silhouette["sentence"]),
              ("instance-wise prompts (mean of prompt vectors)", prompt_xy, prompt_var, silhouette["prompt"])]
    for col, (name, xy, var, sil) in enumerate(panels):
        ax = fig.add_subplot(1, 2, col + 1)
        for c in classes:
            idx = [i for i, v in enumerate(labels) if v == c]
            ax.scatter(xy[idx, 0], xy[idx, 1], s=12, alpha=0.75, color=colours[c], label=c)
        ax.set_title(f"{name}\nPCA {sum(var) * 100:.0f}% var, silhouette {sil:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.axes[-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return Projection(path, sentence_xy, prompt_xy, labels,
                      {"sentence": sentence_var, "prompt": prompt_var}, silhouette)


def load_projection_data(spec: str, max_rows: int | None = 300, data_dir: str | None = None,
                         split: str = "validation", seed: int = 0) -> tuple[list[TextInput], list[str]]:
    """Texts and label names for ``--project``: a ``.jsonl`` file, ``knowledge_cat`` or a task name.

    - ``FILE.jsonl``: one object per line with ``text`` (and optionally ``text_b``) and ``label_name``
      or ``label``.
    - ``knowledge_cat``: the vendored files (or ``data_dir``), labels named by the category manifest.
    - a task (``cb``, ``sst2``, ...): its ``split`` from ``data_dir`` or the vendored/hub copy, with the
      task's label names; two-field tasks give ``(text_a, text_b)`` pairs, as the classifier head reads them.
    """
    texts: list[TextInput] = []
    labels: list[str] = []
    path = Path(spec)
    if spec.endswith(".jsonl") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"--project: no such file {spec!r}")
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "text" not in row or not ("label_name" in row or "label" in row):
                raise ValueError(f"{spec} line {lineno}: needs 'text' and 'label' (or 'label_name')")
            texts.append((row["text"], row["text_b"]) if row.get("text_b") else row["text"])
            labels.append(str(row.get("label_name", row.get("label"))))
    elif spec == "knowledge_cat":
        manifest = load_manifest()
        raw_texts, raw_labels = load_source(PretrainSource(kind="knowledge_cat", data_dir=data_dir))
        names = manifest.label_map("knowledge_cat")
        texts, labels = list(raw_texts), [names[v] for v in raw_labels]
    else:
        task = get_task(spec)
        ds = load_task(task, data_dir=data_dir, splits=(split,))[split]
        columns = [ds[f] for f in task.text_fields]
        for values in zip(*columns):
            a, rest = str(values[0]), " ".join(str(v) for v in values[1:])
            texts.append((a, rest) if rest else a)
        labels = [task.label_names[i] for i in ds["label"]]
    if max_rows is not None and len(texts) > max_rows:
        keep = sorted(np.random.default_rng(seed).choice(len(texts), size=max_rows, replace=False).tolist())
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    return texts, labels
