"""Reading the files of a ``task.dataset`` with ``datasets.load_dataset``, one file at a time so that every
problem names its file (and the line or row where ``datasets`` tells it).

Each split is a list of :class:`Part` (a file, or a hub split) in order; the checks of the values and the
conversion to the task schema are :mod:`ipt_ray.data.custom`'s.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from ipt_ray.config import DatasetConfig
from ipt_ray.data.errors import DataError
from ipt_ray.data.readers import display_name, empty_file_error, iter_jsonl

__all__ = ["Part", "read_parts", "hub_split"]

#: ``task.dataset.format`` -> ``datasets`` builder and its options.
_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "csv": ("csv", {}),
    "tsv": ("csv", {"delimiter": "\t"}),
    "json": ("json", {}),
    "jsonl": ("json", {}),
    "parquet": ("parquet", {}),
}
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Part:
    """One file (or hub split) of a split: ``where`` is how messages name it."""

    where: str
    rows: datasets.Dataset


def read_parts(cfg: DatasetConfig, split: str) -> list[Part]:
    """The parts of ``split`` (``train`` / ``validation`` / ``test``) in order; [] when not given."""
    given = getattr(cfg, split)
    if given is None:
        return []
    if cfg.format == "hf":
        return [_read_hub(cfg, split)]
    return [_read_file(cfg, path) for path in _files(given, split)]


def hub_split(cfg: DatasetConfig, split: str) -> tuple[str, str]:
    """``(hub dataset name, split name)`` of ``split`` with format hf.

    ``train`` is ``NAME`` (its split ``train``) or ``NAME:SPLIT``; ``validation`` / ``test`` are a split
    name of that dataset, or ``NAME:SPLIT`` of another one.
    """
    train_name, _, train_split = str(cfg.train).partition(":")
    if split == "train":
        return train_name, train_split or "train"
    name, sep, split_name = str(getattr(cfg, split)).rpartition(":")
    return (name if sep else train_name), split_name


def _read_hub(cfg: DatasetConfig, split: str) -> Part:
    name, split_name = hub_split(cfg, split)
    where = f"hub {name}{f' ({cfg.hf_config})' if cfg.hf_config else ''}[{split_name}]"
    try:
        rows = datasets.load_dataset(name, cfg.hf_config, split=split_name)
    except Exception as err:  # noqa: BLE001 - the hub fails in many types (offline, no such dataset or split)
        raise DataError(where, f"could not load task.dataset.{split} ({type(err).__name__}: {err})") from err
    return Part(where, rows)


def _files(given: str | list[str], split: str) -> list[Path]:
    """Every file ``given`` names, globs expanded (sorted); a missing file or an empty glob is an error."""
    paths: list[Path] = []
    for item in [given] if isinstance(given, str) else given:
        pattern = str(Path(item).expanduser())
        if _GLOB_CHARS & set(pattern):
            matched = sorted(glob.glob(pattern, recursive=True))
            if not matched:
                raise DataError(f"task.dataset.{split}", f"no file matches {item!r}")
            paths += [Path(m) for m in matched]
        elif not Path(pattern).is_file():
            raise DataError(f"task.dataset.{split}", f"no such file {item!r}")
        else:
            paths.append(Path(pattern))
    return paths


def _read_file(cfg: DatasetConfig, path: Path) -> Part:
    where = display_name(path)
    _check_not_empty(path, where)
    builder, options = _BUILDERS[cfg.format]
    if builder == "csv":
        # Every named column as text ('007' stays '007'; 'NA' and 'null' are words): only an empty cell is missing.
        columns = [c for c in (*cfg.text_fields, cfg.label_field) if c is not None]
        options = {**options, "converters": {c: str for c in columns}, "keep_default_na": False, "na_values": [""]}
        if cfg.column_names is not None:  # no header row: pandas then reads the first row as data
            options["column_names"] = list(cfg.column_names)
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its "Failed to read file" log: the error says it
    try:
        rows = datasets.load_dataset(builder, data_files=[str(path)], split="train", **options)
    except Exception as err:  # noqa: BLE001 - pandas, pyarrow and datasets each raise their own types
        raise _unreadable(cfg.format, path, where, err) from err
    finally:
        datasets.logging.set_verbosity(verbosity)
    if len(rows) == 0:
        raise DataError(where, "file has no rows (a header alone?)")
    return Part(where, rows)


def _check_not_empty(path: Path, where: str) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):
            if chunk.strip():
                return
    raise empty_file_error(where)


def _causes(err: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def _unreadable(fmt: str, path: Path, where: str, err: Exception) -> DataError:
    """The reason a file could not be read, as precisely as the reader (or a second look) says."""
    chain = _causes(err)
    names = {type(e).__name__ for e in chain}
    if "UnicodeDecodeError" in names:
        return _bad_utf8_line(path, where)
    if fmt in ("json", "jsonl"):
        located = _bad_json_line(fmt, path, where)
        if located is not None:
            return located
    if "ValueError" in names and any("corresponds to no data" in str(e) for e in chain):
        return DataError(where, "file has no rows")
    root = chain[-1]
    kind = {"csv": "CSV", "tsv": "TSV", "json": "JSON", "jsonl": "JSON Lines", "parquet": "Parquet"}[fmt]
    return DataError(where, f"not a valid {kind} file ({type(root).__name__}: {str(root).strip()})")


def _bad_utf8_line(path: Path, where: str) -> DataError:
    """The first line that is not UTF-8 (the reader's own position is within its buffer, not the file)."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return DataError(where, f"not valid UTF-8 ({err.reason}, byte {raw[err.start]:#04x}); save the file "
                                        "as UTF-8", line=lineno)
    return DataError(where, "not valid UTF-8; save the file as UTF-8")


def _bad_json_line(fmt: str, path: Path, where: str) -> DataError | None:
    """The first line that is not JSON (JSON Lines: each line an object; JSON: the one document), if any."""
    if fmt == "jsonl":
        try:
            for _ in iter_jsonl(path):
                pass
        except DataError as err:
            return err
        return None
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return DataError(where, f"bad JSON ({err.msg} at column {err.colno})", line=err.lineno)
    return None
