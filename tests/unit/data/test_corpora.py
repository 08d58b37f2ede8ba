"""Category corpora for pretraining: 20 Newsgroups and knowledge_cat."""

from __future__ import annotations

from pathlib import Path

import datasets

import ipt_ray.data as T
from data_helpers import SHARED, jsonl_text, needs_shared, raises_data_error


@needs_shared
def test_pretraining_corpora() -> None:
    news = T.load_20newsgroups(SHARED, "test")
    assert len(news) == 7532
    assert set(news["label_name"]) == set(T.NEWSGROUPS_LABELS)
    assert all(T.NEWSGROUPS_LABELS[i] == n for i, n in zip(news["label"], news["label_name"]))
    raw = T.load_20newsgroups(SHARED / "20newsgroups", "test", strip_headers=False)
    assert raw["label"] == news["label"]
    assert all(t.startswith(("From:", "Subject:")) for t in raw["text"][:100])
    # Headers (From:/Subject:) end at the first blank line; only the body is kept.
    assert [r.partition("\n\n")[2] for r in raw["text"][:100]] == news["text"][:100]

    kc = T.load_knowledge_cat(SHARED / "knowledge_cat" / "dev.jsonl")
    assert len(kc) == 2000 and kc.column_names == ["text", "label", "label_name"]
    assert set(kc["label"]) == set(range(13))
    assert kc.features == news.features  # the two corpora concatenate
    assert len(datasets.concatenate_datasets([kc, news])) == 9532


def test_knowledge_cat_bad_label(tmp_path: Path) -> None:
    p = tmp_path / "dev.jsonl"
    p.write_text(jsonl_text([{"text": "a", "idx": 0, "label": 3}, {"text": "b", "idx": 1, "label": 13}]))
    raises_data_error(lambda: T.load_knowledge_cat(p), "line 2: unknown label 13")
