"""Task specifications: what the pipeline needs to know about each benchmark task, and the registry.

Every task loads into a :class:`datasets.DatasetDict` with the same schema whatever the source: the
text columns of :attr:`TaskSpec.text_fields`, ``label`` (a ``ClassLabel`` over
:attr:`TaskSpec.label_names`), ``idx`` (int) and, for MultiRC, ``group``.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import datasets

__all__ = ["Source", "PathLike", "SPLITS", "METRIC_NAMES", "TaskSpec", "TASKS", "get_task", "as_spec"]

Source = Literal["auto", "local", "hub", "vendored"]
PathLike = str | os.PathLike[str]

#: Splits :func:`ipt_ray.data.load_task` returns by default.
SPLITS: tuple[str, ...] = ("train", "validation")

#: Metrics :func:`ipt_ray.data.compute_metrics` knows how to compute.
METRIC_NAMES = frozenset({"accuracy", "f1a", "em"})


@dataclass(frozen=True)
class TaskSpec:
    """Everything the pipeline needs to know about one classification task.

    ``template`` holds ``{field}`` placeholders for each of ``text_fields`` and
    one ``{mask}``; ``label_words[i]`` is what the MLM should predict at the
    mask for class ``label_names[i]``.
    """

    name: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    label_words: tuple[str, ...]
    metrics: tuple[str, ...]
    hub_path: tuple[str, str | None]
    template: str
    #: Hub split that plays ``validation`` (IMDB / AG News only publish ``test``).
    hub_validation_split: str = "validation"
    #: Extra int columns besides ``label``/``idx`` (MultiRC's question ``group``).
    int_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.label_words) != len(self.label_names):
            raise ValueError(
                f"task {self.name!r}: {len(self.label_words)} label words for "
                f"{len(self.label_names)} labels"
            )
        placeholders = {
            f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None
        }
        expected = set(self.text_fields) | {"mask"}
        if placeholders != expected:
            raise ValueError(
                f"task {self.name!r}: template placeholders {sorted(placeholders)} "
                f"!= text fields + mask {sorted(expected)}"
            )
        unknown = set(self.metrics) - METRIC_NAMES
        if unknown:
            raise ValueError(f"task {self.name!r}: unknown metrics {sorted(unknown)}")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def columns(self) -> tuple[str, ...]:
        """Column order of every loaded split."""
        return (*self.text_fields, *self.int_fields, "label", "idx")

    def features(self) -> datasets.Features:
        """The schema all sources are cast to, so splits from any source concatenate."""
        feats: dict[str, Any] = {f: datasets.Value("string") for f in self.text_fields}
        feats.update({f: datasets.Value("int64") for f in self.int_fields})
        feats["label"] = datasets.ClassLabel(names=list(self.label_names))
        feats["idx"] = datasets.Value("int64")
        return datasets.Features(feats)

    def render(self, example: Mapping[str, Any], mask_token: str) -> str:
        """Fill the template; whitespace is collapsed so empty fields leave no gaps."""
        values = {f: str(example[f]).strip() for f in self.text_fields}
        return " ".join(self.template.format(mask=mask_token, **values).split())


_NLI_TEMPLATE = "{premise} Question: {hypothesis}? Answer: {mask}."

TASKS: dict[str, TaskSpec] = {
    "boolq": TaskSpec(
        name="boolq",
        text_fields=("passage", "question"),
        label_names=("False", "True"),
        label_words=("no", "yes"),
        metrics=("accuracy",),
        hub_path=("super_glue", "boolq"),
        template="{passage} Question: {question}? Answer: {mask}.",
    ),
    "cb": TaskSpec(
        name="cb",
        text_fields=("premise", "hypothesis"),
        label_names=("entailment", "contradiction", "neutral"),
        label_words=("yes", "no", "maybe"),
        metrics=("accuracy",),
        hub_path=("super_glue", "cb"),
        template=_NLI_TEMPLATE,
    ),
    "rte": TaskSpec(
        name="rte",
        text_fields=("premise", "hypothesis"),
        label_names=("entailment", "not_entailment"),
        label_words=("yes", "no"),
        metrics=("accuracy",),
        hub_path=("super_glue", "rte"),
        template=_NLI_TEMPLATE,
    ),
    "multirc": TaskSpec(
        name="multirc",
        text_fields=("paragraph", "question", "answer"),
        label_names=("False", "True"),
        label_words=("no", "yes"),
        metrics=("f1a", "em", "accuracy"),
        hub_path=("super_glue", "multirc"),
        template="{paragraph} Question: {question} Is it {answer}? {mask}.",
        int_fields=("group",),
    ),
    "sst2": TaskSpec(
        name="sst2",
        text_fields=("sentence",),
        label_names=("negative", "positive"),
        label_words=("terrible", "great"),
        metrics=("accuracy",),
        hub_path=("glue", "sst2"),
        template="{sentence} It was {mask}.",
    ),
    "imdb": TaskSpec(
        name="imdb",
        text_fields=("text",),
        label_names=("neg", "pos"),
        label_words=("terrible", "great"),
        metrics=("accuracy",),
        hub_path=("imdb", None),
        template="{text} It was {mask}.",
        hub_validation_split="test",
    ),
    "ag_news": TaskSpec(
        name="ag_news",
        text_fields=("title", "description"),
        label_names=("World", "Sports", "Business", "Sci/Tech"),
        label_words=("world", "sports", "business", "technology"),
        metrics=("accuracy",),
        hub_path=("ag_news", None),
        template="{mask} News: {title} {description}",
        hub_validation_split="test",
    ),
}

_ALIASES = {"sst-2": "sst2", "ag-news": "ag_news", "agnews": "ag_news"}


def get_task(name: str) -> TaskSpec:
    """Look a task up by (case-insensitive) name."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    return TASKS[key]


def as_spec(name_or_spec: str | TaskSpec) -> TaskSpec:
    """A spec as given, or the registered one of that name."""
    return name_or_spec if isinstance(name_or_spec, TaskSpec) else get_task(name_or_spec)
