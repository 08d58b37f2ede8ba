"""Preflight: every check that bad input can fail, done before any training, Ray start or MLflow write.

``preflight(cfg)`` raises a :class:`ConfigError`, :class:`DataError`, :class:`BackboneError` or
``ValueError`` whose message names the field path, file, line or allowed values; it returns None when
the experiment can run. It never loads model weights and never writes anything.

What it checks, for the base config and (``sweep=True``) for every config the search space can produce
(each choice value and range bound alone, then every combination while there are at most
:data:`ipt_ray.config.MAX_COMBINATIONS`):

- the config itself: ``cfg.with_overrides(...)`` validates each search-space value; ``searcher: grid``
  takes choice and int dimensions only; ``sweep.metric`` is one the task reports;
- the data: every task the sweep can touch is parsed with :func:`ipt_ray.data.load_splits` (files,
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

import json
from pathlib import Path
from typing import Any

from ipt_ray.backbone import ALIASES, PROMPT_TABLE, ArtefactError, BackboneError, check_identity, inspect_artefact
from ipt_ray.backbone import soft_prompt_name, tensor_shapes
from ipt_ray.config import ConfigError, ExperimentConfig, MethodConfig, TaskConfig, config_key, sweep_variants
from ipt_ray.data import DataError, get_task, load_splits, task_metrics
from ipt_ray.model import label_word_ids
from ipt_ray.preflight.backbone import BackboneInfo, IdentityOnly, backbone_tokenizer, check_backbone, check_positions
from ipt_ray.preflight.words import check_one_token_each, custom_label_words


def preflight(cfg: ExperimentConfig, *, sweep: bool = True) -> None:
    """Raise a clear error if ``cfg`` (and, with ``sweep``, any config of its search space) cannot run."""
    variants = sweep_variants(cfg) if sweep else [("", cfg)]
    if sweep:
        _check_searcher(cfg)
    for label, variant in variants:  # cheap, config-only checks first
        _in_context(label, _check_metric, variant)
        if sweep:
            _in_context(label, _check_absolute_paths, variant)
    backbones: dict[str, BackboneInfo] = {}
    checked: set[str] = set()
    for label, variant in variants:
        key = config_key(variant.backbone)
        if key not in backbones:
            backbones[key] = _in_context(label, check_backbone, variant.backbone)
        info = backbones[key]
        m = variant.method
        what = json.dumps([key, variant.task.name, variant.task.max_length, m.strategy, m.injection, m.head,
                           m.prompt_length, m.task_prompt_length, m.prefix_projection,
                           getattr(m, "hard_prompt", None), strategy_files(m)])
        if what not in checked:  # a checkpoint is read once, however many configs share it
            checked.add(what)
            _in_context(label, _check_method, variant, info)
            _in_context(label, check_positions, variant, info)
    tasks: set[str] = set()
    for label, variant in variants:
        key = config_key(variant.task)
        if key not in tasks:
            tasks.add(key)
            _in_context(label, check_task, variant.task)


def _check_searcher(cfg: ExperimentConfig) -> None:
    if cfg.sweep.searcher == "grid":
        for key, dim in cfg.sweep.search_space.items():
            if dim.type not in ("choice", "int"):
                raise ConfigError(f"sweep.search_space.{key}: searcher 'grid' needs choice or int dimensions, "
                                  f"not {dim.type!r} (use searcher 'optuna' or 'random' for ranges)")


def _check_metric(cfg: ExperimentConfig) -> None:
    allowed = (*task_metrics(cfg.task), "loss")
    if cfg.sweep.metric not in allowed:
        raise ConfigError(f"sweep.metric {cfg.sweep.metric!r} is not reported for task {cfg.task.name!r} "
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


# ---------------------------------------------------------------- method files


def _check_method(cfg: ExperimentConfig, info: BackboneInfo) -> None:
    m = cfg.method
    if m.head == "verbalizer" and info.config is not None:
        archs = list(getattr(info.config, "architectures", None) or [])
        if archs and not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
            raise BackboneError(
                f"method.head 'verbalizer' needs an MLM head, but backbone {cfg.backbone.name!r} is a "
                f"{', '.join(archs)} checkpoint; use method.head: classifier, or an MLM checkpoint such as roberta-large")
        tok = backbone_tokenizer(info.source, info.revision, True, info.name)
        if cfg.task.dataset is None:
            label_word_ids(tok, get_task(cfg.task.name).label_words)  # ValueError naming the words if they collide
        else:
            words = custom_label_words(cfg.task)
            check_one_token_each(tok, words, cfg.task, cfg.backbone.name)
            label_word_ids(tok, words)
    for name, value in strategy_files(m).items():
        check = _FILE_CHECKS.get(m.spec.reads[name].kind, _check_exists)
        check(value, cfg, info)


def strategy_files(method: MethodConfig) -> dict[str, str]:
    """The files the method's strategy reads (its spec's ``reads``): field name -> path as given."""
    return {name: getattr(method, name) for name, option in method.spec.reads.items()
            if option.is_path(getattr(method, name, None))}


def _check_exists(path: str, cfg: ExperimentConfig, info: BackboneInfo) -> None:
    if not Path(path).expanduser().is_file() and not Path(path).expanduser().is_dir():
        raise ConfigError(f"{path!r}: no such file (read by strategy {cfg.method.strategy!r})")


def _check_table(table_init: str, cfg: ExperimentConfig, info: BackboneInfo) -> None:
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
    check_identity(saved.identity, IdentityOnly(identity), f"method.table_init: prompt table {path}")
    shape = saved.shapes["table"]
    if shape != (identity["vocab_size"], identity["hidden_size"]):
        raise ValueError(f"method.table_init {table_init!r}: table shape {shape} != "
                         f"({identity['vocab_size']}, {identity['hidden_size']}) of backbone {cfg.backbone.name!r}")


def _check_pretrained_prompt(pretrained: str, cfg: ExperimentConfig, info: BackboneInfo) -> None:
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ValueError(f"method.pretrained_prompt: no such file {pretrained!r} (a safetensors file with a "
                         "[k, d] tensor)")
    shapes = tensor_shapes(path, "method.pretrained_prompt")  # the header only: a pickle is refused unread
    shape = shapes[soft_prompt_name(shapes, "method.pretrained_prompt", path)]
    config, m = info.config, cfg.method
    width = m.prompt_width(int(config.hidden_size), int(config.num_hidden_layers)) if config is not None else None
    if len(shape) != 2 or (width is not None and shape[1] != width):
        why = (" (method.prefix_projection: none feeds every layer's keys and values: 2 x layers x d per row)"
               if width is not None and width != int(config.hidden_size) else "")
        raise ValueError(f"method.pretrained_prompt {pretrained!r} has shape {shape}, expected [k, "
                         f"{width if width is not None else 'd'}] for backbone {cfg.backbone.name!r}{why}")
    if shape[0] < cfg.method.prompt_length:
        raise ValueError(f"method.pretrained_prompt {pretrained!r} has {shape[0]} rows, fewer than "
                         f"method.prompt_length {cfg.method.prompt_length}")


# ---------------------------------------------------------------- helpers


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


def _check_encoder(encoder_init: str, cfg: ExperimentConfig, info: BackboneInfo) -> None:
    """``method.encoder_init``: the pretrained encoder of ``method.encoder``'s type and width, for this backbone."""
    from ipt_ray.prompts.sources.encoder import encoder_hidden, inspect_prompt_encoder

    if info.config is None:
        return  # an online hub backbone: checked when the encoder loads
    m = cfg.method
    saved = inspect_prompt_encoder(encoder_init, m.encoder, encoder_hidden(m, int(info.config.hidden_size)))
    check_identity(saved.identity, IdentityOnly(info.identity()), f"method.encoder_init: prompt encoder {saved.directory}")


#: How each kind of file a strategy reads is checked (FileOption.kind); other kinds: the file exists.
_FILE_CHECKS = {"prompt_table": _check_table, "soft_prompt": _check_pretrained_prompt, "prompt_encoder": _check_encoder}
