"""Preflight: every check that bad input can fail, done before any training, Ray start or MLflow write.

``preflight(cfg)`` raises a :class:`ConfigError`, :class:`DataError`, :class:`BackboneError` or
``ValueError`` whose message names the field path, file, line or allowed values; it returns None when
the experiment can run. It never loads model weights and never writes anything.

What it checks, for the base config and (``sweep=True``) for every config the search space can produce
(each choice value and range bound alone, then every combination while there are at most
:data:`MAX_COMBINATIONS`):

- the config itself: ``cfg.with_overrides(...)`` validates each search-space value; ``searcher: grid``
  takes choice and int dimensions only; ``sweep.metric`` is one the task reports;
- the data: every task the sweep can touch is parsed with :func:`ipt_ray.train.load_splits` (files,
  lines, fields and labels; few-shot K against class sizes);
- the backbone: an alias resolves, a local folder has ``config.json``, tokenizer files and weights, a hub
  name is in the Hugging Face cache when offline (``HF_HUB_OFFLINE=1`` or ``backbone.local_files_only``);
  its config and tokenizer load (no weights); the verbalizer head has an MLM head to use; the prompt plus
  the input fit the backbone's position embeddings;
- the method's files: ``method.table_init`` checkpoints exist, are prompt tables and were made for this
  backbone (identity from config + tokenizer alone, :func:`identity_of`); ``method.pretrained_prompt``
  exists and has the backbone's width and at least ``prompt_length`` rows;
- sweeps only: paths are absolute (Tune runs each trial in its own working directory, where a relative
  path names nothing).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ipt_ray.backbone import ALIASES, BackboneError, is_offline, check_identity, resolve_name, tokenizer_hash
from ipt_ray.backbone import PROMPT_TABLE, ArtefactError, inspect_artefact, soft_prompt_name, tensor_shapes
from ipt_ray.config import BackboneConfig, ConfigError, ExperimentConfig, MethodConfig, ParamSpace, TaskConfig
from ipt_ray.data import DataError, get_task, load_splits
from ipt_ray.model import label_word_ids

__all__ = ["preflight", "sweep_variants", "identity_of", "MAX_COMBINATIONS"]

#: Above this many search-space combinations only single values are checked (each against the base).
MAX_COMBINATIONS = 256

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")


def preflight(cfg: ExperimentConfig, *, sweep: bool = True) -> None:
    """Raise a clear error if ``cfg`` (and, with ``sweep``, any config of its search space) cannot run."""
    variants = sweep_variants(cfg) if sweep else [("", cfg)]
    if sweep:
        _check_searcher(cfg)
    for label, variant in variants:  # cheap, config-only checks first
        _in_context(label, _check_metric, variant)
        if sweep:
            _in_context(label, _check_absolute_paths, variant)
    backbones: dict[str, _BackboneInfo] = {}
    checked: set[str] = set()
    for label, variant in variants:
        key = _key(variant.backbone)
        if key not in backbones:
            backbones[key] = _in_context(label, check_backbone, variant.backbone)
        info = backbones[key]
        m = variant.method
        what = json.dumps([key, variant.task.name, variant.task.max_length, m.strategy, m.injection, m.head,
                           m.prompt_length, strategy_files(m)])
        if what not in checked:  # a checkpoint is read once, however many configs share it
            checked.add(what)
            _in_context(label, _check_method, variant, info)
            _in_context(label, _check_positions, variant, info)
    tasks: set[str] = set()
    for label, variant in variants:
        key = _key(variant.task)
        if key not in tasks:
            tasks.add(key)
            _in_context(label, check_task, variant.task)


# ---------------------------------------------------------------- the search space


def sweep_variants(cfg: ExperimentConfig) -> list[tuple[str, ExperimentConfig]]:
    """``(label, config)`` for the base and every config the search space can produce, each validated.

    Choice values and the bounds of ranges are tried one at a time first (so a bad value is named
    alone), then crossed. ``label`` says where a config comes from (empty for the base).
    """
    dims: list[tuple[str, list[tuple[str, Any]]]] = []
    for key, dim in cfg.sweep.search_space.items():
        dims.append((key, _dimension_points(dim)))
    out: list[tuple[str, ExperimentConfig]] = [("", cfg)]
    seen = {_key(cfg)}

    def add(label: str, overrides: dict[str, Any]) -> None:
        try:
            variant = cfg.with_overrides(overrides)
        except ConfigError as err:
            lines = str(err).splitlines()[1:] or [str(err)]
            raise ConfigError(f"{label} gives an invalid config:\n" + "\n".join(lines)) from None
        k = _key(variant)
        if k not in seen:
            seen.add(k)
            out.append((label, variant))

    for key, points in dims:
        for what, value in points:
            add(f"sweep.search_space.{key}: {what} {value!r}", {key: value})
    sizes = [len(points) for _, points in dims]
    total = 1
    for n in sizes:
        total *= n
    if len(dims) > 1 and total <= MAX_COMBINATIONS:
        for combo in itertools.product(*(points for _, points in dims)):
            overrides = {key: value for (key, _), (_, value) in zip(dims, combo)}
            shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
            add(f"sweep.search_space: the combination {shown}", overrides)
    return out


def _dimension_points(dim: ParamSpace) -> list[tuple[str, Any]]:
    if dim.type == "choice":
        return [("choice", v) for v in dim.values or []]
    if dim.type == "int":
        low, high, step = int(dim.low), int(dim.high), dim.step or 1
        top = low + (high - low) // step * step  # the largest value qrandint can give
        return [("low", low), ("high", top)] if top != low else [("low", low)]
    return [("low", float(dim.low)), ("high", float(dim.high))]


def _check_searcher(cfg: ExperimentConfig) -> None:
    if cfg.sweep.searcher == "grid":
        for key, dim in cfg.sweep.search_space.items():
            if dim.type not in ("choice", "int"):
                raise ConfigError(f"sweep.search_space.{key}: searcher 'grid' needs choice or int dimensions, "
                                  f"not {dim.type!r} (use searcher 'optuna' or 'random' for ranges)")


def _check_metric(cfg: ExperimentConfig) -> None:
    spec = get_task(cfg.task.name)
    allowed = (*spec.metrics, "loss")
    if cfg.sweep.metric not in allowed:
        raise ConfigError(f"sweep.metric {cfg.sweep.metric!r} is not reported for task {spec.name!r} "
                          f"(allowed: {', '.join(allowed)})")


def _check_absolute_paths(cfg: ExperimentConfig) -> None:
    """Tune runs every trial in its own working directory: a relative path there names nothing."""
    why = "is relative, but Tune runs each trial in its own working directory; give an absolute path"
    if cfg.task.data_dir and not Path(cfg.task.data_dir).expanduser().is_absolute():
        raise ConfigError(f"task.data_dir {cfg.task.data_dir!r} {why}")
    name = cfg.backbone.name
    if name not in ALIASES and not Path(name).expanduser().is_absolute() \
            and (name.startswith(".") or Path(name).exists()):
        raise ConfigError(f"backbone.name {name!r} {why}")
    for name, value in strategy_files(cfg.method).items():
        if not Path(value).expanduser().is_absolute():
            raise ConfigError(f"method.{name} {value!r} {why}")


# ---------------------------------------------------------------- data


def check_task(task: TaskConfig) -> None:
    """Parse the task's files (every record checked) exactly as training will, without tokenising."""
    try:
        load_splits(task)
    except (DataError, ConfigError):
        raise
    except FileNotFoundError as err:
        raise DataError("task.data_dir" if task.data_dir else f"task {task.name!r}", str(err)) from err
    except ValueError as err:
        raise ValueError(f"task {task.name!r}: {err}") from err
    except Exception as err:  # noqa: BLE001 - hub errors come in many types (offline, missing dataset, ...)
        raise DataError(f"task {task.name!r} (source {task.source!r})",
                        f"could not load the data ({type(err).__name__}: {err}); offline? give task.data_dir "
                        "with the files in their original format") from err


# ---------------------------------------------------------------- backbone


@dataclass(frozen=True)
class _BackboneInfo:
    name: str
    source: str  # local folder or hub name
    revision: str | None
    offline: bool
    config: Any | None  # transformers PretrainedConfig; None when it cannot be had without the network

    def identity(self) -> dict[str, Any]:
        return identity_of(self.name, self.revision, self.offline)


def check_backbone(cfg: BackboneConfig) -> _BackboneInfo:
    """Resolve the backbone and check that its files are there; loads its config, never its weights."""
    source = resolve_name(cfg.name)  # alias package, missing folder, folder without config.json
    offline = is_offline(cfg)
    folder = Path(source)
    if folder.is_dir():
        names = {p.name for p in folder.iterdir()}
        if not names & set(TOKENIZER_FILES):
            raise BackboneError(f"backbone.name {cfg.name!r}: folder {source} has no tokenizer files "
                                f"(looked for: {', '.join(TOKENIZER_FILES)})")
        if not names & set(WEIGHT_FILES):
            raise BackboneError(f"backbone.name {cfg.name!r}: folder {source} has no model weights "
                                f"(looked for: {', '.join(WEIGHT_FILES)})")
    elif offline:
        _check_hub_cache(cfg, source)
    else:
        return _BackboneInfo(cfg.name, source, cfg.revision, offline, None)  # the hub answers at load time
    return _BackboneInfo(cfg.name, source, cfg.revision, offline, _hf_config(source, cfg.revision, cfg.name))


def _check_hub_cache(cfg: BackboneConfig, source: str) -> None:
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(source, filename, revision=cfg.revision), str)

    why = "HF_HUB_OFFLINE=1" if not cfg.local_files_only else "backbone.local_files_only"
    if not cached("config.json"):
        raise BackboneError(
            f"backbone.name {cfg.name!r} is not in the Hugging Face cache and downloads are off ({why}): "
            f"download it once with network (`hf download {source}`), or give a local folder or the alias "
            "'minilm-l6'")
    if not any(cached(f) for f in TOKENIZER_FILES):
        raise BackboneError(f"backbone.name {cfg.name!r}: the Hugging Face cache has its config but no tokenizer "
                            f"files ({why})")
    if not any(cached(f) for f in WEIGHT_FILES):
        raise BackboneError(f"backbone.name {cfg.name!r}: the Hugging Face cache has its config but no weights "
                            f"({why}; looked for: {', '.join(WEIGHT_FILES)})")


@lru_cache(maxsize=16)
def _hf_config(source: str, revision: str | None, name: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision, local_files_only=True)
    except (OSError, ValueError) as err:
        raise BackboneError(f"backbone.name {name!r}: cannot read its config.json ({err})") from err


@lru_cache(maxsize=16)
def _tokenizer(source: str, revision: str | None, local_only: bool, name: str) -> Any:
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=local_only)
    except (OSError, ValueError, TypeError) as err:
        raise BackboneError(f"backbone.name {name!r}: cannot load its tokenizer ({err})") from err


def identity_of(name: str, revision: str | None = None, local_files_only: bool | None = None) -> dict[str, Any]:
    """What :meth:`ipt_ray.backbone.Backbone.identity` gives, from AutoConfig + AutoTokenizer alone (no weights)."""
    offline = is_offline(BackboneConfig(name=name)) if local_files_only is None else bool(local_files_only)
    source = resolve_name(name)
    local_only = offline or Path(source).is_dir()
    config = _hf_config(source, revision, name) if local_only else _online_config(source, revision)
    tok = _tokenizer(source, revision, local_only, name)
    return {
        "name": name,
        "model_type": config.model_type,
        "hidden_size": int(config.hidden_size),
        "num_layers": int(config.num_hidden_layers),
        "vocab_size": int(config.vocab_size),
        "tokenizer_hash": tokenizer_hash(tok),
    }


def _online_config(source: str, revision: str | None) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source, revision=revision)


class _IdentityOnly:
    """Enough of a Backbone for :func:`check_identity`: a name and an identity, no weights."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.name = identity["name"]
        self._identity = identity

    def identity(self) -> dict[str, Any]:
        return self._identity


def _check_positions(cfg: ExperimentConfig, info: _BackboneInfo) -> None:
    """The prompt and the input share the backbone's position embeddings (input injection)."""
    config = info.config
    max_pos = getattr(config, "max_position_embeddings", None) if config is not None else None
    if not max_pos:
        return
    offset = int(getattr(config, "pad_token_id", 0) or 0) + 1 if config.model_type in _ROBERTA_LIKE else 0
    m, n = cfg.method, cfg.task.max_length
    k = m.prompt_length if m.uses_prompt and m.injection == "input" else 0
    if offset + k + n > max_pos:
        what = f"task.max_length {n} + method.prompt_length {k}" if k else f"task.max_length {n}"
        extra = f" (+{offset} position offset)" if offset else ""
        raise ConfigError(f"{what}{extra} = {offset + k + n} positions, more than backbone {cfg.backbone.name!r} "
                          f"has ({max_pos} max_position_embeddings); lower task.max_length or method.prompt_length")


# ---------------------------------------------------------------- method files


def _check_method(cfg: ExperimentConfig, info: _BackboneInfo) -> None:
    m = cfg.method
    if m.head == "verbalizer" and info.config is not None:
        archs = list(getattr(info.config, "architectures", None) or [])
        if archs and not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
            raise BackboneError(
                f"method.head 'verbalizer' needs an MLM head, but backbone {cfg.backbone.name!r} is a "
                f"{', '.join(archs)} checkpoint; use method.head: classifier, or an MLM checkpoint such as roberta-large")
        tok = _tokenizer(info.source, info.revision, True, info.name)
        label_word_ids(tok, get_task(cfg.task.name).label_words)  # ValueError naming the words if they collide
    for name, value in strategy_files(m).items():
        check = _FILE_CHECKS.get(m.spec.reads[name].kind, _check_exists)
        check(value, cfg, info)


def strategy_files(method: MethodConfig) -> dict[str, str]:
    """The files the method's strategy reads (its spec's ``reads``): field name -> path as given."""
    return {name: getattr(method, name) for name, option in method.spec.reads.items()
            if option.is_path(getattr(method, name, None))}


def _check_exists(path: str, cfg: ExperimentConfig, info: _BackboneInfo) -> None:
    if not Path(path).expanduser().is_file() and not Path(path).expanduser().is_dir():
        raise ConfigError(f"{path!r}: no such file (read by strategy {cfg.method.strategy!r})")


def _check_table(table_init: str, cfg: ExperimentConfig, info: _BackboneInfo) -> None:
    path = Path(table_init).expanduser()
    if not path.exists():
        raise ValueError(f"method.table_init: no such prompt-table checkpoint {table_init!r} "
                         "(allowed: 'random', 'backbone' or a folder written by `ipt-ray pretrain`)")
    try:
        saved = inspect_artefact(path, PROMPT_TABLE)  # its JSON and safetensors headers: no tensor read, no pickle
    except (ArtefactError, FileNotFoundError) as err:
        raise ArtefactError(f"method.table_init: {err}") from None
    if info.config is None:
        return  # an online hub backbone: the identity is checked when the table loads
    identity = info.identity()
    check_identity(saved.identity, _IdentityOnly(identity), f"method.table_init: prompt table {path}")
    shape = saved.shapes["table"]
    if shape != (identity["vocab_size"], identity["hidden_size"]):
        raise ValueError(f"method.table_init {table_init!r}: table shape {shape} != "
                         f"({identity['vocab_size']}, {identity['hidden_size']}) of backbone {cfg.backbone.name!r}")


def _check_pretrained_prompt(pretrained: str, cfg: ExperimentConfig, info: _BackboneInfo) -> None:
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ValueError(f"method.pretrained_prompt: no such file {pretrained!r} (a safetensors file with a "
                         "[k, d] tensor)")
    shapes = tensor_shapes(path, "method.pretrained_prompt")  # the header only: a pickle is refused unread
    shape = shapes[soft_prompt_name(shapes, "method.pretrained_prompt", path)]
    width = int(info.config.hidden_size) if info.config is not None else None
    if len(shape) != 2 or (width is not None and shape[1] != width):
        raise ValueError(f"method.pretrained_prompt {pretrained!r} has shape {shape}, expected [k, "
                         f"{width if width is not None else 'd'}] for backbone {cfg.backbone.name!r}")
    if shape[0] < cfg.method.prompt_length:
        raise ValueError(f"method.pretrained_prompt {pretrained!r} has {shape[0]} rows, fewer than "
                         f"method.prompt_length {cfg.method.prompt_length}")


# ---------------------------------------------------------------- helpers


def _key(model: Any) -> str:
    return json.dumps(model.model_dump(mode="json"), sort_keys=True)


def _in_context(label: str, check, *args: Any) -> Any:
    """Run a check; an error about a search-space variant says which one, keeping its type."""
    try:
        return check(*args)
    except ValueError as err:
        if not label:
            raise
        raise _relabel(err, f"{label}: {err}") from err


def _relabel(err: ValueError, message: str) -> ValueError:
    new = type(err).__new__(type(err))
    new.__dict__.update(err.__dict__)
    new.args = (message,)
    return new


#: How each kind of file a strategy reads is checked (FileOption.kind); other kinds: the file exists.
_FILE_CHECKS = {"prompt_table": _check_table, "soft_prompt": _check_pretrained_prompt}
