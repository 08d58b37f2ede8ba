"""Shared by the data-stage tests: where the real benchmark files are, and small bad-file builders."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import datasets
import pytest

import ipt_ray.data as T
from ipt_ray.data import DataError

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")
VENDORED = Path(T.__file__).resolve().parent  # ipt_ray/data: the vendored task files


def label_counts(ds: datasets.Dataset) -> dict[str, int]:
    names = ds.features["label"].names
    return dict(collections.Counter(names[i] for i in ds["label"]))


CB_ROWS = [
    {"premise": f"p{i}", "hypothesis": f"h{i}", "label": ["entailment", "contradiction", "neutral"][i % 3],
     "idx": i}
    for i in range(10)
]


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def cb_dir(tmp_path: Path, train_text: str | bytes, name: str = "train.jsonl") -> Path:
    d = tmp_path / "CB"
    d.mkdir()
    (d / "val.jsonl").write_text(jsonl_text(CB_ROWS))
    data = train_text.encode() if isinstance(train_text, str) else train_text
    (d / name).write_bytes(data)
    return d


def raises_data_error(fn, *parts: str) -> DataError:
    with pytest.raises(DataError) as exc:
        fn()
    for p in parts:
        assert p in str(exc.value), f"{p!r} not in {str(exc.value)!r}"
    return exc.value
