"""Benchmark tasks: registry, loaders, few-shot protocol helpers and metrics.

Every task loads into a :class:`datasets.DatasetDict` with the same schema
whatever the source (local files in the original distributed format, the
Hugging Face hub, or the copies vendored in ``ipt_ray/data``), so the rest of
the pipeline never has to know where the data came from: the text columns of
:attr:`TaskSpec.text_fields`, ``label`` (a ``ClassLabel`` over
:attr:`TaskSpec.label_names`), ``idx`` (int) and, for MultiRC, ``group``.

Files are parsed with the standard library rather than ``datasets`` builders
because the formats need validating: any bad record raises :class:`DataError`
naming the file, the 1-based line and the field.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import string
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np

__all__ = [
    "DataError",
    "TaskSpec",
    "TASKS",
    "SPLITS",
    "NEWSGROUPS_LABELS",
    "KNOWLEDGE_CAT_LABELS",
    "get_task",
    "vendored_dir",
    "load_task",
    "load_split",
    "load_20newsgroups",
    "load_knowledge_cat",
    "few_shot_split",
    "cv_folds",
    "subsample",
    "compute_metrics",
]

Source = Literal["auto", "local", "hub", "vendored"]
PathLike = str | os.PathLike[str]

#: Splits :func:`load_task` returns by default.
SPLITS: tuple[str, ...] = ("train", "validation")

_PACKAGE_DATA = Path(__file__).resolve().parent  # vendored task files sit beside this package's modules

# The ``csv`` module's default 128 KiB field limit is below some real documents.
csv.field_size_limit(1 << 27)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #


class DataError(ValueError):
    """A data file is malformed; the message says where (file, line, field).

    Subclasses ``ValueError`` so callers that only know "bad input" still work.
    """

    def __init__(
        self,
        file: str,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        member: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.member = member
        where = file
        if member is not None:
            where += f" member {member}"
        if line is not None:
            where += f" line {line}"
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- #
# Task specifications
# --------------------------------------------------------------------------- #


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
        unknown = set(self.metrics) - _METRICS
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


_METRICS = frozenset({"accuracy", "f1a", "em"})

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


def _as_spec(name_or_spec: str | TaskSpec) -> TaskSpec:
    return name_or_spec if isinstance(name_or_spec, TaskSpec) else get_task(name_or_spec)


# --------------------------------------------------------------------------- #
# Local layout: where each task's files live and what they may be called
# --------------------------------------------------------------------------- #

# Sub-directory of a benchmark root (e.g. ``shared/data``) holding each task.
_LOCAL_SUBDIR: dict[str, str] = {
    "boolq": "superglue/BoolQ",
    "cb": "superglue/CB",
    "rte": "superglue/RTE",
    "multirc": "superglue/MultiRC",
    "sst2": "glue/SST-2",
    "imdb": "imdb",
    "ag_news": "ag_news",
}


def _gz(*names: str) -> tuple[str, ...]:
    return tuple(n for name in names for n in (name, name + ".gz"))


# Candidate names per split, first found wins. BoolQ falls back to the FewGLUE
# 32-example train file because the full train split is often unavailable.
_SPLIT_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "boolq": {
        "train": _gz("train.jsonl", "fewglue_train32.jsonl"),
        "validation": _gz("val.jsonl"),
    },
    **{
        t: {"train": _gz("train.jsonl"), "validation": _gz("val.jsonl")}
        for t in ("cb", "rte", "multirc")
    },
    "sst2": {"train": _gz("train.tsv"), "validation": _gz("dev.tsv")},
    "imdb": {
        "train": ("aclImdb_train.tar.gz", "aclImdb/train", "aclImdb_v1.tar.gz"),
        "validation": ("aclImdb_test.tar.gz", "aclImdb/test", "aclImdb_v1.tar.gz"),
    },
    "ag_news": {"train": _gz("train.csv"), "validation": _gz("test.csv")},
}


def vendored_dir(name: str | TaskSpec) -> Path | None:
    """Directory of the copy of a task shipped with the package, if there is one."""
    spec = _as_spec(name)
    sub = _LOCAL_SUBDIR.get(spec.name)
    if sub is None:
        return None
    path = _PACKAGE_DATA / sub
    return path if path.is_dir() else None


def _task_dir(spec: TaskSpec, data_dir: Path) -> Path:
    """Accept either the task's own folder or a benchmark root above it."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{spec.name}: data directory {data_dir} does not exist")
    sub = _LOCAL_SUBDIR.get(spec.name)
    if sub is not None:
        for cand in (data_dir / sub, data_dir / Path(sub).name):
            if cand.is_dir():
                return cand
    return data_dir


def _find_split_file(spec: TaskSpec, task_dir: Path, split: str) -> Path:
    try:
        names = _SPLIT_FILES[spec.name][split]
    except KeyError:
        raise ValueError(
            f"{spec.name}: no local layout for split {split!r}"
            f" (known: {', '.join(_SPLIT_FILES.get(spec.name, {}))})"
        ) from None
    for n in names:
        if (task_dir / n).exists():
            return task_dir / n
    raise FileNotFoundError(
        f"{spec.name}: no {split} file in {task_dir} (looked for: {', '.join(names)})"
    )


def _display(path: Path) -> str:
    """Short, recognisable file name for messages, e.g. ``CB/train.jsonl``."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


# --------------------------------------------------------------------------- #
# Low-level readers
# --------------------------------------------------------------------------- #


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, line)``, turning decoding failures into DataError."""
    display = _display(path)
    lineno = 0
    try:
        if path.name.endswith(".gz"):
            fh = gzip.open(path, "rt", encoding="utf-8", newline="")
        else:
            fh = open(path, encoding="utf-8", newline="")  # noqa: SIM115
        with fh:
            for lineno, line in enumerate(fh, 1):  # noqa: B007
                yield lineno, line
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(
            display, f"truncated or corrupt gzip data ({e})", line=lineno + 1
        ) from e
    except UnicodeDecodeError as e:
        raise DataError(display, f"not valid UTF-8 ({e.reason})", line=lineno + 1) from e


def _empty(display: str) -> DataError:
    return DataError(display, "file is empty (no records)", line=1)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line; errors if there are none."""
    display = _display(path)
    seen = False
    for lineno, line in _iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                display,
                f"bad JSON ({e.msg} at column {e.colno}; truncated line?)",
                line=lineno,
            ) from e
        if not isinstance(obj, dict):
            raise DataError(
                display, f"expected a JSON object, got {type(obj).__name__}", line=lineno
            )
        seen = True
        yield lineno, obj
    if not seen:
        raise _empty(display)


def _field(
    obj: Mapping[str, Any],
    key: str,
    kind: type,
    display: str,
    lineno: int,
    path: str = "",
) -> Any:
    """Fetch ``obj[key]`` and check its type (bool is not accepted as int)."""
    name = f"{path}{key}"
    if key not in obj:
        raise DataError(display, f"field '{name}' missing", line=lineno, field=name)
    value = obj[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise DataError(
            display,
            f"field '{name}' must be {kind.__name__}, got {type(value).__name__}",
            line=lineno,
            field=name,
        )
    return value


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


def _map_label(
    value: Any,
    mapping: Mapping[Any, int],
    display: str,
    lineno: int,
    field: str = "label",
) -> int:
    """Map a raw label; types must match exactly so that JSON ``1`` is not ``true``."""
    for raw, idx in mapping.items():
        if type(raw) is type(value) and raw == value:
            return idx
    allowed = ", ".join(_show(k).strip("'") for k in mapping)
    raise DataError(
        display,
        f"unknown label {_show(value)} (allowed: {allowed})",
        line=lineno,
        field=field,
    )


def _iter_table(
    path: Path,
    columns: tuple[str, ...],
    aliases: Mapping[str, str],
    *,
    delimiter: str,
    quoting: int,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line number, row)`` of a CSV/TSV file with or without a header row.

    A first row is a header when every cell is a known column name (``aliases``
    maps lower-cased header names to canonical column names); otherwise rows
    are read positionally as ``columns``.
    """
    display = _display(path)
    lines = (line for _, line in _iter_lines(path))
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    index: dict[str, int] | None = None
    width = len(columns)
    first = True
    seen = False
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if first:
                first = False
                names = [c.strip().lower() for c in row]
                if all(n in aliases for n in names):
                    index = {aliases[n]: i for i, n in enumerate(names)}
                    for col in columns:
                        if col not in index:
                            raise DataError(
                                display,
                                f"header has no column '{col}'",
                                line=lineno,
                                field=col,
                            )
                    width = len(row)
                    continue
            if len(row) < width:
                missing = (
                    columns[len(row)]
                    if index is None
                    else next(c for c in columns if index[c] >= len(row))
                )
                raise DataError(
                    display,
                    f"field '{missing}' missing ({len(row)} of {width} columns)",
                    line=lineno,
                    field=missing,
                )
            if len(row) > width:
                raise DataError(
                    display, f"{len(row)} columns, expected {width}", line=lineno
                )
            seen = True
            if index is None:
                yield lineno, dict(zip(columns, row, strict=True))
            else:
                yield lineno, {c: row[i] for c, i in index.items()}
    except csv.Error as e:
        raise DataError(display, f"bad CSV ({e})", line=reader.line_num) from e
    if not seen:
        raise _empty(display)


# --------------------------------------------------------------------------- #
# Per-format readers -> dict of columns
# --------------------------------------------------------------------------- #

Columns = dict[str, list[Any]]


def _new_columns(spec: TaskSpec) -> Columns:
    return {c: [] for c in spec.columns}


_BOOLQ_RAW = (False, True)


def _read_superglue_pair(spec: TaskSpec, path: Path) -> Columns:
    """BoolQ / CB / RTE: one JSON object per line with text fields, label and idx."""
    display = _display(path)
    raw = _BOOLQ_RAW if spec.name == "boolq" else spec.label_names
    mapping = {r: i for i, r in enumerate(raw)}
    cols = _new_columns(spec)
    for n, (lineno, obj) in enumerate(_iter_jsonl(path)):
        for f in spec.text_fields:
            cols[f].append(_field(obj, f, str, display, lineno))
        cols["label"].append(_map_label(_field(obj, "label", object, display, lineno), mapping, display, lineno))
        cols["idx"].append(_field(obj, "idx", int, display, lineno) if "idx" in obj else n)
    return cols


def _read_multirc(spec: TaskSpec, path: Path) -> Columns:
    """Flatten paragraph -> questions -> answers into one row per answer option."""
    display = _display(path)
    mapping = {0: 0, 1: 1}
    cols = _new_columns(spec)
    group = 0
    for lineno, obj in _iter_jsonl(path):
        passage = _field(obj, "passage", dict, display, lineno)
        text = _field(passage, "text", str, display, lineno, "passage.")
        questions = _field(passage, "questions", list, display, lineno, "passage.")
        for qi, q in enumerate(questions):
            qp = f"passage.questions[{qi}]."
            if not isinstance(q, dict):
                raise DataError(
                    display, f"field '{qp[:-1]}' must be dict", line=lineno, field=qp[:-1]
                )
            question = _field(q, "question", str, display, lineno, qp)
            answers = _field(q, "answers", list, display, lineno, qp)
            if not answers:
                raise DataError(
                    display, f"field '{qp}answers' is empty", line=lineno, field=f"{qp}answers"
                )
            for ai, a in enumerate(answers):
                ap = f"{qp}answers[{ai}]."
                if not isinstance(a, dict):
                    raise DataError(
                        display, f"field '{ap[:-1]}' must be dict", line=lineno, field=ap[:-1]
                    )
                cols["paragraph"].append(text)
                cols["question"].append(question)
                cols["answer"].append(_field(a, "text", str, display, lineno, ap))
                label = _field(a, "label", object, display, lineno, ap)
                cols["label"].append(_map_label(label, mapping, display, lineno, f"{ap}label"))
                cols["idx"].append(
                    _field(a, "idx", int, display, lineno, ap) if "idx" in a else len(cols["idx"])
                )
                cols["group"].append(group)
            group += 1
    return cols


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
    display = _display(path)
    mapping = {"0": 0, "1": 1}
    cols = _new_columns(spec)
    rows = _iter_table(
        path, ("sentence", "label"), _SST2_ALIASES, delimiter="\t", quoting=csv.QUOTE_NONE
    )
    for n, (lineno, row) in enumerate(rows):
        cols["sentence"].append(row["sentence"])
        cols["label"].append(_map_label(row["label"].strip(), mapping, display, lineno))
        cols["idx"].append(n)
    return cols


def _read_ag_news(spec: TaskSpec, path: Path) -> Columns:
    """Zhang et al. CSV: quoted ``class,title,description`` with classes 1..4."""
    display = _display(path)
    mapping = {str(i + 1): i for i in range(spec.num_labels)}
    cols = _new_columns(spec)
    rows = _iter_table(
        path,
        ("label", "title", "description"),
        _AG_ALIASES,
        delimiter=",",
        quoting=csv.QUOTE_MINIMAL,
    )
    for n, (lineno, row) in enumerate(rows):
        cols["label"].append(_map_label(row["label"].strip(), mapping, display, lineno))
        cols["title"].append(row["title"])
        cols["description"].append(row["description"])
        cols["idx"].append(n)
    return cols


def _clean_imdb(text: str) -> str:
    return text.replace("<br />", " ")


def _iter_archive(
    source: Path, pattern: re.Pattern[str]
) -> Iterator[tuple[str, re.Match[str], bytes]]:
    """Yield ``(member name, match, bytes)`` for files of a tar archive or folder.

    ``source`` may be a ``.tar(.gz)`` or a directory; in a directory the names
    matched are paths relative to its parent, so ``aclImdb/test`` yields
    ``test/pos/...``.
    """
    display = _display(source)
    if source.is_dir():
        base = source.parent
        for p in sorted(source.rglob("*")):
            if p.is_file():
                name = p.relative_to(base).as_posix()
                m = pattern.search(name)
                if m:
                    yield name, m, p.read_bytes()
        return
    name = "?"
    try:
        with tarfile.open(source, "r|*") as tf:
            for member in tf:
                name = member.name
                if not member.isfile():
                    continue
                m = pattern.search(name)
                if not m:
                    continue
                fh = tf.extractfile(member)
                if fh is None:  # pragma: no cover - isfile() members always have data
                    continue
                yield name, m, fh.read()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(
            display, f"truncated or corrupt archive after member {name} ({e})"
        ) from e


_IMDB_RE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def _read_imdb(spec: TaskSpec, source: Path, split: str) -> Columns:
    """aclImdb reviews, ordered neg then pos by review id; ``idx`` is the row number."""
    display = _display(source)
    want = "train" if split == "train" else "test"
    rows: list[tuple[int, int, str]] = []
    for name, m, data in _iter_archive(source, _IMDB_RE):
        if m.group(1) != want:
            continue
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
        rows.append((label, int(m.group(3)), _clean_imdb(text)))
    if not rows:
        raise DataError(display, f"no reviews found under {want}/pos or {want}/neg")
    rows.sort(key=lambda r: (r[0], r[1]))
    return {
        "text": [r[2] for r in rows],
        "label": [r[0] for r in rows],
        "idx": list(range(len(rows))),
    }


def _read_split(spec: TaskSpec, path: Path, split: str) -> Columns:
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


def _to_dataset(spec: TaskSpec, cols: Columns) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {c: cols[c] for c in spec.columns}, features=spec.features()
    )


# --------------------------------------------------------------------------- #
# Hub
# --------------------------------------------------------------------------- #


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


def _from_hub(spec: TaskSpec, hub: datasets.Dataset, where: str) -> datasets.Dataset:
    """Convert one hub split to our schema (columns, label indices, idx/group)."""
    names = set(hub.column_names)

    def column(name: str) -> list[Any]:
        if name not in names:
            raise ValueError(
                f"{where}: hub data has no column {name!r} (has: {', '.join(hub.column_names)})"
            )
        return list(hub[name])

    n = len(hub)
    cols: Columns = {}
    if spec.name == "ag_news" and not {"title", "description"} <= names:
        # The hub joins title and description into ``text``; it cannot be split back.
        cols["title"] = [""] * n
        cols["description"] = column("text")
    else:
        for f in spec.text_fields:
            cols[f] = column(f)
    if spec.name == "imdb":
        cols["text"] = [_clean_imdb(t) for t in cols["text"]]

    to_ours = _hub_label_map(spec, hub.features.get("label"), where)
    labels = []
    for i, v in enumerate(column("label")):
        mapped = to_ours(v)
        if mapped is None:
            raise DataError(
                where, f"unknown label {_show(v)} (unlabelled split?)", line=i + 1, field="label"
            )
        labels.append(mapped)
    cols["label"] = labels

    if spec.name == "multirc":
        raw_idx = column("idx")
        groups: dict[tuple[int, int], int] = {}
        cols["group"] = [
            groups.setdefault((int(d["paragraph"]), int(d["question"])), len(groups))
            for d in raw_idx
        ]
        cols["idx"] = [int(d["answer"]) for d in raw_idx]
    elif "idx" in names:
        cols["idx"] = [int(v) for v in column("idx")]
    else:
        cols["idx"] = list(range(n))
    return _to_dataset(spec, cols)


def _load_hub(spec: TaskSpec, splits: Sequence[str]) -> datasets.DatasetDict:
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


# --------------------------------------------------------------------------- #
# Public loaders
# --------------------------------------------------------------------------- #


def load_split(spec: str | TaskSpec, task_dir: PathLike, split: str) -> datasets.Dataset:
    """Read one split of a task from a local folder in its original format."""
    spec = _as_spec(spec)
    root = _task_dir(spec, Path(task_dir))
    path = _find_split_file(spec, root, split)
    return _to_dataset(spec, _read_split(spec, path, split))


def load_task(
    name_or_spec: str | TaskSpec,
    data_dir: PathLike | None = None,
    source: Source = "auto",
    *,
    splits: Sequence[str] = SPLITS,
) -> datasets.DatasetDict:
    """Load a task's ``train`` and ``validation`` splits in the common schema.

    ``source="auto"`` reads ``data_dir`` when given, else the vendored copy if
    the package ships one, else the hub. ``data_dir`` may be the task folder
    (``.../superglue/CB``) or a benchmark root above it (``.../data``).
    ``splits`` selects a subset, e.g. ``("validation",)`` when a train file is
    unavailable (AG News).
    """
    spec = _as_spec(name_or_spec)
    if source == "auto":
        if data_dir is not None:
            source = "local"
        elif vendored_dir(spec) is not None:
            source = "vendored"
        else:
            source = "hub"
    if source == "hub":
        return _load_hub(spec, splits)
    if source == "local":
        if data_dir is None:
            raise ValueError(f"{spec.name}: source='local' needs data_dir")
        root = Path(data_dir)
    elif source == "vendored":
        vdir = vendored_dir(spec)
        if vdir is None:
            shipped = [t for t in TASKS if vendored_dir(t) is not None]
            raise ValueError(
                f"{spec.name}: no vendored copy (vendored tasks: {', '.join(shipped)})"
            )
        root = vdir
    else:
        raise ValueError(f"unknown source {source!r}; allowed: auto, local, hub, vendored")
    return datasets.DatasetDict({s: load_split(spec, root, s) for s in splits})


# --------------------------------------------------------------------------- #
# Pretraining corpora (category labels for the prompt generator)
# --------------------------------------------------------------------------- #

#: The 20 Newsgroups groups in scikit-learn's (alphabetical) label order.
NEWSGROUPS_LABELS: tuple[str, ...] = (
    "alt.atheism",
    "comp.graphics",
    "comp.os.ms-windows.misc",
    "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware",
    "comp.windows.x",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.electronics",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.politics.misc",
    "talk.religion.misc",
)

#: The IPT knowledge_cat files give no category names, only indices 0..12.
KNOWLEDGE_CAT_LABELS: tuple[str, ...] = tuple(f"category_{i}" for i in range(13))

_CORPUS_FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "label": datasets.Value("int64"),
        "label_name": datasets.Value("string"),
    }
)


def _strip_news_headers(post: str) -> str:
    # Headers end at the first blank line; they name the newsgroup (label leak).
    _, sep, body = post.partition("\n\n")
    return body if sep else post


def load_20newsgroups(
    data_dir: PathLike, split: str, *, strip_headers: bool = True
) -> datasets.Dataset:
    """20 Newsgroups "bydate" posts with the group as label.

    Reads ``20news-bydate-{split}.tar.gz`` (or an extracted
    ``20news-bydate-{split}/`` folder) in ``data_dir`` or its ``20newsgroups``
    sub-folder. Posts are Latin-1. Headers are stripped by default because the
    ``Newsgroups:`` header gives the label away.
    """
    if split not in ("train", "test"):
        raise ValueError(f"20newsgroups split must be 'train' or 'test', got {split!r}")
    base = Path(data_dir)
    if (base / "20newsgroups").is_dir():
        base = base / "20newsgroups"
    names = (f"20news-bydate-{split}.tar.gz", f"20news-bydate-{split}")
    source = next((base / n for n in names if (base / n).exists()), None)
    if source is None:
        raise FileNotFoundError(
            f"20newsgroups: no {split} data in {base} (looked for: {', '.join(names)})"
        )
    display = _display(source)
    pattern = re.compile(rf"(?:^|/)20news-bydate-{split}/([^/]+)/(\d+)$")
    label_of = {g: i for i, g in enumerate(NEWSGROUPS_LABELS)}
    rows: list[tuple[int, int, str]] = []
    for name, m, data in _iter_archive(source, pattern):
        group = m.group(1)
        if group not in label_of:
            raise DataError(display, f"unknown newsgroup '{group}'", member=name, field="label")
        text = data.decode("latin-1")
        rows.append(
            (label_of[group], int(m.group(2)), _strip_news_headers(text) if strip_headers else text)
        )
    if not rows:
        raise DataError(display, f"no posts found under 20news-bydate-{split}/<group>/")
    rows.sort(key=lambda r: (r[0], r[1]))
    return datasets.Dataset.from_dict(
        {
            "text": [r[2] for r in rows],
            "label": [r[0] for r in rows],
            "label_name": [NEWSGROUPS_LABELS[r[0]] for r in rows],
        },
        features=_CORPUS_FEATURES,
    )


def load_knowledge_cat(path: PathLike) -> datasets.Dataset:
    """IPT's ``knowledge_cat`` jsonl (``text``, ``idx``, ``label`` 0..12)."""
    path = Path(path)
    display = _display(path)
    mapping = {i: i for i in range(len(KNOWLEDGE_CAT_LABELS))}
    texts: list[str] = []
    labels: list[int] = []
    for lineno, obj in _iter_jsonl(path):
        texts.append(_field(obj, "text", str, display, lineno))
        labels.append(_map_label(_field(obj, "label", object, display, lineno), mapping, display, lineno))
    return datasets.Dataset.from_dict(
        {
            "text": texts,
            "label": labels,
            "label_name": [KNOWLEDGE_CAT_LABELS[i] for i in labels],
        },
        features=_CORPUS_FEATURES,
    )


# --------------------------------------------------------------------------- #
# Protocol helpers
# --------------------------------------------------------------------------- #


def _labels(ds: datasets.Dataset) -> np.ndarray:
    if "label" not in ds.column_names:
        raise ValueError(f"dataset has no 'label' column (has: {', '.join(ds.column_names)})")
    return np.asarray(ds["label"], dtype=np.int64)


def _class_name(ds: datasets.Dataset, c: int) -> str:
    names = getattr(ds.features.get("label"), "names", None)
    return f"'{names[c]}' ({c})" if names and 0 <= c < len(names) else str(c)


def _classes(ds: datasets.Dataset, labels: np.ndarray) -> np.ndarray:
    """All classes the schema declares (so an absent class is noticed), else those present."""
    names = getattr(ds.features.get("label"), "names", None)
    return np.arange(len(names)) if names else np.unique(labels)


def few_shot_split(
    dd: datasets.DatasetDict, k: int, seed: int
) -> datasets.DatasetDict:
    """FewGLUE/LM-BFF protocol: K per class for train, a disjoint equal dev, test = validation.

    Both K-shot sets are drawn from the original train split so the original
    validation split stays untouched as the test set.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    train = dd["train"]
    test_key = "validation" if "validation" in dd else "test"
    if test_key not in dd:
        raise ValueError(f"need a 'validation' (or 'test') split, have: {', '.join(dd)}")
    labels = _labels(train)
    rng = np.random.default_rng(seed)
    tr: list[np.ndarray] = []
    dv: list[np.ndarray] = []
    for c in _classes(train, labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < 2 * k:
            raise ValueError(
                f"class {_class_name(train, int(c))} has {len(pool)} train examples; "
                f"k={k} needs {2 * k} ({k} train + {k} dev)"
            )
        pool = rng.permutation(pool)
        tr.append(pool[:k])
        dv.append(pool[k : 2 * k])
    train_idx = rng.permutation(np.concatenate(tr))
    dev_idx = rng.permutation(np.concatenate(dv))
    return datasets.DatasetDict(
        {
            "train": train.select(train_idx),
            "dev": train.select(dev_idx),
            "test": dd[test_key],
        }
    )


def cv_folds(
    train: datasets.Dataset, n_folds: int = 4, seed: int = 0
) -> list[tuple[datasets.Dataset, datasets.Dataset]]:
    """Stratified K-fold ``(train, dev)`` pairs; the dev parts partition ``train``.

    Shuffled examples of each class are dealt round-robin into folds, the deal
    continuing across classes so fold sizes differ by at most one.
    """
    n = len(train)
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be in [2, {n}] for {n} examples, got {n_folds}")
    labels = _labels(train)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold_of[members] = (np.arange(len(members)) + offset) % n_folds
        offset += len(members)
    return [
        (train.select(np.flatnonzero(fold_of != f)), train.select(np.flatnonzero(fold_of == f)))
        for f in range(n_folds)
    ]


def subsample(ds: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """Stratified random subset of ``n`` rows (original order kept); ``n >= len`` is a no-op.

    Class quotas are proportional, rounded by largest remainder so they sum to ``n``.
    """
    if n >= len(ds):
        return ds
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    labels = _labels(ds)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(ds)
    quota = np.floor(exact).astype(np.int64)
    # Stable sort on -remainder: ties go to the lower class id, deterministically.
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=int(q), replace=False)
        for c, q in zip(classes, quota, strict=True)
    ]
    return ds.select(np.sort(np.concatenate(picks)))


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #


def compute_metrics(
    spec: str | TaskSpec,
    predictions: Iterable[Any] | np.ndarray,
    labels: Iterable[Any] | np.ndarray,
    groups: Iterable[Any] | np.ndarray | None = None,
) -> dict[str, float]:
    """The task's metrics, in ``spec.metrics`` order.

    ``predictions`` are class indices, or scores of shape ``(n, num_labels)``
    (arg-maxed). ``f1a`` is the F1 of the positive ("True") class over all
    answer options; ``em`` the fraction of ``groups`` whose every option is right.
    """
    spec = _as_spec(spec)
    preds = np.asarray(predictions)
    if preds.ndim == 2:
        preds = preds.argmax(axis=-1)
    gold = np.asarray(labels)
    if preds.ndim != 1 or gold.ndim != 1 or len(preds) != len(gold):
        raise ValueError(f"predictions {preds.shape} and labels {gold.shape} do not match")
    if len(gold) == 0:
        raise ValueError("no examples to score")
    preds = preds.astype(np.int64)
    gold = gold.astype(np.int64)
    correct = preds == gold
    out: dict[str, float] = {}
    for metric in spec.metrics:
        if metric == "accuracy":
            out[metric] = float(correct.mean())
        elif metric == "f1a":
            pos = spec.label_names.index("True") if "True" in spec.label_names else 1
            tp = int(np.sum((preds == pos) & (gold == pos)))
            fp = int(np.sum((preds == pos) & (gold != pos)))
            fn = int(np.sum((preds != pos) & (gold == pos)))
            out[metric] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        elif metric == "em":
            if groups is None:
                raise ValueError(f"{spec.name}: metric 'em' needs groups")
            g = np.asarray(groups)
            if g.shape != gold.shape:
                raise ValueError(f"groups {g.shape} and labels {gold.shape} do not match")
            _, inverse = np.unique(g, return_inverse=True)
            wrong = np.bincount(inverse, weights=~correct)
            out[metric] = float(np.mean(wrong == 0))
    return out
