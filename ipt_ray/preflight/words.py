"""The verbalizer's label words of a described task (``task.dataset``): one token each, for this tokenizer."""

from __future__ import annotations

from typing import Any, Sequence

from ipt_ray.config import ConfigError, TaskConfig
from ipt_ray.data import task_spec

__all__ = ["custom_label_words", "check_one_token_each"]


def custom_label_words(task: TaskConfig) -> tuple[str, ...]:
    """``task.dataset.label_words``, else the label strings (from ``labels`` or, without it, the files)."""
    assert task.dataset is not None
    if task.dataset.label_words is not None:
        return tuple(task.dataset.label_words)
    return task_spec(task).label_words


def check_one_token_each(tokenizer: Any, words: Sequence[str], task: TaskConfig, backbone: str) -> None:
    """Each word is one token of ``tokenizer`` mid-sentence (the MLM predicts one token at the mask)."""
    assert task.dataset is not None
    given = task.dataset.label_words is not None
    source = "task.dataset.label_words" if given else "the labels (task.dataset.label_words defaults to them)"
    fix = "the verbalizer head reads one token per label: give task.dataset.label_words, one single-token word per label"
    for word in words:
        pieces = tokenizer.tokenize(" " + word) or tokenizer.tokenize(word)
        if len(pieces) != 1:
            raise ConfigError(f"label word {word!r} of {source} is {len(pieces)} tokens for backbone {backbone!r} "
                              f"({' '.join(pieces) or 'none'}); {fix}")
        if pieces[0] == getattr(tokenizer, "unk_token", None):
            raise ConfigError(f"label word {word!r} of {source} is not in the vocabulary of backbone {backbone!r} "
                              f"(it reads as {pieces[0]}); {fix}")
