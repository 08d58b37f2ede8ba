"""The ``task.dataset`` section: the user's own classification data, described instead of named.

Only what the YAML alone can tell is checked here (formats, field names, the template's placeholders,
label and label-word counts when both are given); what needs the files (columns present, label values)
is checked by :func:`ipt_ray.data.custom_task`, and one-token label words by preflight (the tokenizer).
"""

from __future__ import annotations

import re
import string
from typing import Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from ipt_ray.config.base import StrictSection, TaskName

__all__ = ["DATASET_FORMATS", "DATASET_SPLITS", "BUILTIN_TASKS", "DatasetConfig", "FileList", "template_fields", "builtin_name_errors",
           "check_custom_task"]

DATASET_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "hf")
#: The splits a dataset may give, as its fields name them.
DATASET_SPLITS = ("train", "validation", "test")
#: A file, a glob or a list of those; with format hf: a split name of the hub dataset.
FileList = Union[str, list[str]]
Label = Union[str, int]

BUILTIN_TASKS: tuple[str, ...] = TaskName.__args__  # type: ignore[attr-defined]
_BUILTIN_NAME = TypeAdapter(TaskName)
#: A custom task's name becomes part of run names, MLflow tags and report columns.
_CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def builtin_name_errors(data: Any) -> list[Any]:
    """The ``task.name`` errors of a raw task section without a dataset: the name must be a built-in task."""
    if not isinstance(data, dict) or data.get("dataset") is not None or "name" not in data:
        return []
    try:
        _BUILTIN_NAME.validate_python(data["name"])
    except ValidationError as err:
        return [{**e, "loc": ("name", *e["loc"])} for e in err.errors()]
    return []


def check_custom_task(name: str, source: str, data_dir: str | None, dataset: DatasetConfig) -> None:
    """A task described by ``task.dataset``: its own name, a label column, none of the built-in tasks' fields."""
    if dataset.label_field is None:
        raise ValueError("task.dataset.label_field is required: the column holding each row's label")
    if name in BUILTIN_TASKS:
        raise ValueError(f"task.name {name!r} is a built-in task; a task.dataset needs a name of its own "
                         f"(not one of {', '.join(BUILTIN_TASKS)})")
    if not _CUSTOM_NAME.fullmatch(name):
        raise ValueError(f"task.name {name!r}: use letters, digits, '-', '_' or '.' (at most 64, starting with a "
                         "letter or digit)")
    if data_dir is not None:
        raise ValueError("task.data_dir is for the built-in tasks; with task.dataset give the files in "
                         "task.dataset.train / validation / test")
    if source != "auto":
        raise ValueError(f"task.source {source!r} is for the built-in tasks; with task.dataset the format says "
                         "where the data comes from (format 'hf': the hub)")


def template_fields(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template, in order; a malformed one raises ValueError."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"template {template!r} is not a format string ({err})") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion:
            raise ValueError(f"template {template!r}: each placeholder names a column, e.g. "
                             f"{{headline}} (got {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}})")
        names.append(name)
    return names


class DatasetConfig(StrictSection):
    """Files (or a hub dataset) with one or two text columns and a label column."""

    format: Literal["csv", "tsv", "json", "jsonl", "parquet", "hf"]
    train: FileList = Field(description="a file, glob or list; with format hf: a hub dataset name")
    validation: FileList | None = Field(None, description="optional: without it a stratified, seeded dev is "
                                                          "carved from train")
    test: FileList | None = None
    hf_config: str | None = Field(None, description="format hf only: the hub dataset's configuration")
    column_names: list[str] | None = Field(None, min_length=1, description="csv / tsv without a header row (AG "
                                           "News' files): the columns' names in order; the first row is data")
    text_fields: list[str] = Field(min_length=1, max_length=2, description="one or two columns (text_a, text_b)")
    label_field: str | None = Field(None, description="the label column (required for a task; a pretraining "
                                                       "source without it takes each file's category)")
    labels: list[Label] | None = Field(None, description="default: the sorted label values found in train")
    label_words: list[str] | None = Field(None, description="verbalizer head: one word per label; default the "
                                                            "label strings")
    template: str | None = Field(None, description='verbalizer head, e.g. "{headline} {body} It is about {mask}."')
    stands_for: TaskName | None = Field(None, description="the built-in task these files are drawn from (e.g. AG "
                                        "News' test split read as own data): `report --paper` then puts the "
                                        "paper's numbers for that task beside ours")

    @field_validator("train", "validation", "test")
    @classmethod
    def _not_empty(cls, v: FileList | None) -> FileList | None:
        paths = [v] if isinstance(v, str) else v
        if v is not None and (not paths or any(not p.strip() for p in paths)):
            raise ValueError("give a file, a glob or a non-empty list of them")
        return v

    @field_validator("labels", "label_words", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, v: Any) -> Any:
        if isinstance(v, list) and any(isinstance(x, bool) for x in v):
            raise ValueError(f"{v} holds booleans: YAML reads yes/no, true/false and on/off so; quote them "
                             "(e.g. ['yes', 'no'])")
        return v

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, v: list[Label] | None) -> list[Label] | None:
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError(f"a classification task needs at least 2 labels, got {v}")
        if len({str(x) for x in v}) != len(v):
            raise ValueError(f"labels must be distinct, got {v}")
        if len({type(x) for x in v}) > 1:
            raise ValueError(f"labels must all be strings or all integers, got {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        self._check_fields()
        self._check_hub()
        if self.labels is not None and self.label_words is not None and len(self.label_words) != len(self.labels):
            raise ValueError(f"label_words has {len(self.label_words)} words for {len(self.labels)} "
                             f"labels ({', '.join(map(str, self.labels))}): give one word per label")
        if self.label_words is not None and len(set(self.label_words)) != len(self.label_words):
            raise ValueError(f"label_words must be distinct, got {self.label_words}")
        if self.template is not None:
            self._check_template(self.template)
        return self

    def _check_fields(self) -> None:
        if self.column_names is not None:
            if self.format not in ("csv", "tsv"):
                raise ValueError(f"column_names is for headerless csv / tsv files (format is {self.format!r})")
            if len(set(self.column_names)) != len(self.column_names):
                raise ValueError(f"column_names names a column twice: {self.column_names}")
            missing = [f for f in (*self.text_fields, self.label_field) if f is not None and f not in self.column_names]
            if missing:
                raise ValueError(f"{', '.join(map(repr, missing))} not in column_names ({', '.join(self.column_names)})")
        if len(set(self.text_fields)) != len(self.text_fields):
            raise ValueError(f"text_fields names a column twice: {self.text_fields}")
        if self.label_field in self.text_fields:
            raise ValueError(f"label_field {self.label_field!r} is also one of text_fields")
        if "mask" in self.text_fields:
            raise ValueError("text_fields: a column named 'mask' clashes with the template's {mask}")
        odd = [f for f in self.text_fields if set(f) & set(".[]{}:!")]
        if odd:
            raise ValueError(f"text_fields {odd}: a template placeholder cannot name a column with '.', '[', ']', "
                             "'{', '}', ':' or '!'; rename the column")

    def _check_hub(self) -> None:
        if self.format == "hf":
            for name in ("train", "validation", "test"):
                if isinstance(getattr(self, name), list):
                    raise ValueError(f"{name}: with format 'hf' give NAME[:SPLIT] (train) or a split name, not "
                                     "a list")
        elif self.hf_config is not None:
            raise ValueError(f"hf_config is for format 'hf' only (format is {self.format!r})")

    def _check_template(self, template: str) -> None:
        names = template_fields(template)
        if "mask" not in names:
            raise ValueError(f"template {template!r} has no {{mask}}: the verbalizer reads the label word there")
        if names.count("mask") > 1:
            raise ValueError(f"template {template!r} has {{mask}} {names.count('mask')} times; give one")
        unknown = [n for n in names if n != "mask" and n not in self.text_fields]
        if unknown:
            raise ValueError(f"template {template!r} names {', '.join(map(repr, unknown))}, not one of text_fields "
                             f"({', '.join(self.text_fields)})")
        unused = [f for f in self.text_fields if f not in names]
        if unused:
            raise ValueError(f"template {template!r} does not use text field(s) {', '.join(map(repr, unused))}")

    @property
    def hub(self) -> bool:
        return self.format == "hf"
