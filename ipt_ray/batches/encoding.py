"""Task data -> tokenised datasets -> padded ``PromptedBatch`` es.

The classifier head reads the text fields as a (text_a, text_b) pair; the verbalizer head fills the
task's template around the tokenizer's mask token, shortening the longest field when it is too long.
"""

from __future__ import annotations

from typing import Any, Sequence

import datasets
import torch
from torch.utils.data import DataLoader

from ipt_ray.batches.batch import PromptedBatch

COLUMNS = ("input_ids", "attention_mask", "special_tokens_mask", "token_type_ids")


def _pair(spec: Any, row: dict[str, Any]) -> tuple[str, str | None]:
    fields = [str(row[f]) for f in spec.text_fields]
    return fields[0], (" ".join(fields[1:]) if len(fields) > 1 else None)


def _fill_template(spec: Any, row: dict[str, Any], tokenizer: Any, max_length: int) -> str:
    values = {f: str(row[f]) for f in spec.text_fields}
    for _ in range(4):
        text = spec.template.format(**values, mask=tokenizer.mask_token)
        excess = len(tokenizer(text)["input_ids"]) - max_length
        if excess <= 0:
            return text
        longest = max(values, key=lambda f: len(values[f]))
        pieces = tokenizer.tokenize(values[longest])
        values[longest] = tokenizer.convert_tokens_to_string(pieces[: max(1, len(pieces) - excess - 1)])
    return text  # truncation below then cuts the end; the head reports a missing mask loudly


def tokenize_records(records: Sequence[dict[str, Any]], spec: Any, tokenizer: Any, max_length: int,
                     template: bool) -> dict[str, Any]:
    """The :data:`COLUMNS` of ``records`` (text field -> text), as :func:`encode` tokenises them."""
    if template:
        texts = [_fill_template(spec, r, tokenizer, max_length) for r in records]
        enc = tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True)
    else:
        a, b = zip(*(_pair(spec, r) for r in records))
        enc = tokenizer(list(a), None if b[0] is None else list(b), truncation=True, max_length=max_length,
                        return_special_tokens_mask=True)
    return {k: enc[k] for k in COLUMNS if k in enc}


def encode(dataset: Any, spec: Any, tokenizer: Any, max_length: int, template: bool) -> Any:
    """Tokenise a ``datasets.Dataset``; keeps ``label`` (and ``group`` where present)."""

    def tokenize(rows: dict[str, list[Any]]) -> dict[str, Any]:
        n = len(rows["label"])
        records = [{f: rows[f][i] for f in spec.text_fields} for i in range(n)]
        return tokenize_records(records, spec, tokenizer, max_length, template)

    datasets.disable_progress_bars()  # the training loop draws its own progress
    keep = {"label", "group"}
    drop = [c for c in dataset.column_names if c not in keep]
    encoded = dataset.map(tokenize, batched=True, batch_size=512, remove_columns=drop, keep_in_memory=True,
                          load_from_cache_file=False, desc=None)
    if template:
        mask_id = tokenizer.mask_token_id
        lost = sum(1 for ids in encoded["input_ids"] if mask_id not in ids)
        if lost:
            raise ValueError(f"{lost} inputs lost their mask token to truncation; raise task.max_length")
    return encoded


def text_token_ids(tokenizer: Any, text: str) -> torch.Tensor:
    """``[h]`` token ids of ``text`` without special tokens (a hard prompt, as the tokenizer splits it)."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def seen_token_ids(encoded: Any) -> torch.Tensor:
    """Ids occurring in the data (content or not); the compact prompt table keeps rows for these only."""
    ids = sorted({i for row in encoded["input_ids"] for i in row})
    return torch.tensor(ids, dtype=torch.long)


class Collator:
    """Pads a list of encoded rows to the longest one; ``content_mask`` = real and not special."""

    def __init__(self, pad_id: int, with_token_types: bool):
        self.pad_id, self.with_token_types = pad_id, with_token_types

    def __call__(self, rows: Sequence[dict[str, Any]]) -> PromptedBatch:
        width = max(len(r["input_ids"]) for r in rows)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([list(r[key]) + [value] * (width - len(r[key])) for r in rows], dtype=torch.long)

        attention = pad("attention_mask", 0)
        special = pad("special_tokens_mask", 1)
        return PromptedBatch(
            input_ids=pad("input_ids", self.pad_id),
            attention_mask=attention,
            content_mask=attention * (1 - special),
            token_type_ids=pad("token_type_ids", 0) if self.with_token_types and "token_type_ids" in rows[0] else None,
            labels=torch.tensor([r["label"] for r in rows], dtype=torch.long),
            group=torch.tensor([r["group"] for r in rows], dtype=torch.long) if "group" in rows[0] else None,
        )


def loader(encoded: Any, batch_size: int, collator: Collator, shuffle: bool = False,
           generator: torch.Generator | None = None, sampler: Any = None) -> DataLoader:
    rows = encoded.to_list() if hasattr(encoded, "to_list") else list(encoded)
    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle and sampler is None, generator=generator,
                      sampler=sampler, collate_fn=collator)
