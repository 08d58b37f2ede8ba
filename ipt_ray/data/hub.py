"""Hugging Face hub loading: convert the hub's schema of each task to ours (columns, labels, idx/group)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import datasets

from ipt_ray.data.errors import DataError
from ipt_ray.data.formats import Columns, clean_imdb, to_dataset
from ipt_ray.data.readers import show_value
from ipt_ray.data.specs import TaskSpec

__all__ = ["load_hub"]


def _hub_label_map(spec: TaskSpec, feature: Any, where: str) -> Callable[[Any], int | None]:
    """Map hub label values to our indices, by class name when the hub has names."""
    names = getattr(feature, "names", None)
    if names:
        ours = {n.lower(): i for i, n in enumerate(spec.label_names)}
        table: dict[int, int] = {}
        for hub_i, n in enumerate(names):
            if str(n).lower() not in ours:
                raise ValueError(
                    f"{where}: hub label name {n!r} is not one of {', '.join(spec.label_names)}"
                )
            table[hub_i] = ours[str(n).lower()]
        return lambda v: table.get(int(v)) if v is not None else None
    return lambda v: int(v) if v is not None and 0 <= int(v) < spec.num_labels else None


class _HubColumns:
    """Read access to one hub split's columns, naming the split when one is missing."""

    def __init__(self, hub: datasets.Dataset, where: str) -> None:
        self.hub = hub
        self.where = where
        self.names = set(hub.column_names)

    def __call__(self, name: str) -> list[Any]:
        if name not in self.names:
            raise ValueError(
                f"{self.where}: hub data has no column {name!r} "
                f"(has: {', '.join(self.hub.column_names)})"
            )
        return list(self.hub[name])


def _text_columns(spec: TaskSpec, column: _HubColumns, n: int) -> Columns:
    cols: Columns = {}
    if spec.name == "ag_news" and not {"title", "description"} <= column.names:
        # The hub joins title and description into ``text``; it cannot be split back.
        cols["title"] = [""] * n
        cols["description"] = column("text")
    else:
        for f in spec.text_fields:
            cols[f] = column(f)
    if spec.name == "imdb":
        cols["text"] = [clean_imdb(t) for t in cols["text"]]
    return cols


def _labels(spec: TaskSpec, column: _HubColumns) -> list[int]:
    """Our label indices; an unlabelled row (hub test splits use -1) is an error."""
    to_ours = _hub_label_map(spec, column.hub.features.get("label"), column.where)
    labels = []
    for i, v in enumerate(column("label")):
        mapped = to_ours(v)
        if mapped is None:
            raise DataError(
                column.where,
                f"unknown label {show_value(v)} (unlabelled split?)",
                line=i + 1,
                field="label",
            )
        labels.append(mapped)
    return labels


def _id_columns(spec: TaskSpec, column: _HubColumns, n: int) -> Columns:
    """``idx`` (and MultiRC's ``group``: one per (paragraph, question), numbered in order of first sight)."""
    if spec.name == "multirc":
        raw_idx = column("idx")
        groups: dict[tuple[int, int], int] = {}
        return {
            "group": [
                groups.setdefault((int(d["paragraph"]), int(d["question"])), len(groups))
                for d in raw_idx
            ],
            "idx": [int(d["answer"]) for d in raw_idx],
        }
    if "idx" in column.names:
        return {"idx": [int(v) for v in column("idx")]}
    return {"idx": list(range(n))}


def _from_hub(spec: TaskSpec, hub: datasets.Dataset, where: str) -> datasets.Dataset:
    """Convert one hub split to our schema (columns, label indices, idx/group)."""
    column = _HubColumns(hub, where)
    n = len(hub)
    cols = _text_columns(spec, column, n)
    cols["label"] = _labels(spec, column)
    cols.update(_id_columns(spec, column, n))
    return to_dataset(spec, cols)


def load_hub(spec: TaskSpec, splits: Sequence[str]) -> datasets.DatasetDict:
    """The task's ``splits`` from the hub; ``validation`` is :attr:`TaskSpec.hub_validation_split`."""
    raw = datasets.load_dataset(*spec.hub_path)
    label = "/".join(p for p in spec.hub_path if p)
    out = {}
    for split in splits:
        hub_split = spec.hub_validation_split if split == "validation" else split
        if hub_split not in raw:
            raise ValueError(
                f"{label}: hub data has no split {hub_split!r} (has: {', '.join(raw)})"
            )
        out[split] = _from_hub(spec, raw[hub_split], f"hub {label}[{hub_split}]")
    return datasets.DatasetDict(out)
