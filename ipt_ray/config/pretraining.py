"""The ``pretrain`` section: category pretraining of the prompt table (``ipt-ray pretrain``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ipt_ray.config.base import StrictSection, TaskName
from ipt_ray.config.dataset import DatasetConfig

PRETRAIN_SPLITS: dict[str, tuple[str, ...]] = {
    "knowledge_cat": ("all", "train", "dev", "test"),
    "20newsgroups": ("all", "train", "test"),
    "task": ("all", "train", "validation"),
    "dataset": ("all", "train", "validation", "test"),
}


class PretrainSource(StrictSection):
    """One labelled corpus for category pretraining; the manifest maps its labels to the 13 categories."""

    kind: Literal["knowledge_cat", "20newsgroups", "task", "dataset"]
    name: str | None = Field(None, description="manifest entry; default the kind (kind 'task': the task name; "
                                               "kind 'dataset': required)")
    data_dir: str | None = Field(None, description="the user's copy; knowledge_cat defaults to the vendored files")
    split: str = Field("all", description="knowledge_cat: all|train|dev|test; 20newsgroups: all|train|test; "
                                          "task: all|train|validation; dataset: all|train|validation|test")
    max_rows: int | None = Field(None, ge=1, description="random subset of at most this many rows")
    dataset: DatasetConfig | None = Field(None, description="kind 'dataset': your files, described as task.dataset "
                                                            "(without label_field each file's category is the "
                                                            "manifest's for that file)")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):  # a list item: name the allowed keys here (the error formatter cannot)
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                raise ValueError(f"unknown key(s) {unknown} (allowed: {', '.join(cls.model_fields)})")
        return data

    @model_validator(mode="after")
    def _check(self) -> PretrainSource:
        allowed = PRETRAIN_SPLITS[self.kind]
        if self.split not in allowed:
            raise ValueError(f"split {self.split!r} is not one of {', '.join(allowed)} for kind {self.kind!r}")
        if self.kind == "20newsgroups" and not self.data_dir:
            raise ValueError("kind '20newsgroups' needs data_dir (the folder with 20news-bydate-*.tar.gz)")
        if (self.kind == "dataset") != (self.dataset is not None):
            raise ValueError("kind 'dataset' needs dataset (format, train, text_fields, ...), and only it takes one")
        if self.kind == "dataset" and (not self.name or self.data_dir):
            raise ValueError("kind 'dataset' needs name (its manifest entry) and no data_dir (the files are in "
                             "dataset.train / validation / test)")
        if self.kind == "task" and self.name not in TaskName.__args__:  # type: ignore[attr-defined]
            raise ValueError(f"kind 'task' needs name, one of {', '.join(TaskName.__args__)}; got {self.name!r}")  # type: ignore[attr-defined]
        return self

    @property
    def key(self) -> str:
        """The manifest entry this source's labels are looked up in."""
        return self.name or self.kind


class PretrainConfig(StrictSection):
    """``ipt-ray pretrain``: category corpus -> TextCNN over the backbone's tokens -> prompt-table checkpoint,
    then one topic classifier per Encoder IPT encoder type in ``encoders``, each reading the trained table's
    rows frozen (as Encoder IPT reads them); their encoders are saved beside the table (``method.encoder_init``)."""

    sources: list[PretrainSource] = Field(
        default_factory=lambda: [PretrainSource(kind="knowledge_cat")], min_length=1)
    manifest: str | None = Field(None, description="category manifest YAML; default the packaged "
                                                   "ipt_ray/data/categories.yaml")
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="Adam learning rate of the convolutions and output layer")
    embedding_lr: float = Field(1e-4, gt=0.0, le=10.0, description="Adam learning rate of the table (small: the "
                                                                  "rows stay near the backbone's embeddings)")
    max_length: int = Field(128, ge=8, le=4096, description="content tokens per text")
    channels: int = Field(100, ge=1, description="filters per kernel size (3, 4, 5)")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="stratified by category")
    seed: int = Field(0, ge=0)
    output: str = Field("runs/pretrain/prompt_table", description="checkpoint folder (method.table_init); the "
                                                                  "encoders go to its encoder_<type>/ folders "
                                                                  "(method.encoder_init)")
    encoders: list[Literal["cnn", "rnn", "mlp"]] = Field(
        default_factory=lambda: ["cnn", "rnn", "mlp"],
        description="Encoder IPT encoders to train on the trained table ([]: the table only)")
    encoder_epochs: int = Field(5, ge=1, description="epochs of each encoder classifier")
    encoder_lr: float = Field(5e-3, gt=0.0, le=10.0, description="Adam learning rate of the encoder classifiers "
                                                                "(5e-3: 0.67-0.75 held-out after 3 epochs on MiniLM, 1e-3: 0.45-0.60)")
    encoder_hidden: int | None = Field(None, ge=1, description="feature width of the encoders; default as "
                                                               "method.encoder_hidden's (proportional to d)")

    @model_validator(mode="after")
    def _distinct_encoders(self) -> PretrainConfig:
        if len(set(self.encoders)) != len(self.encoders):
            raise ValueError(f"encoders {self.encoders} names an encoder twice")
        return self


