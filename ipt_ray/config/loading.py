"""Loading an experiment: YAML file -> ``--set`` overrides -> absolute paths -> validated config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Union

import yaml

from ipt_ray.config.base import ConfigError, set_dotted
from ipt_ray.config.dataset import DATASET_SPLITS
from ipt_ray.config.plugins import load_plugins
from ipt_ray.config.sections import ExperimentConfig
from ipt_ray.config.strategies import strategy_specs


def validate_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    return ExperimentConfig.from_dict(data, source)


def parse_value(text: str) -> Any:
    """`--set` values are YAML scalars: `16` is an int, `1e-3` a float, `[0,1]` a list."""
    return yaml.safe_load(text)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["method.prompt_length=32", ...]`` -> ``{"method.prompt_length": 32}``."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. method.prompt_length=32")
        pairs[key.strip()] = parse_value(value)
    return pairs


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
        overrides = parse_overrides(overrides)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    absolute_paths(data, path.parent)
    return validate_config(data, source=str(path))


def path_fields() -> dict[tuple[str, str], tuple[str, ...]]:
    """Fields holding file paths -> the values of theirs that are words, not paths: the task's data folder
    and every file a registered strategy reads."""
    fields: dict[tuple[str, str], tuple[str, ...]] = {("task", "data_dir"): ()}
    for spec in strategy_specs():
        for name, option in spec.reads.items():
            fields[("method", name)] = option.words
    return fields


def absolute_paths(data: dict[str, Any], yaml_dir: Path) -> None:
    """Relative paths resolve against the working directory, or else the YAML's folder (Tune trials run
    in their own directories). Plugin files are made absolute first: they may register path fields."""
    plugins = data.get("plugins")
    if isinstance(plugins, list):
        data["plugins"] = [_absolute(p, yaml_dir) if isinstance(p, str) and p.endswith(".py") else p for p in plugins]
        load_plugins(data["plugins"])  # registers their strategies (and the path fields those read)
    fields = path_fields()
    for (section, field), words in fields.items():
        node = data.get(section)
        if isinstance(node, dict) and field in node:
            node[field] = _absolute_path_value(node[field], words, yaml_dir)
    for dataset in _dataset_sections(data):
        absolute_dataset_files(dataset, yaml_dir)
    _absolute_search_space(data, fields, yaml_dir)


def _absolute_search_space(data: dict[str, Any], fields: dict[tuple[str, str], tuple[str, ...]],
                           yaml_dir: Path) -> None:
    """The same for the paths a search space's choices hold: ``method.table_init: {values: [..]}`` and a
    section-valued ``method: {values: [{table_init: ..}, ..]}`` (each trial runs in its own directory)."""
    sweep = data.get("sweep")
    space = sweep.get("search_space") if isinstance(sweep, dict) else None
    if not isinstance(space, dict):
        return
    for key, dim in space.items():
        values = dim.get("values") if isinstance(dim, dict) else None
        if not isinstance(values, list):
            continue
        if "." in key:  # one field's choices
            words = fields.get(tuple(key.split(".", 1)))
            if words is not None:
                dim["values"] = [_absolute_path_value(v, words, yaml_dir) for v in values]
            continue
        for choice in (c for c in values if isinstance(c, dict)):  # a section's choices
            for field, value in choice.items():
                if (key, field) in fields:
                    choice[field] = _absolute_path_value(value, fields[(key, field)], yaml_dir)


def _absolute_path_value(value: Any, words: tuple[str, ...], yaml_dir: Path) -> Any:
    """A path field's value made absolute; its words (e.g. 'random') and non-strings as they are."""
    return _absolute(value, yaml_dir) if isinstance(value, str) and value not in words else value


def _dataset_sections(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw ``task.dataset`` and every ``pretrain.sources[i].dataset`` mapping."""
    task, pretrain = data.get("task"), data.get("pretrain")
    found = [task.get("dataset")] if isinstance(task, dict) else []
    sources = pretrain.get("sources") if isinstance(pretrain, dict) else None
    found += [s.get("dataset") for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []
    return [d for d in found if isinstance(d, dict)]


def absolute_dataset_files(dataset: dict[str, Any], yaml_dir: Path) -> None:
    """A dataset's train / validation / test files (each a file, glob or list) relative to the YAML's folder,
    wherever the command runs; a hub dataset's (format ``hf``) are names, left as they are."""
    if dataset.get("format") == "hf":
        return
    for split in DATASET_SPLITS:
        value = dataset.get(split)
        if isinstance(value, str):
            dataset[split] = _from_yaml(value, yaml_dir)
        elif isinstance(value, list):
            dataset[split] = [_from_yaml(v, yaml_dir) if isinstance(v, str) else v for v in value]


def _from_yaml(value: str, yaml_dir: Path) -> str:
    candidate = Path(value).expanduser()
    return value if candidate.is_absolute() else str((yaml_dir / candidate).resolve())


def _absolute(value: str, yaml_dir: Path) -> str:
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return value
    return str(candidate.resolve() if candidate.exists() else (yaml_dir / candidate).resolve())


ConfigLike = Union[ExperimentConfig, dict]


def as_config(config: ConfigLike) -> ExperimentConfig:
    return config if isinstance(config, ExperimentConfig) else validate_config(config)
