"""The category corpus (``ipt_ray.data.categories``): the manifest, the sources, the labelled corpus."""

from __future__ import annotations

import pytest
import yaml

from ipt_ray.config import PretrainConfig, PretrainSource
from ipt_ray.data import (
    NEWSGROUPS_LABELS,
    WIKIPEDIA_CATEGORIES,
    PretrainError,
    build_corpus,
    get_task,
    load_manifest,
)


# ---------------------------------------------------------------- manifest


def test_packaged_manifest_maps_every_label_to_one_of_the_13_wikipedia_categories():
    m = load_manifest()
    assert sorted(m.categories) == sorted(WIKIPEDIA_CATEGORIES) and len(m.categories) == 13
    # knowledge_cat: ids 0..12, one category each, and the class ids equal the knowledge_cat ids
    kc = m.label_map("knowledge_cat")
    assert sorted(kc, key=int) == [str(i) for i in range(13)]
    assert sorted(kc.values()) == sorted(WIKIPEDIA_CATEGORIES)
    assert all(m.category_id("knowledge_cat", i) == i for i in range(13))
    for entry in m.datasets["knowledge_cat"]["raw"]["labels"].values():  # the inference is documented per id
        assert entry["confidence"] in ("high", "medium", "low") and entry["evidence"]
    assert kc["7"] == "Mathematics and logic" and kc["12"] == "Religion and belief systems"
    # 20 Newsgroups: every group
    ng = m.label_map("20newsgroups")
    assert set(ng) == set(NEWSGROUPS_LABELS)
    assert all(ng[g] == "Technology and applied sciences" for g in NEWSGROUPS_LABELS if g.startswith("comp."))
    assert ng["sci.med"] == "Health and fitness" and ng["sci.space"] == "Natural and physical sciences"
    assert ng["rec.sport.hockey"] == ng["rec.sport.baseball"] == "Human activities"
    assert {ng[g] for g in ("alt.atheism", "soc.religion.christian", "talk.religion.misc")} == {"Religion and belief systems"}
    assert {ng[g] for g in NEWSGROUPS_LABELS if g.startswith("talk.politics")} == {"Society and social sciences"}
    # tasks
    for task in ("sst2", "imdb"):
        assert all(m.category_id(task, name) == m.categories.index("Culture and the arts")
                   for name in get_task(task).label_names)
    assert all(m.category_id("ag_news", name) >= 0 for name in get_task("ag_news").label_names)


def test_manifest_errors_name_the_file_and_the_label(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text(yaml.safe_dump({"categories": ["A", "B"], "datasets": {"x": {"labels": {"0": "C"}}}}))
    with pytest.raises(PretrainError, match=r"datasets.x.labels.0: 'C' is not one of the categories"):
        load_manifest(bad)
    bad.write_text(yaml.safe_dump({"categories": ["A", "B"], "datasets": {"x": {"labels": {"0": "A"}}}}))
    m = load_manifest(bad)
    with pytest.raises(PretrainError, match="dataset 'x' has no category for label 1"):
        m.category_id("x", 1)
    with pytest.raises(PretrainError, match="no dataset 'y'"):
        m.category_id("y", 0)
    with pytest.raises(PretrainError, match="no such file"):
        load_manifest(tmp_path / "missing.yaml")



# ---------------------------------------------------------------- corpus


def test_max_rows_draws_a_seeded_subset():
    cfg = PretrainConfig(sources=[PretrainSource(kind="knowledge_cat", split="test", max_rows=50)])
    a, b = build_corpus(cfg), build_corpus(cfg)
    assert len(a) == 50 and a.texts == b.texts
    assert build_corpus(cfg.model_copy(update={"seed": 1})).texts != a.texts


def test_20newsgroups_source_maps_groups_to_categories(shared_data):
    cfg = PretrainConfig(sources=[PretrainSource(kind="20newsgroups", data_dir=str(shared_data / "20newsgroups"),
                                                 split="test", max_rows=400)])
    corpus = build_corpus(cfg)
    counts = corpus.counts()
    assert len(corpus) == 400 and max(counts, key=counts.get) == "Technology and applied sciences"  # 7 of 20 groups
    assert counts["Mathematics and logic"] == 0 and counts["Health and fitness"] > 0
