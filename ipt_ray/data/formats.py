"""Readers of each task family's original distributed format, to a dict of columns.

SuperGLUE BoolQ / CB / RTE (JSONL pairs), MultiRC (nested JSONL, flattened to one row per answer
option), GLUE SST-2 (TSV), AG News (Zhang et al. CSV) and IMDB (``aclImdb`` archive or folder).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import datasets

from ipt_ray.data.errors import DataError
from ipt_ray.data.readers import display_name, iter_archive, iter_jsonl, iter_table, map_label, typed_field
from ipt_ray.data.specs import TaskSpec

__all__ = ["Columns", "read_split", "to_dataset", "clean_imdb"]

#: Column name -> values, in :attr:`TaskSpec.columns` order once complete.
Columns = dict[str, list[Any]]


def _new_columns(spec: TaskSpec) -> Columns:
    return {c: [] for c in spec.columns}


def to_dataset(spec: TaskSpec, cols: Columns) -> datasets.Dataset:
    """Columns in the task's common schema (:meth:`TaskSpec.features`)."""
    return datasets.Dataset.from_dict(
        {c: cols[c] for c in spec.columns}, features=spec.features()
    )


# --------------------------------------------------------------------------- #
# SuperGLUE
# --------------------------------------------------------------------------- #

_BOOLQ_RAW = (False, True)


def _read_superglue_pair(spec: TaskSpec, path: Path) -> Columns:
    """BoolQ / CB / RTE: one JSON object per line with text fields, label and idx."""
    display = display_name(path)
    raw = _BOOLQ_RAW if spec.name == "boolq" else spec.label_names
    mapping = {r: i for i, r in enumerate(raw)}
    cols = _new_columns(spec)
    for n, (lineno, obj) in enumerate(iter_jsonl(path)):
        for f in spec.text_fields:
            cols[f].append(typed_field(obj, f, str, display, lineno))
        label = typed_field(obj, "label", object, display, lineno)
        cols["label"].append(map_label(label, mapping, display, lineno))
        cols["idx"].append(typed_field(obj, "idx", int, display, lineno) if "idx" in obj else n)
    return cols


_MULTIRC_LABELS = {0: 0, 1: 1}


def _element(value: Any, name: str, display: str, lineno: int) -> dict[str, Any]:
    """A list element that must be an object (``name`` is its field path)."""
    if not isinstance(value, dict):
        raise DataError(display, f"field '{name}' must be dict", line=lineno, field=name)
    return value


def _add_multirc_question(
    cols: Columns, paragraph: str, q: dict[str, Any], qp: str, group: int, display: str, lineno: int
) -> None:
    """One row per answer option of question ``q`` (field path prefix ``qp``), all in ``group``."""
    question = typed_field(q, "question", str, display, lineno, qp)
    answers = typed_field(q, "answers", list, display, lineno, qp)
    if not answers:
        raise DataError(
            display, f"field '{qp}answers' is empty", line=lineno, field=f"{qp}answers"
        )
    for ai, raw in enumerate(answers):
        ap = f"{qp}answers[{ai}]."
        a = _element(raw, ap[:-1], display, lineno)
        cols["paragraph"].append(paragraph)
        cols["question"].append(question)
        cols["answer"].append(typed_field(a, "text", str, display, lineno, ap))
        label = typed_field(a, "label", object, display, lineno, ap)
        cols["label"].append(map_label(label, _MULTIRC_LABELS, display, lineno, f"{ap}label"))
        cols["idx"].append(
            typed_field(a, "idx", int, display, lineno, ap) if "idx" in a else len(cols["idx"])
        )
        cols["group"].append(group)


def _read_multirc(spec: TaskSpec, path: Path) -> Columns:
    """Flatten paragraph -> questions -> answers into one row per answer option."""
    display = display_name(path)
    cols = _new_columns(spec)
    group = 0
    for lineno, obj in iter_jsonl(path):
        passage = typed_field(obj, "passage", dict, display, lineno)
        text = typed_field(passage, "text", str, display, lineno, "passage.")
        questions = typed_field(passage, "questions", list, display, lineno, "passage.")
        for qi, raw in enumerate(questions):
            qp = f"passage.questions[{qi}]."
            q = _element(raw, qp[:-1], display, lineno)
            _add_multirc_question(cols, text, q, qp, group, display, lineno)
            group += 1
    return cols


# --------------------------------------------------------------------------- #
# GLUE SST-2 and AG News tables
# --------------------------------------------------------------------------- #

_SST2_ALIASES = {"sentence": "sentence", "label": "label", "index": "idx", "idx": "idx"}
_AG_ALIASES = {
    "class index": "label",
    "class_index": "label",
    "class": "label",
    "label": "label",
    "title": "title",
    "description": "description",
}


def _read_sst2(spec: TaskSpec, path: Path) -> Columns:
    """GLUE TSV (unquoted, tab-separated); ``idx`` is the row number, as on the hub."""
    display = display_name(path)
    mapping = {"0": 0, "1": 1}
    cols = _new_columns(spec)
    rows = iter_table(
        path, ("sentence", "label"), _SST2_ALIASES, delimiter="\t", quoting=csv.QUOTE_NONE
    )
    for n, (lineno, row) in enumerate(rows):
        cols["sentence"].append(row["sentence"])
        cols["label"].append(map_label(row["label"].strip(), mapping, display, lineno))
        cols["idx"].append(n)
    return cols


def _read_ag_news(spec: TaskSpec, path: Path) -> Columns:
    """Zhang et al. CSV: quoted ``class,title,description`` with classes 1..4."""
    display = display_name(path)
    mapping = {str(i + 1): i for i in range(spec.num_labels)}
    cols = _new_columns(spec)
    rows = iter_table(
        path,
        ("label", "title", "description"),
        _AG_ALIASES,
        delimiter=",",
        quoting=csv.QUOTE_MINIMAL,
    )
    for n, (lineno, row) in enumerate(rows):
        cols["label"].append(map_label(row["label"].strip(), mapping, display, lineno))
        cols["title"].append(row["title"])
        cols["description"].append(row["description"])
        cols["idx"].append(n)
    return cols


# --------------------------------------------------------------------------- #
# IMDB
# --------------------------------------------------------------------------- #


def clean_imdb(text: str) -> str:
    """Review text without the ``<br />`` line breaks the corpus is full of."""
    return text.replace("<br />", " ")


_IMDB_RE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def _imdb_review(spec: TaskSpec, name: str, m: re.Match[str], data: bytes, display: str) -> tuple[int, int, str]:
    """``(label, review id, cleaned text)`` of one member, checking its rating fits its folder."""
    label = spec.label_names.index(m.group(2))
    rating = int(m.group(4))
    if (label == 1 and rating < 7) or (label == 0 and rating > 4):
        raise DataError(
            display,
            f"rating {rating} in the file name does not fit folder '{m.group(2)}'",
            member=name,
            field="rating",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            display, f"not valid UTF-8 ({e.reason})", member=name, field="text"
        ) from e
    if not text.strip():
        raise DataError(display, "field 'text' is empty", member=name, field="text")
    return label, int(m.group(3)), clean_imdb(text)


def _read_imdb(spec: TaskSpec, source: Path, split: str) -> Columns:
    """aclImdb reviews, ordered neg then pos by review id; ``idx`` is the row number."""
    display = display_name(source)
    want = "train" if split == "train" else "test"
    rows = [
        _imdb_review(spec, name, m, data, display)
        for name, m, data in iter_archive(source, _IMDB_RE)
        if m.group(1) == want
    ]
    if not rows:
        raise DataError(display, f"no reviews found under {want}/pos or {want}/neg")
    rows.sort(key=lambda r: (r[0], r[1]))
    return {
        "text": [r[2] for r in rows],
        "label": [r[0] for r in rows],
        "idx": list(range(len(rows))),
    }


def read_split(spec: TaskSpec, path: Path, split: str) -> Columns:
    """Columns of one split file (or IMDB archive/folder) in the task's original format."""
    if spec.name in ("boolq", "cb", "rte"):
        return _read_superglue_pair(spec, path)
    if spec.name == "multirc":
        return _read_multirc(spec, path)
    if spec.name == "sst2":
        return _read_sst2(spec, path)
    if spec.name == "ag_news":
        return _read_ag_news(spec, path)
    if spec.name == "imdb":
        return _read_imdb(spec, path, split)
    raise ValueError(f"no local reader for task {spec.name!r}")  # pragma: no cover
