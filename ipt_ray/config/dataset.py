"""The ``task.dataset`` section: the user's own classification data, described instead of named.

Only what the YAML alone can tell is checked here (formats, field names, the template's placeholders,
label and label-word counts when both are given); what needs the files (columns present, label values)
is checked by :func:`ipt_ray.data.custom_task`, and one-token label words by preflight (the tokenizer).
"""

from __future__ import annotations

import string
from typing import Literal, Union

from pydantic import Field, field_validator, model_validator

from ipt_ray.config.base import StrictSection

__all__ = ["DATASET_FORMATS", "DatasetConfig", "FileList", "template_fields"]

DATASET_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "hf")
#: A file, a glob or a list of those; with format hf: a split name of the hub dataset.
FileList = Union[str, list[str]]
Label = Union[str, int]


def template_fields(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template, in order; a malformed one raises ValueError."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"task.dataset.template {template!r} is not a format string ({err})") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion:
            raise ValueError(f"task.dataset.template {template!r}: each placeholder names a column, e.g. "
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
    text_fields: list[str] = Field(min_length=1, max_length=2, description="one or two columns (text_a, text_b)")
    label_field: str
    labels: list[Label] | None = Field(None, description="default: the sorted label values found in train")
    label_words: list[str] | None = Field(None, description="verbalizer head: one word per label; default the "
                                                            "label strings")
    template: str | None = Field(None, description='verbalizer head, e.g. "{headline} {body} It is about {mask}."')

    @field_validator("train", "validation", "test")
    @classmethod
    def _not_empty(cls, v: FileList | None) -> FileList | None:
        paths = [v] if isinstance(v, str) else v
        if v is not None and (not paths or any(not p.strip() for p in paths)):
            raise ValueError("give a file, a glob or a non-empty list of them")
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
            raise ValueError(f"task.dataset.label_words has {len(self.label_words)} words for {len(self.labels)} "
                             f"labels ({', '.join(map(str, self.labels))}): give one word per label")
        if self.label_words is not None and len(set(self.label_words)) != len(self.label_words):
            raise ValueError(f"task.dataset.label_words must be distinct, got {self.label_words}")
        if self.template is not None:
            self._check_template(self.template)
        return self

    def _check_fields(self) -> None:
        if len(set(self.text_fields)) != len(self.text_fields):
            raise ValueError(f"task.dataset.text_fields names a column twice: {self.text_fields}")
        if self.label_field in self.text_fields:
            raise ValueError(f"task.dataset.label_field {self.label_field!r} is also one of text_fields")
        if "mask" in self.text_fields:
            raise ValueError("task.dataset.text_fields: a column named 'mask' clashes with the template's {mask}")

    def _check_hub(self) -> None:
        if self.format == "hf":
            for name in ("train", "validation", "test"):
                if isinstance(getattr(self, name), list):
                    raise ValueError(f"task.dataset.{name}: with format 'hf' give the hub split name, not a list")
        elif self.hf_config is not None:
            raise ValueError(f"task.dataset.hf_config is for format 'hf' only (format is {self.format!r})")

    def _check_template(self, template: str) -> None:
        names = template_fields(template)
        if "mask" not in names:
            raise ValueError(f"task.dataset.template {template!r} has no {{mask}}: the verbalizer reads the "
                             "label word there")
        if names.count("mask") > 1:
            raise ValueError(f"task.dataset.template {template!r} has {{mask}} {names.count('mask')} times; "
                             "give one")
        unknown = [n for n in names if n != "mask" and n not in self.text_fields]
        if unknown:
            raise ValueError(f"task.dataset.template {template!r} names {', '.join(map(repr, unknown))}, not one "
                             f"of text_fields ({', '.join(self.text_fields)})")
        unused = [f for f in self.text_fields if f not in names]
        if unused:
            raise ValueError(f"task.dataset.template {template!r} does not use text field(s) "
                             f"{', '.join(map(repr, unused))}")

    @property
    def hub(self) -> bool:
        return self.format == "hf"
