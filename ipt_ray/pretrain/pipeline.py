"""Category pretraining of the prompt table for Pretrained IPT and Encoder IPT (``ipt-ray pretrain``).

The pipeline, one step each:

1. the category corpus (:mod:`ipt_ray.data.categories`): the manifest's categories, every configured
   source's texts labelled by category, subsampled (``max_rows``);
2. :func:`prepare_corpus`: the backbone tokenizer's content tokens per text, and a held-out fraction
   of every category (the data stage's :func:`ipt_ray.data.stratified_split`);
3. :func:`ipt_ray.pretrain.classifier.train_classifier`: a TextCNN (kernels 3/4/5, max-pool over valid
   windows, dropout, linear to the categories) over a trainable ``[V, d]`` embedding initialised from
   the backbone's word embeddings, held-out accuracy per epoch (stdout and MLflow);
4. :func:`save_prompt_table`: the embedding as a prompt-table checkpoint folder
   (:data:`ipt_ray.prompts.TABLE_FORMAT`) that ``method.table_init: <folder>`` loads;
5. :func:`ipt_ray.pretrain.encoders.train_encoder`, for each type in ``pretrain.encoders``: Encoder IPT's
   encoder as a topic classifier over the trained table, frozen; :func:`save_prompt_encoder` writes it to
   ``<folder>/encoder_<type>/``, which ``method.encoder_init: <folder>`` loads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ipt_ray.backbone import Backbone, load_backbone
from ipt_ray.config import ExperimentConfig, PretrainConfig
from ipt_ray.data import Corpus, Manifest, build_corpus, load_manifest, resolve_path, stratified_split
from ipt_ray.pretrain.checkpoint import save_prompt_encoder, save_prompt_table
from ipt_ray.pretrain.classifier import tokenize_corpus, train_classifier
from ipt_ray.pretrain.encoders import encoder_width, train_encoder
from ipt_ray.prompts.sources.encoder import ENCODER_FOLDER
from ipt_ray.pretrain.tracker import PretrainTracker, confusion_csv, pretrain_params
from ipt_ray.tracking import resolve_tracking_uri

Log = Callable[[str], None]


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
    encoders: dict[str, dict[str, object]] = field(default_factory=dict)  # type -> {path, heldout_accuracy, ...}


@dataclass
class PreparedCorpus:
    """The corpus with its content-token ids (texts without any dropped) and its stratified split."""

    corpus: Corpus
    ids: list[list[int]]  # content-token ids per text
    train_idx: np.ndarray
    heldout_idx: np.ndarray
    counts: dict[str, dict[str, int]]  # "train" / "heldout" / "by_source" -> category -> rows


def prepare_corpus(p: PretrainConfig, corpus: Corpus, tokenizer) -> PreparedCorpus:
    """Tokenise, drop texts with no content token under this tokenizer, hold out ``heldout_fraction``."""
    ids = tokenize_corpus(corpus, tokenizer, p.max_length)
    usable = np.asarray([i for i, row in enumerate(ids) if row], dtype=np.int64)
    if len(usable) < len(corpus):
        corpus = corpus.subset(usable)
        ids = [ids[i] for i in usable]
    train_idx, heldout_idx = stratified_split(corpus.labels, p.heldout_fraction, p.seed)
    counts = {"train": corpus.counts(train_idx), "heldout": corpus.counts(heldout_idx),
              "by_source": {s: corpus.counts(np.flatnonzero(np.asarray(corpus.sources) == s))
                            for s in dict.fromkeys(corpus.sources)}}
    return PreparedCorpus(corpus, ids, train_idx, heldout_idx, counts)


def run_pretrain(
    cfg: ExperimentConfig,
    base_dir: str | Path | None = None,
    track: bool = True,
    backbone: Backbone | None = None,
    log: Log = print,
) -> PretrainResult:
    """``ipt-ray pretrain``: corpus -> TextCNN over the backbone's tokens -> prompt-table checkpoint.

    ``base_dir`` (the experiment YAML's folder) resolves relative ``data_dir`` / ``manifest`` paths that
    do not exist relative to the working directory. ``track=False`` skips MLflow.
    """
    started = time.perf_counter()
    p = cfg.pretrain
    base = Path(base_dir) if base_dir is not None else None
    manifest = load_manifest(resolve_path(p.manifest, base) if p.manifest else None)
    corpus = build_corpus(p, manifest, base)  # corpus errors come before any weights load
    backbone = backbone or load_backbone(cfg.backbone)
    data = prepare_corpus(p, corpus, backbone.tokenizer)
    _log_corpus(cfg, data, backbone, log)
    output = Path(p.output).expanduser()
    tracker = _open_tracker(cfg, data, output, log) if track else None
    try:
        result = _train_and_save(cfg, data, manifest, backbone, output, tracker, log)
        result.wall_time_s = time.perf_counter() - started
        if tracker is not None:
            _finish_tracking(tracker, result, manifest, p.epochs)
    except KeyboardInterrupt:
        if tracker is not None:
            tracker.end("KILLED")
        raise
    except Exception:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    log(f"held-out accuracy {result.heldout_accuracy:.4f} ({len(data.heldout_idx)} texts); "
        f"wall time {result.wall_time_s:.1f}s")
    log(f"prompt table saved to {output} (use it with method.table_init: {output})")
    if result.encoders:
        log(f"encoders {', '.join(result.encoders)} saved to {output}/{ENCODER_FOLDER.format('<type>')} (use them "
            f"with method.encoder_init: {output})")
    return result


def _log_corpus(cfg: ExperimentConfig, data: PreparedCorpus, backbone: Backbone, log: Log) -> None:
    corpus = data.corpus
    log(f"ipt-ray pretrain: {len(corpus)} texts from {', '.join(dict.fromkeys(corpus.sources))} "
        f"({len(data.train_idx)} train / {len(data.heldout_idx)} held out), {len(corpus.categories)} categories, "
        f"backbone {cfg.backbone.name} (vocab {backbone.vocab_size}, width {backbone.hidden_size})")


def _open_tracker(cfg: ExperimentConfig, data: PreparedCorpus, output: Path, log: Log) -> PretrainTracker:
    uri = resolve_tracking_uri(cfg.tracking.uri)
    tracker = PretrainTracker(uri, cfg.tracking.experiment, f"pretrain-{cfg.backbone.name.replace('/', '_')}",
                              {"ipt.kind": "pretrain", "ipt.backbone": cfg.backbone.name,
                               "ipt.checkpoint": str(output.resolve())})
    tracker.params(pretrain_params(cfg, data.corpus, len(data.train_idx), len(data.heldout_idx)))
    log(f"MLflow run {tracker.run_id} in experiment {cfg.tracking.experiment!r} at {uri}")
    return tracker


def _train_and_save(cfg: ExperimentConfig, data: PreparedCorpus, manifest: Manifest, backbone: Backbone,
                    output: Path, tracker: PretrainTracker | None, log: Log) -> PretrainResult:
    """Train the classifier (reporting every epoch) and write its embedding as the checkpoint."""
    p = cfg.pretrain

    def on_epoch(record: dict[str, float]) -> None:
        log(f"epoch {record['epoch']}: train_loss {record['train_loss']:.4f}  heldout_accuracy "
            f"{record['heldout_accuracy']:.4f}  ({record['epoch_time_s']:.1f}s)")
        if tracker is not None:
            tracker.metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))

    tok = backbone.tokenizer
    pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
    categories = data.corpus.categories
    model, history, cm = train_classifier(p, backbone.word_embeddings.weight.detach(), data.ids, data.corpus.labels,
                                          data.train_idx, data.heldout_idx, len(categories), pad_id, on_epoch)
    accuracy = history[-1]["heldout_accuracy"]
    save_prompt_table(output, model.embedding.weight, backbone, categories, accuracy,
                      tensors=_classifier_tensors(model), history=history, confusion=cm.tolist(),
                      category_counts=data.counts, config=p.model_dump(mode="json"), manifest=str(manifest.path),
                      mlflow_run_id=tracker.run_id if tracker else None)
    result = PretrainResult(output, accuracy, history, cm, data.counts, 0.0, tracker.run_id if tracker else None,
                            list(categories))
    table = model.embedding.weight.detach().clone()
    for kind in p.encoders:
        result.encoders[kind] = _train_and_save_encoder(cfg, kind, table, data, backbone, output, pad_id, tracker, log)
    return result


def _train_and_save_encoder(cfg: ExperimentConfig, kind: str, table: torch.Tensor, data: PreparedCorpus,
                            backbone: Backbone, output: Path, pad_id: int, tracker: PretrainTracker | None,
                            log: Log) -> dict[str, object]:
    """One Encoder IPT encoder trained as a topic classifier on the frozen table, saved beside the table."""
    p, prefix = cfg.pretrain, f"encoder_{kind}"

    def on_epoch(record: dict[str, float]) -> None:
        log(f"{kind} encoder epoch {record['epoch']}: train_loss {record['train_loss']:.4f}  heldout_accuracy "
            f"{record['heldout_accuracy']:.4f}  ({record['epoch_time_s']:.1f}s)")
        if tracker is not None:
            tracker.metrics({f"{prefix}.{k}": v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))

    categories = data.corpus.categories
    model, history, cm = train_encoder(p, kind, table, data.ids, data.corpus.labels, data.train_idx,
                                       data.heldout_idx, len(categories), pad_id, on_epoch)
    accuracy = history[-1]["heldout_accuracy"]
    hidden = encoder_width(p, kind, table.shape[1])
    folder = save_prompt_encoder(output / ENCODER_FOLDER.format(kind), model, kind, hidden, table, output, backbone,
                                 categories, accuracy, history=history, confusion=cm.tolist(),
                                 parameters=sum(t.numel() for t in model.encoder.parameters()),
                                 mlflow_run_id=tracker.run_id if tracker else None)
    if tracker is not None:
        tracker.metrics({f"{prefix}.final_heldout_accuracy": accuracy}, step=p.encoder_epochs)
    return {"path": str(folder), "heldout_accuracy": accuracy, "hidden": hidden,
            "wall_time_s": sum(r["epoch_time_s"] for r in history)}


def _classifier_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The classifier's own weights (all but the embedding, which is the table), as ``classifier.<name>``,
    kept with the checkpoint to classify texts later."""
    return {f"classifier.{k}": v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("embedding.")}


def _finish_tracking(tracker: PretrainTracker, result: PretrainResult, manifest: Manifest, epochs: int) -> None:
    tracker.metrics({"final_heldout_accuracy": result.heldout_accuracy, "wall_time_s": result.wall_time_s}, step=epochs)
    tracker.artifacts({
        "confusion_matrix.csv": confusion_csv(result.confusion, result.categories),
        "category_counts.json": json.dumps(result.category_counts, indent=2),
        "categories.yaml": manifest.path.read_text(),
    })
    tracker.end("FINISHED")
