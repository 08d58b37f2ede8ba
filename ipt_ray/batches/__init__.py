"""Tokenised batches: PromptedBatch, encoding, collation."""

from ipt_ray.batches.batch import PromptedBatch  # noqa: F401

from ipt_ray.batches.encoding import (  # noqa: F401
    COLUMNS,
    encode,
    tokenize_records,
    seen_token_ids,
    text_token_ids,
    Collator,
    loader,
)

__all__ = ["PromptedBatch", 'COLUMNS', 'encode', 'tokenize_records', 'seen_token_ids', 'text_token_ids', 'Collator', 'loader']
