"""Category pretraining of the prompt table for Pretrained IPT and Encoder IPT (``ipt-ray pretrain``).

The pipeline, one function each:

1. :func:`load_manifest` reads ``ipt_ray/data/categories.yaml``: the 13 category names (their order
   fixes the class ids) and, per source dataset, which category each of its labels belongs to.
2. :func:`build_corpus` loads the configured sources (``knowledge_cat`` jsonl, 20 Newsgroups, benchmark
   tasks), maps every row's label to a category id through the manifest and subsamples (``max_rows``).
3. :func:`heldout_split` holds out a stratified fraction of every category.
4. :class:`CategoryClassifier` is a TextCNN (kernels 3/4/5, max-pool over valid windows, dropout,
   linear to the categories) over a trainable ``[V, d]`` embedding initialised from the backbone's
   word embeddings. Inputs are the backbone tokenizer's *content* tokens (no special tokens), the same
   ids the prompt sources look up, so the rows that move are the rows IPT uses.
5. :func:`run_pretrain` trains it, reports held-out accuracy per epoch (stdout and MLflow) and saves
   the embedding as a prompt-table checkpoint (:data:`ipt_ray.prompts.instance.TABLE_FORMAT`) that
   ``method.table_init: <path>`` loads; a checkpoint made for another backbone is refused at load time.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ipt_ray.backbone import Backbone, load_backbone
from ipt_ray.config import ExperimentConfig, PretrainConfig, PretrainSource
from ipt_ray.prompts.instance import TABLE_FORMAT, _TextCNN

__all__ = [
    "PACKAGED_MANIFEST", "VENDORED_KNOWLEDGE_CAT", "WIKIPEDIA_CATEGORIES", "CATEGORY_DESCRIPTIONS",
    "Manifest", "Corpus", "PretrainResult", "CategoryClassifier",
    "load_manifest", "load_source", "build_corpus", "heldout_split", "tokenize_corpus", "train_classifier",
    "run_pretrain", "save_prompt_table", "sentence_embeddings", "suggest_label_mapping",
]

_DATA = Path(__file__).resolve().parent.parent / "data"  # ipt_ray/data: the vendored files
PACKAGED_MANIFEST = _DATA / "categories.yaml"
VENDORED_KNOWLEDGE_CAT = _DATA / "knowledge_cat"

#: Wikipedia's top-level content categories (Wikipedia:Contents/Categories), in the portal's order.
WIKIPEDIA_CATEGORIES: tuple[str, ...] = (
    "General reference",
    "Culture and the arts",
    "Geography and places",
    "Health and fitness",
    "History and events",
    "Human activities",
    "Mathematics and logic",
    "Natural and physical sciences",
    "People and self",
    "Philosophy and thinking",
    "Religion and belief systems",
    "Society and social sciences",
    "Technology and applied sciences",
)

#: Short descriptions of the categories (their portal sub-topics), for :func:`suggest_label_mapping`.
CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "General reference": "reference works, encyclopedias, dictionaries, almanacs, directories, research, information",
    "Culture and the arts": "literature, novels, poetry, film, music, theatre, visual and performing arts, entertainment",
    "Geography and places": "countries, regions, cities, continents, population, landforms, climate, places of the world",
    "Health and fitness": "medicine, diseases, patients, treatment, public health, nutrition, exercise",
    "History and events": "history, historical periods, wars, past and current events, news",
    "Human activities": "work, business, industry, trade, agriculture, sports, recreation, hobbies, games",
    "Mathematics and logic": "mathematics, arithmetic, algebra, geometry, equations, numbers, logic",
    "Natural and physical sciences": "physics, chemistry, biology, earth sciences, astronomy, nature",
    "People and self": "people, persons, personal life, relationships, behaviour, emotions, the self",
    "Philosophy and thinking": "philosophy, philosophers, thought, reasoning, knowledge, ethics, metaphysics",
    "Religion and belief systems": "religion, God, scripture, faith, worship, theology, beliefs",
    "Society and social sciences": "society, politics, government, law, economics, finance, sociology",
    "Technology and applied sciences": "technology, engineering, computing, electronics, energy, transport",
}

_SPLIT_FILES = {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}


class PretrainError(ValueError):
    """A problem with the pretraining inputs (manifest, sources), phrased for the user."""


# ---------------------------------------------------------------- manifest


@dataclass
class Manifest:
    """Category names (position = class id) and, per dataset, label -> category name."""

    path: Path
    categories: list[str]
    datasets: dict[str, dict[str, Any]]  # key -> {"kind": ..., "labels": {label: category name}}

    def category_id(self, dataset: str, label: Any) -> int:
        entry = self.entry(dataset)
        labels = entry["labels"]
        name = labels.get(str(label), labels.get("*"))
        if name is None:
            known = ", ".join(k for k in labels)
            raise PretrainError(f"{self.path}: dataset {dataset!r} has no category for label {label!r} "
                                f"(mapped: {known}); add it to the manifest")
        return self.categories.index(name)

    def entry(self, dataset: str) -> dict[str, Any]:
        if dataset not in self.datasets:
            raise PretrainError(f"{self.path}: no dataset {dataset!r} in the manifest "
                                f"(has: {', '.join(self.datasets)})")
        return self.datasets[dataset]

    def label_map(self, dataset: str) -> dict[str, str]:
        return dict(self.entry(dataset)["labels"])


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and check a category manifest (default: the packaged one)."""
    path = Path(path) if path is not None else PACKAGED_MANIFEST
    if not path.is_file():
        raise PretrainError(f"pretrain.manifest: no such file {str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PretrainError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list) or not isinstance(data.get("datasets"), dict):
        raise PretrainError(f"{path}: expected a mapping with 'categories' (a list) and 'datasets' (a mapping)")
    categories = [str(c) for c in data["categories"]]
    if len(set(categories)) != len(categories) or not categories:
        raise PretrainError(f"{path}: 'categories' must be a non-empty list of distinct names")
    datasets: dict[str, dict[str, Any]] = {}
    for key, entry in data["datasets"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("labels"), dict):
            raise PretrainError(f"{path}: datasets.{key} needs a 'labels' mapping")
        labels: dict[str, str] = {}
        for label, value in entry["labels"].items():
            name = value.get("category") if isinstance(value, dict) else value
            if name not in categories:
                raise PretrainError(f"{path}: datasets.{key}.labels.{label}: {name!r} is not one of the categories "
                                    f"({', '.join(categories)})")
            labels[str(label)] = str(name)
        datasets[str(key)] = {"kind": entry.get("kind"), "labels": labels, "raw": entry}
    return Manifest(path=path, categories=categories, datasets=datasets)


# ---------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """Texts with category ids; ``sources[i]`` names the manifest dataset row ``i`` came from."""

    texts: list[str]
    labels: np.ndarray  # [N] category ids
    sources: list[str]
    categories: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self, index: np.ndarray | None = None) -> dict[str, int]:
        labels = self.labels if index is None else self.labels[index]
        found = np.bincount(labels, minlength=len(self.categories))
        return {name: int(n) for name, n in zip(self.categories, found)}

    def subset(self, index: Sequence[int]) -> Corpus:
        index = list(index)
        return Corpus([self.texts[i] for i in index], self.labels[index], [self.sources[i] for i in index],
                      self.categories)


def _resolve(path: str, base_dir: Path | None) -> Path:
    """A user path: as given when it exists, else relative to the experiment YAML's folder."""
    p = Path(path).expanduser()
    if not p.exists() and not p.is_absolute() and base_dir is not None and (base_dir / p).exists():
        return base_dir / p
    return p


def load_source(source: PretrainSource, base_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """``(texts, raw labels as strings)`` of one source, all its requested splits."""
    from ipt_ray.data import tasks

    if source.kind == "knowledge_cat":
        folder = _resolve(source.data_dir, base_dir) if source.data_dir else VENDORED_KNOWLEDGE_CAT
        if not folder.is_dir():
            raise PretrainError(f"knowledge_cat source: data_dir {str(folder)!r} is not a directory")
        names = list(_SPLIT_FILES) if source.split == "all" else [source.split]
        files = [folder / _SPLIT_FILES[n] for n in names if (folder / _SPLIT_FILES[n]).is_file()]
        if not files:  # names holds just the split asked for, unless it is "all"
            raise PretrainError(f"knowledge_cat source: no {' / '.join(_SPLIT_FILES[n] for n in names)} in {folder}")
        texts, labels = [], []
        for path in files:
            ds = tasks.load_knowledge_cat(path)
            texts += ds["text"]
            labels += [str(v) for v in ds["label"]]
        return texts, labels
    if source.kind == "20newsgroups":
        folder = _resolve(str(source.data_dir), base_dir)
        texts, labels = [], []
        for split in (("train", "test") if source.split == "all" else (source.split,)):
            ds = tasks.load_20newsgroups(folder, split)
            texts += ds["text"]
            labels += ds["label_name"]
        return texts, labels
    # a benchmark task: its text fields joined, its label names
    spec = tasks.get_task(str(source.name))
    splits = ("train", "validation") if source.split == "all" else (source.split,)
    data_dir = _resolve(source.data_dir, base_dir) if source.data_dir else None
    loaded = tasks.load_task(spec, data_dir=data_dir, splits=splits)
    texts, labels = [], []
    for split in splits:
        ds = loaded[split]
        columns = [ds[f] for f in spec.text_fields]
        texts += [" ".join(str(v).strip() for v in values) for values in zip(*columns)]
        labels += [spec.label_names[i] for i in ds["label"]]
    return texts, labels


def build_corpus(cfg: PretrainConfig, manifest: Manifest | None = None, base_dir: Path | None = None) -> Corpus:
    """All sources, labels mapped to category ids; blank texts dropped; ``max_rows`` drawn with ``cfg.seed``."""
    manifest = manifest or load_manifest(_resolve(cfg.manifest, base_dir) if cfg.manifest else None)
    texts: list[str] = []
    labels: list[int] = []
    origin: list[str] = []
    for i, source in enumerate(cfg.sources):
        entry = manifest.entry(source.key)
        if entry.get("kind") not in (None, source.kind):
            raise PretrainError(f"pretrain.sources.{i}: manifest dataset {source.key!r} is of kind "
                                f"{entry['kind']!r}, not {source.kind!r}")
        raw_texts, raw_labels = load_source(source, base_dir)
        keep = [j for j, t in enumerate(raw_texts) if t.strip()]
        if source.max_rows is not None and len(keep) > source.max_rows:
            rng = np.random.default_rng([cfg.seed, i])
            keep = sorted(rng.choice(keep, size=source.max_rows, replace=False).tolist())
        for j in keep:
            texts.append(raw_texts[j])
            labels.append(manifest.category_id(source.key, raw_labels[j]))
            origin.append(source.key)
    if not texts:
        raise PretrainError("pretrain.sources gave no text")
    return Corpus(texts, np.asarray(labels, dtype=np.int64), origin, list(manifest.categories))


def heldout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, heldout_idx)``: ``round(fraction * n_c)`` rows of every category ``c`` held out.

    A category with at least two rows keeps at least one on each side; one with a single row trains.
    """
    rng = np.random.default_rng(seed)
    train, heldout = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_held = int(round(fraction * len(rows)))
        n_held = min(max(n_held, 1), len(rows) - 1) if len(rows) >= 2 else 0
        heldout.append(rows[:n_held])
        train.append(rows[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(heldout))


def tokenize_corpus(corpus: Corpus, tokenizer: Any, max_length: int) -> list[list[int]]:
    """Content-token ids (no special tokens), at most ``max_length`` per text."""
    enc = tokenizer(corpus.texts, add_special_tokens=False, truncation=True, max_length=max_length)
    return [list(ids) for ids in enc["input_ids"]]


# ---------------------------------------------------------------- model


class CategoryClassifier(nn.Module):
    """TextCNN over a trainable table: ``ids [B, n], mask [B, n] -> logits [B, C]``.

    ``table`` is ``[V, d]`` (initialised from the backbone's word embeddings); kernels 3/4/5 with
    ``channels`` filters each, ReLU, max-pool over the valid windows, dropout, linear to ``C``.
    """

    def __init__(self, table: torch.Tensor, num_classes: int, channels: int = 100, dropout: float = 0.5):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(table.detach().clone().float(), freeze=False)
        self.cnn = _TextCNN(table.shape[1], channels)
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
             generator: torch.Generator | None = None):
    """``(ids [B, n], mask [B, n], labels [B], rows)`` per batch; rows index the corpus."""
    for rows in _batch_rows(ids, index, batch_size, generator):
        width = max(1, max(len(ids[r]) for r in rows))
        x = torch.full((len(rows), width), pad_id, dtype=torch.long)
        m = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            x[i, :len(ids[r])] = torch.tensor(ids[r], dtype=torch.long)
            m[i, :len(ids[r])] = 1
        yield x, m, torch.as_tensor(labels[rows]), rows


def _predict(model: CategoryClassifier, ids, labels, index, batch_size, pad_id) -> np.ndarray:
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
    rest = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
    optimizer = torch.optim.Adam([
        {"params": [model.embedding.weight], "lr": cfg.embedding_lr},
        {"params": rest, "lr": cfg.lr},
    ])
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    pred = np.zeros(0, dtype=np.int64)
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for x, m, y, _ in _batches(ids, labels, train_idx, cfg.batch_size, pad_id, generator):
            loss = F.cross_entropy(model(x, m), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        pred = _predict(model, ids, labels, heldout_idx, max(64, cfg.batch_size), pad_id)
        accuracy = float((pred == labels[heldout_idx]).mean()) if len(heldout_idx) else float("nan")
        record = {"epoch": epoch, "train_loss": total / max(count, 1), "heldout_accuracy": accuracy,
                  "epoch_time_s": time.perf_counter() - start}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return model, history, confusion_matrix(labels[heldout_idx], pred, num_classes)


# ---------------------------------------------------------------- checkpoint


def save_prompt_table(path: str | Path, table: torch.Tensor, backbone: Backbone, categories: Sequence[str],
                      heldout_accuracy: float, **extra: Any) -> Path:
    """Write a checkpoint that :func:`ipt_ray.prompts.instance.load_prompt_table` reads (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": TABLE_FORMAT, "table": table.detach().cpu().float().contiguous(),
            "backbone": backbone.identity(), "categories": list(categories),
            "heldout_accuracy": float(heldout_accuracy), **extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- tracking


class _Tracker:
    """One MLflow run for one pretraining (``MlflowClient`` only, like the sweep tracker)."""

    def __init__(self, uri: str, experiment: str, run_name: str, tags: dict[str, str]):
        from mlflow.tracking import MlflowClient

        from ipt_ray.tracking import check_reachable, get_or_create_experiment

        check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        exp_id = get_or_create_experiment(self.client, uri, experiment)  # as the sweeps do
        self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id

    def params(self, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in values.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def artifacts(self, files: dict[str, str]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                (Path(tmp) / name).write_text(text)
                self.client.log_artifact(self.run_id, str(Path(tmp) / name))

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def _flat_params(cfg: ExperimentConfig, corpus: Corpus, n_train: int, n_heldout: int) -> dict[str, Any]:
    p = cfg.pretrain
    params: dict[str, Any] = {f"pretrain.{k}": v for k, v in p.model_dump(mode="json").items() if k != "sources"}
    params["pretrain.sources"] = json.dumps([s.model_dump(mode="json", exclude_none=True) for s in p.sources])
    params.update({"backbone.name": cfg.backbone.name, "corpus_rows": len(corpus), "train_rows": n_train,
                   "heldout_rows": n_heldout, "num_categories": len(corpus.categories)})
    return params


def _confusion_csv(cm: np.ndarray, categories: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["true \\ predicted", *categories])
    for name, row in zip(categories, cm):
        writer.writerow([name, *(int(v) for v in row)])
    return out.getvalue()


# ---------------------------------------------------------------- the command


@dataclass
class PretrainResult:
    checkpoint: Path
    heldout_accuracy: float
    history: list[dict[str, float]]
    confusion: np.ndarray
    category_counts: dict[str, dict[str, int]]
    wall_time_s: float
    run_id: str | None = None
    categories: list[str] = field(default_factory=list)


def run_pretrain(
    cfg: ExperimentConfig,
    base_dir: str | Path | None = None,
    track: bool = True,
    backbone: Backbone | None = None,
    log: Callable[[str], None] = print,
) -> PretrainResult:
    """``ipt-ray pretrain``: corpus -> TextCNN over the backbone's tokens -> prompt-table checkpoint.

    ``base_dir`` (the experiment YAML's folder) resolves relative ``data_dir`` / ``manifest`` paths that
    do not exist relative to the working directory. ``track=False`` skips MLflow.
    """
    from ipt_ray.tracking import resolve_tracking_uri

    started = time.perf_counter()
    p = cfg.pretrain
    base = Path(base_dir) if base_dir is not None else None
    manifest = load_manifest(_resolve(p.manifest, base) if p.manifest else None)
    corpus = build_corpus(p, manifest, base)
    backbone = backbone or load_backbone(cfg.backbone)
    tok = backbone.tokenizer
    ids = tokenize_corpus(corpus, tok, p.max_length)
    usable = np.asarray([i for i, row in enumerate(ids) if row], dtype=np.int64)
    if len(usable) < len(corpus):  # texts with no content token under this tokenizer
        corpus = corpus.subset(usable)
        ids = [ids[i] for i in usable]
    train_idx, heldout_idx = heldout_split(corpus.labels, p.heldout_fraction, p.seed)
    counts = {"train": corpus.counts(train_idx), "heldout": corpus.counts(heldout_idx),
              "by_source": {s: corpus.counts(np.flatnonzero(np.asarray(corpus.sources) == s))
                            for s in dict.fromkeys(corpus.sources)}}
    log(f"ipt-ray pretrain: {len(corpus)} texts from {', '.join(dict.fromkeys(corpus.sources))} "
        f"({len(train_idx)} train / {len(heldout_idx)} held out), {len(corpus.categories)} categories, "
        f"backbone {cfg.backbone.name} (vocab {backbone.vocab_size}, width {backbone.hidden_size})")

    output = Path(p.output).expanduser()
    tracker = None
    if track:
        uri = resolve_tracking_uri(cfg.tracking.uri)
        tracker = _Tracker(uri, cfg.tracking.experiment, f"pretrain-{cfg.backbone.name.replace('/', '_')}",
                           {"ipt.kind": "pretrain", "ipt.backbone": cfg.backbone.name,
                            "ipt.checkpoint": str(output.resolve())})
        tracker.params(_flat_params(cfg, corpus, len(train_idx), len(heldout_idx)))
        log(f"MLflow run {tracker.run_id} in experiment {cfg.tracking.experiment!r} at {uri}")

    def on_epoch(record: dict[str, float]) -> None:
        log(f"epoch {record['epoch']}: train_loss {record['train_loss']:.4f}  heldout_accuracy "
            f"{record['heldout_accuracy']:.4f}  ({record['epoch_time_s']:.1f}s)")
        if tracker is not None:
            tracker.metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))

    try:
        table = backbone.word_embeddings.weight.detach()
        pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        model, history, cm = train_classifier(p, table, ids, corpus.labels, train_idx, heldout_idx,
                                              len(corpus.categories), pad_id, on_epoch)
        accuracy = history[-1]["heldout_accuracy"]
        classifier_state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("embedding.")}
        save_prompt_table(output, model.embedding.weight, backbone, corpus.categories, accuracy,
                          history=history, confusion=cm.tolist(), category_counts=counts,
                          config=p.model_dump(mode="json"), manifest=str(manifest.path),
                          classifier=classifier_state, mlflow_run_id=tracker.run_id if tracker else None)
        wall = time.perf_counter() - started
        if tracker is not None:
            tracker.metrics({"final_heldout_accuracy": accuracy, "wall_time_s": wall}, step=p.epochs)
            tracker.artifacts({
                "confusion_matrix.csv": _confusion_csv(cm, corpus.categories),
                "category_counts.json": json.dumps(counts, indent=2),
                "categories.yaml": manifest.path.read_text(),
            })
            tracker.end("FINISHED")
    except KeyboardInterrupt:
        if tracker is not None:
            tracker.end("KILLED")
        raise
    except Exception:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    log(f"held-out accuracy {accuracy:.4f} ({len(heldout_idx)} texts); wall time {wall:.1f}s")
    log(f"prompt table saved to {output} (use it with method.table_init: {output})")
    return PretrainResult(output, accuracy, history, cm, counts, wall, tracker.run_id if tracker else None,
                          list(corpus.categories))


# ---------------------------------------------------------------- label-name inference


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
            hidden = backbone.encoder(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))
    return torch.cat(out) if out else torch.zeros(0, backbone.hidden_size)


def suggest_label_mapping(backbone: Backbone, texts: Sequence[str], labels: Sequence[int],
                          descriptions: dict[str, str] | None = None) -> tuple[dict[int, str], np.ndarray]:
    """A one-to-one label id -> category name guess for an unnamed corpus (how the knowledge_cat names were checked).

    Each label's centroid (mean of normalised sentence embeddings) is compared by cosine with the
    embedding of each category's ``"<name>: <description>"``; the assignment maximising the total
    similarity (Hungarian algorithm) is returned with the ``[labels, categories]`` similarity matrix.
    Use a sentence-embedding backbone (all-MiniLM-L6-v2); the result is evidence, not ground truth.
    """
    from scipy.optimize import linear_sum_assignment

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

