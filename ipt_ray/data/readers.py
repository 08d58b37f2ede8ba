"""Low-level readers of lines, JSONL, CSV/TSV tables and archives whose errors name file, line and field.

Files are parsed with the standard library rather than ``datasets`` builders because the formats need
validating: any bad record raises :class:`~ipt_ray.data.errors.DataError` naming the file, the 1-based
line (or archive member) and the field.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ipt_ray.data.errors import DataError
from ipt_ray.data.specs import PathLike

__all__ = [
    "display_name",
    "empty_file_error",
    "iter_lines",
    "iter_jsonl",
    "typed_field",
    "show_value",
    "map_label",
    "iter_table",
    "iter_archive",
]

# The ``csv`` module's default 128 KiB field limit is below some real documents.
csv.field_size_limit(1 << 27)


def display_name(path: Path) -> str:
    """Short, recognisable file name for messages, e.g. ``CB/train.jsonl``."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def empty_file_error(display: str) -> DataError:
    return DataError(display, "file is empty (no records)", line=1)


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, line)`` of a text or ``.gz`` file; bad bytes raise DataError."""
    display = display_name(path)
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


def iter_jsonl(path: PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a ``.jsonl(.gz)`` file.

    Raises :class:`DataError` (file and line) on bad JSON, a line that is not an object, or a file
    with no records at all.
    """
    path = Path(path)
    display = display_name(path)
    seen = False
    for lineno, line in iter_lines(path):
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
        raise empty_file_error(display)


def typed_field(
    obj: Mapping[str, Any],
    key: str,
    kind: type,
    display: str,
    lineno: int,
    path: str = "",
) -> Any:
    """Fetch ``obj[key]`` and check its type (bool is not accepted as int); ``path`` prefixes the name."""
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


def show_value(value: Any) -> str:
    """A raw value as messages quote it: strings in single quotes, the rest as JSON."""
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


def map_label(
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
    allowed = ", ".join(show_value(k).strip("'") for k in mapping)
    raise DataError(
        display,
        f"unknown label {show_value(value)} (allowed: {allowed})",
        line=lineno,
        field=field,
    )


# --------------------------------------------------------------------------- #
# CSV / TSV tables
# --------------------------------------------------------------------------- #


def _is_blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _header_index(
    row: list[str], columns: tuple[str, ...], aliases: Mapping[str, str], display: str, lineno: int
) -> dict[str, int] | None:
    """Column -> cell position when ``row`` is a header (every cell a known name), else None."""
    names = [c.strip().lower() for c in row]
    if not all(n in aliases for n in names):
        return None
    index = {aliases[n]: i for i, n in enumerate(names)}
    for col in columns:
        if col not in index:
            raise DataError(display, f"header has no column '{col}'", line=lineno, field=col)
    return index


def _check_width(
    row: list[str],
    width: int,
    columns: tuple[str, ...],
    index: dict[str, int] | None,
    display: str,
    lineno: int,
) -> None:
    """A short row names the first column it lacks; a long one says how many cells it has."""
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
        raise DataError(display, f"{len(row)} columns, expected {width}", line=lineno)


def iter_table(
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
    display = display_name(path)
    lines = (line for _, line in iter_lines(path))
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    index: dict[str, int] | None = None
    width = len(columns)
    first = True
    seen = False
    try:
        for row in reader:
            lineno = reader.line_num
            if _is_blank(row):
                continue
            if first:
                first = False
                index = _header_index(row, columns, aliases, display, lineno)
                if index is not None:
                    width = len(row)
                    continue
            _check_width(row, width, columns, index, display, lineno)
            seen = True
            if index is None:
                yield lineno, dict(zip(columns, row, strict=True))
            else:
                yield lineno, {c: row[i] for c, i in index.items()}
    except csv.Error as e:
        raise DataError(display, f"bad CSV ({e})", line=reader.line_num) from e
    if not seen:
        raise empty_file_error(display)


# --------------------------------------------------------------------------- #
# Archives (tar or extracted folder)
# --------------------------------------------------------------------------- #


def _iter_folder(
    source: Path, pattern: re.Pattern[str]
) -> Iterator[tuple[str, re.Match[str], bytes]]:
    base = source.parent
    for p in sorted(source.rglob("*")):
        if p.is_file():
            name = p.relative_to(base).as_posix()
            m = pattern.search(name)
            if m:
                yield name, m, p.read_bytes()


def _iter_tar(
    source: Path, pattern: re.Pattern[str]
) -> Iterator[tuple[str, re.Match[str], bytes]]:
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
            display_name(source), f"truncated or corrupt archive after member {name} ({e})"
        ) from e


def iter_archive(
    source: Path, pattern: re.Pattern[str]
) -> Iterator[tuple[str, re.Match[str], bytes]]:
    """Yield ``(member name, match, bytes)`` for files of a tar archive or folder.

    ``source`` may be a ``.tar(.gz)`` or a directory; in a directory the names
    matched are paths relative to its parent, so ``aclImdb/test`` yields
    ``test/pos/...``.
    """
    if source.is_dir():
        return _iter_folder(source, pattern)
    return _iter_tar(source, pattern)
