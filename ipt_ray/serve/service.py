"""The serving logic without Ray: one frozen backbone, many adapters, requests checked and batched.

``POST /predict {"adapter": NAME, "texts": [...]}``: each text is a string, or a list of one or two
strings (or an object by field name) for a pair task. Answer: ``{"adapter", "predictions": [{"label",
"probs": {label: p}}]}``. Bad requests get ``{"error": ...}`` with a 4xx status (:class:`RequestError`):
400 not JSON, 404 unknown adapter or path, 413 too many or too long texts, 422 wrong or empty fields.
The Ray Serve deployment (:mod:`ipt_ray.serve.deployment`) wraps :class:`AdapterService` with
``@serve.batch``: requests that arrive together, for any adapters, go through :meth:`predict_batch`
in one backbone pass per kind of adapter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ipt_ray.backbone import Backbone
from ipt_ray.train.inference import LoadedAdapter, Record, encode_records, load_adapters, probabilities


class RequestError(Exception):
    """A bad request: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    max_texts: int = 64  # texts per request
    max_chars: int = 5000  # characters per text field


@dataclass
class PredictItem:
    """One checked request: its adapter and its records (text field -> text), tokenised."""

    adapter: LoadedAdapter
    records: list[Record]
    rows: list[dict[str, Any]]


@dataclass
class BatchStats:
    """What batching did: batches run, the largest, and batches that mixed adapters."""

    batches: int = 0
    requests: int = 0
    largest: int = 0
    mixed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, items: Sequence[PredictItem]) -> None:
        with self.lock:
            self.batches += 1
            self.requests += len(items)
            self.largest = max(self.largest, len(items))
            self.mixed += len({item.adapter.name for item in items}) > 1

    def as_json(self) -> dict[str, int]:
        return {"batches": self.batches, "requests": self.requests, "largest_batch": self.largest,
                "mixed_adapter_batches": self.mixed}


class AdapterService:
    """``adapters`` (name -> loaded adapter) over their shared ``backbone``."""

    def __init__(self, backbone: Backbone, adapters: Mapping[str, LoadedAdapter], limits: Limits = Limits()) -> None:
        self.backbone, self.adapters, self.limits = backbone, dict(adapters), limits
        self.stats = BatchStats()

    @classmethod
    def load(cls, folders: Mapping[str, str | Path], limits: Limits = Limits()) -> "AdapterService":
        backbone, adapters = load_adapters(folders)
        backbone.encoder.eval()
        give_back_freed_memory()
        return cls(backbone, adapters, limits)

    def listing(self) -> dict[str, Any]:
        """``GET /adapters``."""
        return {"adapters": [{"name": name, "task": a.config.task.name, "strategy": a.config.method.strategy,
                              "seed": a.seed, "text_fields": list(a.text_fields), "labels": a.label_names}
                             for name, a in sorted(self.adapters.items())]}

    def parse(self, body: bytes) -> PredictItem:
        """A ``POST /predict`` body, checked; raises :class:`RequestError`."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise RequestError(400, f"body is not JSON: {err}") from None
        if not isinstance(request, dict) or set(request) != {"adapter", "texts"}:
            got = sorted(request) if isinstance(request, dict) else type(request).__name__
            raise RequestError(422, f'expected an object with fields "adapter" and "texts", got {got}')
        name, texts = request["adapter"], request["texts"]
        if not isinstance(name, str) or name not in self.adapters:
            raise RequestError(404, f"unknown adapter {name!r}; GET /adapters lists them")
        if not isinstance(texts, list) or not texts:
            raise RequestError(422, '"texts" must be a non-empty list')
        if len(texts) > self.limits.max_texts:
            raise RequestError(413, f"{len(texts)} texts in one request; at most {self.limits.max_texts}")
        adapter = self.adapters[name]
        records = [self.record(adapter, text, i) for i, text in enumerate(texts)]
        try:  # tokenised here: a text that cannot be encoded fails its own request, not its batch
            return PredictItem(adapter, records, encode_records(adapter, self.backbone, records))
        except ValueError as err:
            raise RequestError(422, str(err)) from None

    def record(self, adapter: LoadedAdapter, text: Any, index: int) -> Record:
        """One text item as the adapter's fields: a string, a list of one or two strings, or an object."""
        fields = adapter.text_fields
        if isinstance(text, str):
            text = [text]
        if isinstance(text, dict):
            if set(text) != set(fields):
                raise RequestError(422, f"texts[{index}]: expected fields {list(fields)}, got {sorted(text)}")
            values = [text[f] for f in fields]
        elif isinstance(text, list) and len(text) == len(fields):
            values = text
        else:
            raise RequestError(422, f"texts[{index}]: adapter {adapter.name!r} reads {len(fields)} text(s) "
                                    f"{list(fields)} per item")
        for value in values:
            if not isinstance(value, str) or not value.strip():
                raise RequestError(422, f"texts[{index}]: every text must be a non-empty string")
            if len(value) > self.limits.max_chars:
                raise RequestError(413, f"texts[{index}]: {len(value)} characters; at most {self.limits.max_chars}")
        return dict(zip(fields, values))

    def predict_batch(self, items: Sequence[PredictItem]) -> list[dict[str, Any]]:
        """The answers to ``items``, in order: one backbone pass per kind of adapter among them."""
        self.stats.count(items)
        requests = [(item.adapter, item.rows) for item in items]
        return [answer(item.adapter, probs) for item, probs in zip(items, probabilities(self.backbone, requests))]


def give_back_freed_memory() -> None:
    """Return the heap that loading freed to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    Building an adapter allocates its randomly initialised parameters, then ``load_state_dict`` copies
    the saved tensors in; both temporaries are freed, but glibc keeps the pages: 15.8 MiB of RSS per
    12.0 MiB adapter without this (bench/serve.py, 2026-12-02), 12.06 MiB with it (2026-12-03).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        return
    if trim is not None:
        trim(0)


def answer(adapter: LoadedAdapter, probs: Any) -> dict[str, Any]:
    labels = adapter.label_names
    return {"adapter": adapter.name, "predictions": [
        {"label": labels[int(row.argmax())], "probs": {c: float(p) for c, p in zip(labels, row)}} for row in probs]}
