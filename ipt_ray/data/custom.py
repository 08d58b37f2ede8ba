"""A task described by ``task.dataset`` instead of named: the user's files in the built-in tasks' schema.

:func:`custom_task` reads every file (:mod:`ipt_ray.data.files`), refuses bad data precisely (a missing
column with the columns present, an empty text or label in a named row, labels of mixed types, labels
that ``task.dataset.labels`` do not cover, a dev/test label train lacks) and returns the
:class:`~ipt_ray.data.specs.TaskSpec` and a ``DatasetDict`` with ``train`` and, where given,
``validation`` and ``test``: the text columns, ``label`` (a ``ClassLabel`` over the label names) and
``idx``, exactly as :func:`ipt_ray.data.load_task` gives a benchmark task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import datasets

from ipt_ray.config import DATASET_SPLITS, ConfigError, DatasetConfig, TaskConfig
from ipt_ray.data.errors import DataError
from ipt_ray.data.files import Part, read_parts
from ipt_ray.data.specs import TaskSpec, get_task

__all__ = ["CUSTOM_METRICS", "custom_task", "custom_spec", "default_template", "task_spec", "task_metrics",
           "dataset_texts"]

#: What a described task reports (and a sweep may optimise, besides ``loss``).
CUSTOM_METRICS: tuple[str, ...] = ("accuracy",)
_LABEL_TYPES = (str, int)


@dataclass
class _Split:
    """One split's values, checked: texts per field, raw label values, and where row ``i`` came from."""

    texts: dict[str, list[str]]
    labels: list[Any]
    origin: list[tuple[str, int]]  # (file, 1-based row in that file)


def custom_task(task: TaskConfig) -> tuple[TaskSpec, datasets.DatasetDict]:
    """The spec and the ``train`` (/ ``validation`` / ``test``) splits of ``task.dataset``, every row checked."""
    cfg = _dataset(task)
    datasets.disable_progress_bars()  # one bar per file would drown the run's own output
    splits = {name: _read_split(cfg, name) for name in DATASET_SPLITS if getattr(cfg, name) is not None}
    _check_label_types(splits)
    names = _label_names(cfg, splits)
    _check_labels(cfg, splits, names)
    spec = custom_spec(task, names)
    return spec, datasets.DatasetDict({name: _to_dataset(spec, split, names) for name, split in splits.items()})


def custom_spec(task: TaskConfig, label_names: Sequence[str]) -> TaskSpec:
    """The spec of a described task with these label names (metrics: :data:`CUSTOM_METRICS`)."""
    cfg = _dataset(task)
    names = tuple(str(n) for n in label_names)
    words = tuple(cfg.label_words) if cfg.label_words is not None else names
    if len(words) != len(names):
        raise ConfigError(f"task.dataset.label_words has {len(words)} words for the {len(names)} labels found in "
                          f"train ({', '.join(names)}): give one word per label")
    return TaskSpec(name=task.name, text_fields=tuple(cfg.text_fields), label_names=names, label_words=words,
                    metrics=CUSTOM_METRICS, hub_path=(str(cfg.train), cfg.hf_config) if cfg.hub else ("", None),
                    template=cfg.template or default_template(cfg.text_fields))


def default_template(text_fields: Sequence[str]) -> str:
    """The verbalizer's template when ``task.dataset.template`` is not given: the texts, then the mask."""
    return " ".join(f"{{{f}}}" for f in text_fields) + " {mask}."


def task_spec(task: TaskConfig, label_names: Sequence[str] | None = None) -> TaskSpec:
    """The spec of a built-in or described task; a described one's labels are ``label_names`` when given
    (a saved adapter's), else ``task.dataset.labels``, else read from its files."""
    if task.dataset is None:
        return get_task(task.name)
    if label_names is None and task.dataset.labels is not None:
        label_names = [str(v) for v in task.dataset.labels]
    return custom_spec(task, label_names) if label_names is not None else custom_task(task)[0]


def task_metrics(task: TaskConfig) -> tuple[str, ...]:
    """The metrics a task reports, without reading any data."""
    return CUSTOM_METRICS if task.dataset is not None else get_task(task.name).metrics


def dataset_texts(cfg: DatasetConfig, splits: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(texts, labels)`` of a pretraining source: text fields joined; the label column's values as text, or
    without ``label_field`` each row's file name (the manifest gives a category per file)."""
    texts: list[str] = []
    labels: list[str] = []
    for name in splits:
        for part in read_parts(cfg, name):
            _check_columns(cfg, part)
            columns = [part.rows[f] for f in cfg.text_fields]
            texts += [" ".join(str(v).strip() for v in values if v is not None) for values in zip(*columns)]
            if cfg.label_field is None:
                labels += [Path(part.where).name] * len(part.rows)
            else:
                labels += [_label(v, None, cfg.label_field, part.where, i + 1)
                           for i, v in enumerate(part.rows[cfg.label_field])]
    return texts, [str(v) for v in labels]


def _dataset(task: TaskConfig) -> DatasetConfig:
    if task.dataset is None:
        raise ValueError(f"task {task.name!r} has no task.dataset")
    return task.dataset


# ---------------------------------------------------------------- reading and per-row checks


def _read_split(cfg: DatasetConfig, name: str) -> _Split:
    split = _Split({f: [] for f in cfg.text_fields}, [], [])
    for part in read_parts(cfg, name):
        _check_columns(cfg, part)
        _add_part(cfg, part, split)
    return split


def _check_columns(cfg: DatasetConfig, part: Part) -> None:
    present = part.rows.column_names
    for role, column in [*(("text_fields", f) for f in cfg.text_fields), ("label_field", cfg.label_field)]:
        if column is not None and column not in present:
            joined = len(present) == 1 and any(sep in present[0] for sep in ",\t;|")
            hint = f" (one column: is task.dataset.format {cfg.format!r} right?)" if joined else ""
            raise DataError(part.where, f"no column {column!r} (task.dataset.{role}); its columns: "
                                        f"{', '.join(present)}{hint}", field=column)


def _add_part(cfg: DatasetConfig, part: Part, split: _Split) -> None:
    label_feature = part.rows.features[cfg.label_field]
    names = getattr(label_feature, "names", None)  # a hub ClassLabel: its ids stand for these names
    columns = {c: part.rows[c] for c in (*cfg.text_fields, cfg.label_field)}
    for i in range(len(part.rows)):
        row = i + 1
        for field in cfg.text_fields:
            split.texts[field].append(_text(columns[field][i], field, part.where, row))
        split.labels.append(_label(columns[cfg.label_field][i], names, cfg.label_field, part.where, row))
        split.origin.append((part.where, row))


def _text(value: Any, field: str, where: str, row: int) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        if value is None:
            raise DataError(where, f"row {row}: text field {field!r} is empty", field=field)
        raise DataError(where, f"row {row}: text field {field!r} must be text, got {type(value).__name__}",
                        field=field)
    if not value.strip():
        raise DataError(where, f"row {row}: text field {field!r} is empty", field=field)
    return value


def _label(value: Any, names: Sequence[str] | None, field: str, where: str, row: int) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(where, f"row {row}: label field {field!r} is empty", field=field)
    if names is not None:
        if not 0 <= int(value) < len(names):
            raise DataError(where, f"row {row}: label {value} is no class of the hub dataset (unlabelled split?)",
                            field=field)
        return names[int(value)]
    if isinstance(value, bool):
        value = "true" if value else "false"  # a JSON boolean label (BoolQ's), spelled as JSON writes it
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a Parquet/JSON column of whole numbers read as floats
    if not isinstance(value, _LABEL_TYPES):
        raise DataError(where, f"row {row}: label {value!r} is a {type(value).__name__}; labels are strings or "
                               "integers", field=field)
    return value.strip() if isinstance(value, str) else value


# ---------------------------------------------------------------- label checks


def _check_label_types(splits: dict[str, _Split]) -> None:
    """All labels of all splits are strings, or all integers (JSON can mix them; CSV cells are text)."""
    first: dict[type, tuple[str, int]] = {}
    for split in splits.values():
        for value, origin in zip(split.labels, split.origin):
            first.setdefault(type(value), origin)
    if len(first) > 1:
        shown = ", ".join(f"{kind.__name__} first in {where} row {row}" for kind, (where, row) in first.items())
        raise DataError("task.dataset.label_field", f"labels of mixed types ({shown}); make them all strings or "
                                                    "all integers")


def _label_names(cfg: DatasetConfig, splits: dict[str, _Split]) -> list[str]:
    """``task.dataset.labels`` as strings, else the sorted label values of train."""
    if cfg.labels is not None:
        return [str(v) for v in cfg.labels]
    found = sorted(set(splits["train"].labels))
    if len(found) < 2:
        where = splits["train"].origin[0][0]
        raise DataError(where, f"train has {len(found)} label ({', '.join(map(str, found))}): a classification "
                               "task needs at least 2", field=cfg.label_field)
    return [str(v) for v in found]


def _check_labels(cfg: DatasetConfig, splits: dict[str, _Split], names: list[str]) -> None:
    """Every label is one of ``names``, every name has train rows, and dev/test hold only train's labels."""
    train = splits["train"]
    in_train = {str(v) for v in train.labels}
    if cfg.labels is not None:
        _check_covered(train, set(names), cfg.label_field, "task.dataset.labels", names)
        absent = [n for n in names if n not in in_train]
        if absent:
            raise DataError(train.origin[0][0], f"label(s) {', '.join(map(repr, absent))} of task.dataset.labels "
                                                "have no train rows", field=cfg.label_field)
    for name in ("validation", "test"):
        if name in splits:
            _check_covered(splits[name], in_train, cfg.label_field, "train", sorted(in_train))


def _check_covered(split: _Split, allowed: set[str], field: str, against: str, shown: Sequence[str]) -> None:
    for value, (where, row) in zip(split.labels, split.origin):
        if str(value) not in allowed:
            missing = sorted({str(v) for v in split.labels} - allowed)
            what = "is not one of task.dataset.labels" if against != "train" else "does not occur in train"
            raise DataError(where, f"row {row}: label {str(value)!r} {what} ({', '.join(shown)}); labels missing "
                                   f"there: {', '.join(missing)}", field=field)


def _to_dataset(spec: TaskSpec, split: _Split, names: list[str]) -> datasets.Dataset:
    index = {n: i for i, n in enumerate(names)}
    columns: dict[str, list[Any]] = {**split.texts, "label": [index[str(v)] for v in split.labels],
                                     "idx": list(range(len(split.labels)))}
    return datasets.Dataset.from_dict(columns, features=spec.features())
