"""Typed experiment configuration, loaded from YAML.

Every section is a strict pydantic model: unknown keys, wrong types and out-of-range values fail with
the dotted field path and the allowed values, before anything is built or written.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TaskName = Literal["boolq", "cb", "rte", "multirc", "sst2", "imdb", "ag_news"]
Strategy = Literal[
    "fine_tuning",  # baseline: no prompt, backbone unfrozen
    "prompt_tuning",  # SoftPrompt (with injection=prefix: Prefix Tuning / P-tuning v2)
    "ppt",  # SoftPrompt initialised from a pretrained task prompt
    "structured",  # StructuredPrompt: hypernetwork over a task embedding
    "random_ipt",  # TokenTablePrompt, random table
    "pretrained_ipt",  # TokenTablePrompt, table from a pretrained topic classifier
    "encoder_ipt",  # EncoderPrompt over the frozen pretrained table
]
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]
#: The custom resource a `num_workers >= 1` trial reserves instead of CPUs (declared by every cluster file).
TRIAL_SLOT = "trial_slot"


class ConfigError(ValueError):
    """A configuration problem, phrased for the user (field path, value, allowed values)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskConfig(_Strict):
    name: TaskName = "cb"
    source: Literal["auto", "local", "hub", "vendored"] = "auto"
    data_dir: str | None = Field(None, description="folder in the task's original distributed format")
    few_shot_k: int | None = Field(None, ge=1, description="K examples per class (few-shot regime)")
    cv_folds: int = Field(4, ge=2, description="folds for few-shot cross validation")
    cv_fold: int | None = Field(None, ge=0, description="train on this fold's train part, select on its dev part")
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    max_length: int = Field(128, ge=8, le=4096, description="tokens per input, prompt excluded")
    data_seed: int = Field(0, ge=0, description="seed for subsampling and few-shot sampling")

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.source == "local" and not self.data_dir:
            raise ValueError("task.source 'local' needs task.data_dir")
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            raise ValueError(f"task.data_dir {self.data_dir!r} is not a directory")
        if self.cv_fold is not None and self.cv_fold >= self.cv_folds:
            raise ValueError(f"task.cv_fold {self.cv_fold} must be < task.cv_folds ({self.cv_folds})")
        return self


class BackboneConfig(_Strict):
    name: str = Field("minilm-l6", description="alias, hub name or local folder of a BERT/RoBERTa checkpoint")
    revision: str | None = None
    local_files_only: bool = Field(False, description="never touch the network (HF_HUB_OFFLINE does the same)")


class MethodConfig(_Strict):
    strategy: Strategy = "random_ipt"
    injection: Literal["input", "prefix"] = "input"
    head: Literal["classifier", "verbalizer"] = "classifier"
    prompt_length: int = Field(16, ge=0, le=512, description="k: prompt vectors per instance")
    # SoftPrompt / PPT
    prompt_init: Literal["random", "vocab"] = "vocab"
    pretrained_prompt: str | None = Field(None, description="PPT: file with a pretrained [k, d] prompt")
    # StructuredPrompt
    hypernetwork: Literal["linear", "lowrank", "mlp"] = "mlp"
    task_embedding_dim: int = Field(64, ge=1)
    hypernetwork_rank: int = Field(8, ge=1)
    hypernetwork_hidden: int = Field(128, ge=1)
    # TokenTablePrompt / EncoderPrompt
    table_layout: Literal["full", "compact", "lowrank"] = "compact"
    table_rank: int = Field(16, ge=1)
    table_init: str | None = Field(
        None,
        description="'random', 'backbone' (the backbone's word embeddings) or a prompt-table checkpoint path; "
        "default: 'random' for random_ipt, 'backbone' for pretrained_ipt / encoder_ipt until `ipt-ray pretrain` "
        "made a checkpoint",
    )
    encoder: Literal["cnn", "rnn", "mlp"] = "cnn"
    encoder_hidden: int = Field(64, ge=1)
    seq_util_rate: float = Field(1.0, gt=0.0, le=1.0, description="fraction of content tokens the encoder reads")
    # PrefixInjection
    prefix_hidden: int = Field(128, ge=1, description="width of the prefix MLP reparameterisation")
    # Head
    head_dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> MethodConfig:
        if self.strategy == "fine_tuning" and self.head != "classifier":
            raise ValueError("method.head must be 'classifier' for strategy 'fine_tuning'")
        if self.strategy == "ppt" and not self.pretrained_prompt:
            raise ValueError("method.pretrained_prompt is required for strategy 'ppt'")
        if self.strategy not in ("fine_tuning",) and self.prompt_length == 0 and self.injection == "prefix":
            raise ValueError("method.prompt_length must be >= 1 with injection 'prefix'")
        return self

    @property
    def uses_prompt(self) -> bool:
        return self.strategy != "fine_tuning"


class TrainConfig(_Strict):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_ratio: float = Field(0.06, ge=0.0, lt=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    execution: Literal["auto", "batched", "sequential"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    output_dir: str = Field("runs", description="where adapters and checkpoints are written")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads (CPU)")
    progress: bool = True

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"train.seeds must be distinct, got {v}")
        return v


class ParamSpace(_Strict):
    """One search dimension. `type` picks which other fields apply."""

    type: Literal["choice", "int", "uniform", "loguniform"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ParamSpace:
        if self.type == "choice":
            if not self.values:
                raise ValueError("type 'choice' needs a non-empty 'values' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"type {self.type!r} needs 'low' and 'high'")
            if self.low >= self.high:
                raise ValueError(f"'low' ({self.low}) must be < 'high' ({self.high})")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError("type 'loguniform' needs 'low' > 0")
        return self


class SweepConfig(_Strict):
    search_space: dict[str, ParamSpace] = Field(default_factory=dict)
    num_samples: int = Field(4, ge=1, description="configs to try")
    metric: str = Field("accuracy", description="dev metric to optimise (seed mean)")
    mode: Literal["max", "min"] = "max"
    searcher: Literal["optuna", "random", "grid"] = "optuna"
    searcher_seed: int = 0
    scheduler: Literal["none", "asha", "median"] = "none"
    grace_period: int = Field(1, ge=1)
    max_concurrent_trials: int | None = Field(None, ge=1)
    name: str | None = Field(None, description="sweep name; default: derived from the YAML file name")

    @field_validator("search_space")
    @classmethod
    def _known_keys(cls, v: dict[str, ParamSpace]) -> dict[str, ParamSpace]:
        for key, dim in v.items():
            section, _, field = key.partition(".")
            model = _SECTIONS.get(section)
            if model is not None and not field:
                # A whole section as one dimension: each choice is a partial section (a method variant
                # such as {strategy: random_ipt, injection: prefix}); merged over the base config.
                if dim.type != "choice" or not all(isinstance(x, dict) for x in dim.values or []):
                    raise ValueError(f"search key {key!r} names a section: use type 'choice' with mappings as values")
                for value in dim.values or []:
                    unknown = [k for k in value if k not in model.model_fields]
                    if unknown:
                        raise ValueError(f"search key {key!r}: unknown field(s) {unknown} "
                                         f"(allowed: {', '.join(model.model_fields)})")
                continue
            if model is None or field not in model.model_fields:
                allowed = ", ".join(f"{s}.<field>" for s in ("method", "train", "task"))
                raise ValueError(f"unknown search key {key!r} (allowed: {allowed}, fields of those sections, "
                                 "or a section name with mappings as choices)")
        return v


class TrackingConfig(_Strict):
    uri: str | None = Field(None, description="MLflow tracking URI; default MLFLOW_TRACKING_URI or a local store")
    experiment: str = "ipt-ray"


class ClusterConfig(_Strict):
    address: str | None = Field(None, description="Ray address; default RAY_ADDRESS or a local Ray")
    num_workers: int = Field(0, ge=0, description="Ray Train workers per trial; 0 runs in the Tune trial")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(1.0, ge=0)
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs a trial reserves when num_workers is 0")
    max_failures: int = Field(2, ge=0)
    health_check_interval_s: float = Field(
        0.25, gt=0, le=60,
        description="how often the Ray Train controller polls its workers when num_workers >= 1; starting "
                    "and ending a trial wait on these polls, and Ray's default of 2 s adds ~3 s per trial")


PRETRAIN_SPLITS: dict[str, tuple[str, ...]] = {
    "knowledge_cat": ("all", "train", "dev", "test"),
    "20newsgroups": ("all", "train", "test"),
    "task": ("all", "train", "validation"),
}


class PretrainSource(_Strict):
    """One labelled corpus for category pretraining; the manifest maps its labels to the 13 categories."""

    kind: Literal["knowledge_cat", "20newsgroups", "task"]
    name: str | None = Field(None, description="manifest entry; default the kind (kind 'task': the task name)")
    data_dir: str | None = Field(None, description="the user's copy; knowledge_cat defaults to the vendored files")
    split: str = Field("all", description="knowledge_cat: all|train|dev|test; 20newsgroups: all|train|test; "
                                          "task: all|train|validation")
    max_rows: int | None = Field(None, ge=1, description="random subset of at most this many rows")

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
        if self.kind == "task" and self.name not in TaskName.__args__:  # type: ignore[attr-defined]
            raise ValueError(f"kind 'task' needs name, one of {', '.join(TaskName.__args__)}; got {self.name!r}")  # type: ignore[attr-defined]
        return self

    @property
    def key(self) -> str:
        """The manifest entry this source's labels are looked up in."""
        return self.name or self.kind


class PretrainConfig(_Strict):
    """``ipt-ray pretrain``: category corpus -> TextCNN over the backbone's tokens -> prompt-table checkpoint."""

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
    output: str = Field("runs/pretrain/prompt_table.pt", description="checkpoint path (method.table_init)")


class ExperimentConfig(_Strict):
    task: TaskConfig = Field(default_factory=TaskConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if self.task.few_shot_k is None and self.task.cv_fold is not None:
            raise ValueError("task.cv_fold needs task.few_shot_k (cross validation is the few-shot protocol)")
        return self

    def with_overrides(self, overrides: dict[str, Any]) -> ExperimentConfig:
        """A validated copy with dotted keys (``method.prompt_length``) replaced."""
        data = self.model_dump()
        for key, value in overrides.items():
            set_dotted(data, key, value)
        return validate_config(data)


_SECTIONS: dict[str, type[BaseModel]] = {
    "task": TaskConfig,
    "backbone": BackboneConfig,
    "method": MethodConfig,
    "train": TrainConfig,
}


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})  # an unknown section is reported by validation, with the allowed ones
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part!r} is a value, not a section")
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        node[parts[-1]] = {**node[parts[-1]], **value}  # a partial section overrides only its own fields
    else:
        node[parts[-1]] = value


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} configuration error(s)"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            section = _model_at(e["loc"][:-1])
            allowed = ", ".join(section.model_fields) if section else "?"
            msg = f"unknown key (allowed: {allowed})"
        elif e["type"] == "literal_error":
            msg = f"{msg}; got {e.get('input')!r}"
        elif "input" in e and not isinstance(e["input"], dict):
            msg = f"{msg}; got {e['input']!r}"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = ExperimentConfig
    for part in loc:
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model


def validate_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def parse_value(text: str) -> Any:
    """`--set` values are YAML scalars: `16` is an int, `1e-3` a float, `[0,1]` a list."""
    return yaml.safe_load(text)


def load_config(path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections ({', '.join(ExperimentConfig.model_fields)})")
    data = copy.deepcopy(data)
    if isinstance(overrides, list):
        pairs: dict[str, Any] = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set {item!r}: expected key=value, e.g. method.prompt_length=32")
            pairs[key.strip()] = parse_value(value)
        overrides = pairs
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    _absolute_paths(data, path.parent)
    return validate_config(data, source=str(path))


# Fields holding file paths, made absolute at load time: Tune trials run in their own directories.
_PATH_FIELDS = (("task", "data_dir"), ("method", "table_init"), ("method", "pretrained_prompt"))
_TABLE_INIT_WORDS = ("random", "backbone")


def _absolute_paths(data: dict[str, Any], yaml_dir: Path) -> None:
    """Relative paths resolve against the working directory, or else the YAML's folder."""
    for section, field in _PATH_FIELDS:
        node = data.get(section)
        value = node.get(field) if isinstance(node, dict) else None
        if not isinstance(value, str) or (field == "table_init" and value in _TABLE_INIT_WORDS):
            continue
        candidate = Path(value).expanduser()
        if candidate.is_absolute():
            continue
        node[field] = str(candidate.resolve() if candidate.exists() else (yaml_dir / candidate).resolve())


ConfigLike = Union[ExperimentConfig, dict]


def as_config(config: ConfigLike) -> ExperimentConfig:
    return config if isinstance(config, ExperimentConfig) else validate_config(config)
