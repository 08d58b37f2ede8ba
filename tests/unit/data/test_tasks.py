"""Task specs and loading: the registry, the real benchmark files, the vendored copies, the hub
mapping (``datasets.load_dataset`` monkeypatched; no network) and the local folder layout."""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
import pytest

import ipt_ray.data as T
from ipt_ray.data import DataError
from data_helpers import CB_ROWS, SHARED, VENDORED, cb_dir, jsonl_text, label_counts, needs_shared


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #


def test_registry_covers_tasks_and_is_consistent() -> None:
    assert set(T.TASKS) == {"boolq", "cb", "rte", "multirc", "sst2", "imdb", "ag_news"}
    for name, spec in T.TASKS.items():
        assert spec.name == name
        assert spec.num_labels == len(spec.label_names) == len(spec.label_words)
        assert spec.columns[-2:] == ("label", "idx")
        rendered = spec.render({f: f"<{f}>" for f in spec.text_fields}, "[MASK]")
        assert rendered.count("[MASK]") == 1
        assert all(f"<{f}>" in rendered for f in spec.text_fields)
    assert T.TASKS["cb"].label_words == ("yes", "no", "maybe")
    assert T.TASKS["sst2"].label_words == ("terrible", "great")
    assert T.TASKS["multirc"].metrics == ("f1a", "em", "accuracy")
    assert T.TASKS["imdb"].hub_path == ("imdb", None)
    assert T.get_task("CB") is T.TASKS["cb"]
    assert T.get_task("SST-2") is T.TASKS["sst2"]


def test_unknown_task_lists_allowed_names() -> None:
    with pytest.raises(ValueError) as exc:
        T.get_task("mnli")
    msg = str(exc.value)
    assert "'mnli'" in msg
    for name in T.TASKS:
        assert name in msg
    with pytest.raises(ValueError, match="allowed: boolq"):
        T.load_task("nope")


def test_taskspec_rejects_inconsistent_template() -> None:
    with pytest.raises(ValueError, match="placeholders"):
        T.TaskSpec("x", ("a",), ("n", "p"), ("bad", "good"), ("accuracy",), ("x", None), "{b} {mask}")
    with pytest.raises(ValueError, match="label words"):
        T.TaskSpec("x", ("a",), ("n", "p"), ("bad",), ("accuracy",), ("x", None), "{a} {mask}")


def test_render_collapses_whitespace() -> None:
    spec = T.TASKS["ag_news"]
    out = spec.render({"title": "", "description": "  Oil  prices rise "}, "<mask>")
    assert out == "<mask> News: Oil prices rise"


# --------------------------------------------------------------------------- #
# Real data (counts from shared/data/SOURCES.md)
# --------------------------------------------------------------------------- #

SUPERGLUE_COUNTS = {
    "cb": (
        {"entailment": 115, "contradiction": 119, "neutral": 16},
        {"contradiction": 28, "neutral": 5, "entailment": 23},
    ),
    "rte": (
        {"not_entailment": 1241, "entailment": 1249},
        {"not_entailment": 131, "entailment": 146},
    ),
    "boolq": ({"False": 14, "True": 18}, {"False": 1237, "True": 2033}),
    "sst2": ({"negative": 29780, "positive": 37569}, {"positive": 444, "negative": 428}),
    "multirc": ({"False": 15218, "True": 12025}, {"False": 2773, "True": 2075}),
}


@needs_shared
@pytest.mark.parametrize("name", sorted(SUPERGLUE_COUNTS))
def test_load_shared_counts_and_labels(name: str) -> None:
    dd = T.load_task(name, SHARED)  # a benchmark root is accepted as data_dir
    train_counts, val_counts = SUPERGLUE_COUNTS[name]
    assert set(dd) == {"train", "validation"}
    assert label_counts(dd["train"]) == train_counts
    assert label_counts(dd["validation"]) == val_counts
    spec = T.get_task(name)
    for split in dd.values():
        assert tuple(split.column_names) == spec.columns
        assert split.features == spec.features()
        assert len(set(split["idx"])) == len(split)


@needs_shared
def test_cb_rows_match_file() -> None:
    ds = T.load_task("cb", SHARED / "superglue" / "CB")["train"]
    first = json.loads((SHARED / "superglue/CB/train.jsonl").read_text().splitlines()[0])
    row = ds[0]
    assert row["premise"] == first["premise"]
    assert row["hypothesis"] == first["hypothesis"]
    assert ds.features["label"].int2str(row["label"]) == first["label"]
    assert row["idx"] == first["idx"]


@needs_shared
def test_multirc_flattened_groups() -> None:
    dd = T.load_task("multirc", SHARED / "superglue" / "MultiRC")
    for split, options, questions in (("train", 27243, 5131), ("validation", 4848, 953)):
        ds = dd[split]
        assert len(ds) == options
        groups = np.asarray(ds["group"])
        assert len(np.unique(groups)) == questions
        # One group = one question of one paragraph, rows contiguous.
        assert np.all(np.diff(groups) >= 0)
        per_group = collections.defaultdict(set)
        for g, p, q in zip(groups, ds["paragraph"], ds["question"]):
            per_group[g].add((p, q))
        assert all(len(v) == 1 for v in per_group.values())


@needs_shared
def test_ag_news_test_split_and_missing_train() -> None:
    dd = T.load_task("ag_news", SHARED, splits=("validation",))
    ds = dd["validation"]
    assert len(ds) == 7600
    assert label_counts(ds) == {n: 1900 for n in T.TASKS["ag_news"].label_names}
    assert ds[0]["title"] == "Fears for T N pension after talks"
    assert ds.features["label"].int2str(ds[0]["label"]) == "Business"  # class "3"
    with pytest.raises(FileNotFoundError) as exc:
        T.load_task("ag_news", SHARED)
    msg = str(exc.value)
    assert "train.csv" in msg and "train.csv.gz" in msg and str(SHARED / "ag_news") in msg


@needs_shared
def test_imdb_test_split() -> None:
    ds = T.load_task("imdb", SHARED, splits=("validation",))["validation"]
    assert len(ds) == 25000
    assert label_counts(ds) == {"neg": 12500, "pos": 12500}
    assert not any("<br />" in t for t in ds["text"])


# --------------------------------------------------------------------------- #
# Vendored data
# --------------------------------------------------------------------------- #


def test_vendored_dirs() -> None:
    assert T.vendored_dir("cb") == VENDORED / "superglue" / "CB"
    assert T.vendored_dir("rte") is not None and T.vendored_dir("sst2") is not None
    assert T.vendored_dir("imdb") is None
    with pytest.raises(ValueError, match="vendored tasks: cb, rte, sst2"):
        T.load_task("imdb", source="vendored")
    with pytest.raises(ValueError, match="needs data_dir"):
        T.load_task("cb", source="local")


def test_vendored_cb_loads_without_data_dir() -> None:
    dd = T.load_task("cb")
    assert len(dd["train"]) == 250 and len(dd["validation"]) == 56


@needs_shared
@pytest.mark.parametrize(
    "rel", ["superglue/CB/train.jsonl", "superglue/CB/val.jsonl", "superglue/RTE/val.jsonl",
            "glue/SST-2/dev.tsv", "glue/SST-2/train.tsv.gz"],
)
def test_vendored_files_are_byte_copies(rel: str) -> None:
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert sha(VENDORED / rel) == sha(SHARED / rel)
    assert f"`{rel}`" in (VENDORED / "SOURCES.md").read_text()


@needs_shared
def test_vendored_cb_equals_shared() -> None:
    vend = T.load_task("cb")
    shared = T.load_task("cb", SHARED / "superglue" / "CB", source="local")
    for split in ("train", "validation"):
        assert vend[split].to_dict() == shared[split].to_dict()


# --------------------------------------------------------------------------- #
# Hub path (datasets.load_dataset monkeypatched; no network)
# --------------------------------------------------------------------------- #


class FakeHub:
    def __init__(self, data: datasets.DatasetDict) -> None:
        self.data = data
        self.calls: list[tuple] = []

    def __call__(self, *args, **kwargs):
        self.calls.append(args)
        return self.data


def _hub_cb(names: list[str]) -> datasets.DatasetDict:
    """CB in the hub's schema, built from the vendored jsonl."""
    feats = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "idx": datasets.Value("int32"),
            "label": datasets.ClassLabel(names=names),
        }
    )
    out = {}
    for split, fname in (("train", "train.jsonl"), ("validation", "val.jsonl")):
        rows = [json.loads(l) for l in (VENDORED / "superglue/CB" / fname).read_text().splitlines()]
        for r in rows:
            r["label"] = names.index(r["label"])
        out[split] = datasets.Dataset.from_list(rows, features=feats)
    out["test"] = datasets.Dataset.from_list(
        [{"premise": "p", "hypothesis": "h", "idx": 0, "label": -1}], features=feats
    )
    return datasets.DatasetDict(out)


@pytest.mark.parametrize(
    "names", [["entailment", "contradiction", "neutral"], ["neutral", "entailment", "contradiction"]]
)
def test_hub_cb_maps_to_local_schema(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    fake = FakeHub(_hub_cb(names))
    monkeypatch.setattr(datasets, "load_dataset", fake)
    hub = T.load_task("cb", source="hub")
    assert fake.calls == [("super_glue", "cb")]
    local = T.load_task("cb", source="vendored")
    for split in ("train", "validation"):
        assert hub[split].features == local[split].features
        assert hub[split].to_dict() == local[split].to_dict()


def test_hub_unlabelled_split_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _hub_cb(["entailment", "contradiction", "neutral"])
    data["validation"] = data["test"]
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(data))
    with pytest.raises(DataError, match=r"hub super_glue/cb\[validation\] line 1: unknown label -1"):
        T.load_task("cb", source="hub")


def test_hub_sst2(monkeypatch: pytest.MonkeyPatch) -> None:
    feats = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "idx": datasets.Value("int32"),
        }
    )
    mk = lambda rows: datasets.Dataset.from_dict(  # noqa: E731
        {"sentence": [r[0] for r in rows], "label": [r[1] for r in rows], "idx": list(range(len(rows)))},
        features=feats,
    )
    fake = FakeHub(datasets.DatasetDict({
        "train": mk([("a gem ", 1), ("dull", 0), ("fine", 1)]),
        "validation": mk([("bad", 0), ("good", 1)]),
        "test": mk([("x", -1)]),
    }))
    monkeypatch.setattr(datasets, "load_dataset", fake)
    dd = T.load_task("sst2", source="hub")
    assert fake.calls == [("glue", "sst2")]
    assert dd["train"]["sentence"] == ["a gem ", "dull", "fine"]
    assert label_counts(dd["validation"]) == {"negative": 1, "positive": 1}
    assert dd["validation"].to_dict() == {"sentence": ["bad", "good"], "label": [0, 1], "idx": [0, 1]}
    assert dd["train"].features == T.TASKS["sst2"].features()


def test_hub_auto_falls_back_to_hub_for_unvendored(monkeypatch: pytest.MonkeyPatch) -> None:
    """IMDB/AG News: hub ``test`` plays validation; hub text is cleaned/mapped."""
    imdb = datasets.DatasetDict({
        split: datasets.Dataset.from_dict(
            {"text": ["Great.<br /><br />Loved it", "Awful"], "label": [1, 0]},
            features=datasets.Features({"text": datasets.Value("string"),
                                        "label": datasets.ClassLabel(names=["neg", "pos"])}),
        )
        for split in ("train", "test", "unsupervised")
    })
    fake = FakeHub(imdb)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    dd = T.load_task("imdb")
    assert fake.calls == [("imdb", None)]
    assert dd["validation"]["text"][0] == "Great.  Loved it"
    assert dd["validation"]["idx"] == [0, 1]
    assert label_counts(dd["validation"]) == {"pos": 1, "neg": 1}

    ag = datasets.DatasetDict({
        split: datasets.Dataset.from_dict(
            {"text": ["Wall St. Bears Claw Back Reuters - Short-sellers..."], "label": [2]},
            features=datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(
                names=["World", "Sports", "Business", "Sci/Tech"])}),
        )
        for split in ("train", "test")
    })
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(ag))
    row = T.load_task("ag_news", source="hub")["validation"][0]
    assert row["title"] == "" and row["description"].startswith("Wall St.")
    assert row["label"] == 2


def test_hub_multirc_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    feats = datasets.Features({
        "paragraph": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "idx": {"paragraph": datasets.Value("int32"), "question": datasets.Value("int32"),
                "answer": datasets.Value("int32")},
        "label": datasets.ClassLabel(names=["False", "True"]),
    })
    idx = [(0, 0, 0), (0, 0, 1), (0, 1, 2), (1, 2, 3), (1, 2, 4)]
    ds = datasets.Dataset.from_dict({
        "paragraph": ["P0", "P0", "P0", "P1", "P1"],
        "question": ["q0", "q0", "q1", "q2", "q2"],
        "answer": ["a", "b", "c", "d", "e"],
        "idx": [{"paragraph": p, "question": q, "answer": a} for p, q, a in idx],
        "label": [1, 0, 1, 0, 0],
    }, features=feats)
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(datasets.DatasetDict(train=ds, validation=ds)))
    out = T.load_task("multirc", source="hub")["validation"]
    assert out["group"] == [0, 0, 1, 2, 2]
    assert out["idx"] == [0, 1, 2, 3, 4]
    assert out["label"] == [1, 0, 1, 0, 0]
    assert tuple(out.column_names) == T.TASKS["multirc"].columns


# --------------------------------------------------------------------------- #
# Local folder layout
# --------------------------------------------------------------------------- #


def test_local_tmp_cb_ok(tmp_path: Path) -> None:
    d = cb_dir(tmp_path, jsonl_text(CB_ROWS))
    dd = T.load_task("cb", tmp_path)  # finds tmp_path/CB
    assert dd["train"]["hypothesis"] == [f"h{i}" for i in range(10)]


def test_missing_split_file_names_candidates(tmp_path: Path) -> None:
    d = tmp_path / "CB"
    d.mkdir()
    (d / "train.jsonl").write_text(jsonl_text(CB_ROWS))
    with pytest.raises(FileNotFoundError) as exc:
        T.load_task("cb", d)
    assert "val.jsonl, val.jsonl.gz" in str(exc.value) and str(d) in str(exc.value)
