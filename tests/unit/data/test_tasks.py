"""Tests for ipt_ray.tasks: loaders on the real benchmark files, hub mapping,
bad-data errors, few-shot protocol helpers and metrics."""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pytest

from ipt_ray.data import tasks as T
from ipt_ray.data.tasks import DataError

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")
VENDORED = Path(T.__file__).resolve().parent


def label_counts(ds: datasets.Dataset) -> dict[str, int]:
    names = ds.features["label"].names
    return dict(collections.Counter(names[i] for i in ds["label"]))


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
# Bad data
# --------------------------------------------------------------------------- #

CB_ROWS = [
    {"premise": f"p{i}", "hypothesis": f"h{i}", "label": ["entailment", "contradiction", "neutral"][i % 3],
     "idx": i}
    for i in range(10)
]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _cb_dir(tmp_path: Path, train_text: str | bytes, name: str = "train.jsonl") -> Path:
    d = tmp_path / "CB"
    d.mkdir()
    (d / "val.jsonl").write_text(_jsonl(CB_ROWS))
    data = train_text.encode() if isinstance(train_text, str) else train_text
    (d / name).write_bytes(data)
    return d


def test_local_tmp_cb_ok(tmp_path: Path) -> None:
    d = _cb_dir(tmp_path, _jsonl(CB_ROWS))
    dd = T.load_task("cb", tmp_path)  # finds tmp_path/CB
    assert dd["train"]["hypothesis"] == [f"h{i}" for i in range(10)]


def _raises(fn, *parts: str) -> DataError:
    with pytest.raises(DataError) as exc:
        fn()
    for p in parts:
        assert p in str(exc.value), f"{p!r} not in {str(exc.value)!r}"
    return exc.value


def test_missing_field(tmp_path: Path) -> None:
    rows = [dict(r) for r in CB_ROWS]
    del rows[2]["hypothesis"]
    d = _cb_dir(tmp_path, _jsonl(rows))
    err = _raises(lambda: T.load_task("cb", d), "CB/train.jsonl line 3: field 'hypothesis' missing")
    assert (err.file, err.line, err.field) == ("CB/train.jsonl", 3, "hypothesis")


def test_unknown_label(tmp_path: Path) -> None:
    rows = [dict(r) for r in CB_ROWS]
    rows[6]["label"] = "maybe"
    d = _cb_dir(tmp_path, _jsonl(rows))
    err = _raises(
        lambda: T.load_task("cb", d),
        "CB/train.jsonl line 7: unknown label 'maybe' (allowed: entailment, contradiction, neutral)",
    )
    assert err.field == "label"


def test_wrong_type_field(tmp_path: Path) -> None:
    rows = [dict(r) for r in CB_ROWS]
    rows[1]["premise"] = None
    d = _cb_dir(tmp_path, _jsonl(rows))
    _raises(lambda: T.load_task("cb", d), "line 2", "field 'premise' must be str")


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    d = _cb_dir(tmp_path, content)
    _raises(lambda: T.load_task("cb", d), "CB/train.jsonl line 1", "empty")


def test_truncated_json_line(tmp_path: Path) -> None:
    text = _jsonl(CB_ROWS[:5])
    d = _cb_dir(tmp_path, text[: len(text) - 20])  # cut inside line 5
    err = _raises(lambda: T.load_task("cb", d), "CB/train.jsonl line 5: bad JSON")
    assert err.line == 5


def test_truncated_gzip(tmp_path: Path) -> None:
    rows = [dict(r, premise=f"premise {i} " + "x" * (i % 97), idx=i) for i, r in
            enumerate(CB_ROWS * 300)]
    blob = gzip.compress(_jsonl(rows).encode())
    d = _cb_dir(tmp_path, blob[: len(blob) // 2], name="train.jsonl.gz")
    err = _raises(lambda: T.load_task("cb", d), "CB/train.jsonl.gz line ", "gzip")
    assert err.line is not None and 1 < err.line < len(rows)


def test_not_gzip(tmp_path: Path) -> None:
    d = _cb_dir(tmp_path, _jsonl(CB_ROWS), name="train.jsonl.gz")
    _raises(lambda: T.load_task("cb", d), "CB/train.jsonl.gz line 1", "gzip")


def test_boolq_label_must_be_boolean(tmp_path: Path) -> None:
    d = tmp_path / "BoolQ"
    d.mkdir()
    good = {"question": "q", "passage": "p", "idx": 0, "label": True}
    (d / "fewglue_train32.jsonl").write_text(_jsonl([good, dict(good, idx=1, label=1)]))
    err = _raises(lambda: T.load_split("boolq", d, "train"),
                  "BoolQ/fewglue_train32.jsonl line 2: unknown label 1 (allowed: false, true)")
    assert err.field == "label"


def test_multirc_nested_field(tmp_path: Path) -> None:
    d = tmp_path / "MultiRC"
    d.mkdir()
    rec = {"idx": 0, "passage": {"text": "P", "questions": [
        {"question": "q0", "idx": 0, "answers": [{"text": "a", "idx": 0, "label": 1}]},
        {"question": "q1", "idx": 1, "answers": [{"text": "b", "idx": 1}]},
    ]}}
    (d / "val.jsonl").write_text(_jsonl([rec]))
    err = _raises(lambda: T.load_split("multirc", d, "validation"),
                  "MultiRC/val.jsonl line 1: field 'passage.questions[1].answers[0].label' missing")
    assert err.field == "passage.questions[1].answers[0].label"


def _sst2_dir(tmp_path: Path, train: str) -> Path:
    d = tmp_path / "SST-2"
    d.mkdir()
    (d / "train.tsv").write_text(train)
    return d


def test_sst2_with_and_without_header(tmp_path: Path) -> None:
    d = _sst2_dir(tmp_path, 'sentence\tlabel\na "quoted" gem \t1\ndull\t0\n')
    ds = T.load_split("sst2", d, "train")
    assert ds["sentence"] == ['a "quoted" gem ', "dull"] and ds["label"] == [1, 0]
    (d / "train.tsv").write_text("a gem\t1\ndull\t0\n")
    assert T.load_split("sst2", d, "train")["label"] == [1, 0]


def test_sst2_bad_rows(tmp_path: Path) -> None:
    d = _sst2_dir(tmp_path, "sentence\tlabel\nok\t1\nbad\t2\n")
    _raises(lambda: T.load_split("sst2", d, "train"), "SST-2/train.tsv line 3: unknown label '2' (allowed: 0, 1)")
    (d / "train.tsv").write_text("sentence\tlabel\nok\t1\nno label here\n")
    err = _raises(lambda: T.load_split("sst2", d, "train"), "SST-2/train.tsv line 3: field 'label' missing")
    assert err.field == "label"
    (d / "train.tsv").write_text("sentence\tlabel\n")
    _raises(lambda: T.load_split("sst2", d, "train"), "SST-2/train.tsv", "empty")


def test_ag_news_csv(tmp_path: Path) -> None:
    d = tmp_path / "ag_news"
    d.mkdir()
    (d / "test.csv").write_text('Class Index,Title,Description\n"3","T, one","D ""quoted"""\n"1","T2","D2"\n')
    ds = T.load_split("ag_news", d, "validation")
    assert ds["title"] == ["T, one", "T2"] and ds["description"] == ['D "quoted"', "D2"]
    assert ds["label"] == [2, 0]
    (d / "test.csv").write_text('"3","T","D"\n"2","only title"\n')
    err = _raises(lambda: T.load_split("ag_news", d, "validation"),
                  "ag_news/test.csv line 2: field 'description' missing")
    assert err.field == "description"
    (d / "test.csv").write_text('"3","T","D"\n"5","T","D"\n')
    _raises(lambda: T.load_split("ag_news", d, "validation"),
            "ag_news/test.csv line 2: unknown label '5' (allowed: 1, 2, 3, 4)")


def _tar(path: Path, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_imdb_archive_and_folder(tmp_path: Path) -> None:
    files = {"aclImdb/test/neg/3_1.txt": "Bad.<br />Really", "aclImdb/test/pos/2_9.txt": "Good",
             "aclImdb/test/neg/1_2.txt": "Meh", "aclImdb/test/urls_neg.txt": "ignored"}
    _tar(tmp_path / "aclImdb_test.tar.gz", files)
    ds = T.load_split("imdb", tmp_path, "validation")
    assert ds.to_dict() == {"text": ["Meh", "Bad. Really", "Good"], "label": [0, 0, 1], "idx": [0, 1, 2]}
    folder = tmp_path / "x"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    assert T.load_split("imdb", folder, "validation").to_dict() == ds.to_dict()

    _tar(tmp_path / "aclImdb_test.tar.gz", {"aclImdb/test/pos/7_2.txt": "?"})
    err = _raises(lambda: T.load_split("imdb", tmp_path, "validation"),
                  "aclImdb_test.tar.gz member aclImdb/test/pos/7_2.txt", "rating 2")
    assert err.field == "rating"


def test_knowledge_cat_bad_label(tmp_path: Path) -> None:
    p = tmp_path / "dev.jsonl"
    p.write_text(_jsonl([{"text": "a", "idx": 0, "label": 3}, {"text": "b", "idx": 1, "label": 13}]))
    _raises(lambda: T.load_knowledge_cat(p), "line 2: unknown label 13")


def test_missing_split_file_names_candidates(tmp_path: Path) -> None:
    d = tmp_path / "CB"
    d.mkdir()
    (d / "train.jsonl").write_text(_jsonl(CB_ROWS))
    with pytest.raises(FileNotFoundError) as exc:
        T.load_task("cb", d)
    assert "val.jsonl, val.jsonl.gz" in str(exc.value) and str(d) in str(exc.value)


# --------------------------------------------------------------------------- #
# Protocol helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def rte() -> datasets.DatasetDict:
    return T.load_task("rte")


def test_few_shot_split(rte: datasets.DatasetDict) -> None:
    fs = T.few_shot_split(rte, k=16, seed=13)
    assert set(fs) == {"train", "dev", "test"}
    for part in ("train", "dev"):
        assert len(fs[part]) == 32
        assert label_counts(fs[part]) == {"entailment": 16, "not_entailment": 16}
    assert not set(fs["train"]["idx"]) & set(fs["dev"]["idx"])
    assert fs["test"]["idx"] == rte["validation"]["idx"]
    again = T.few_shot_split(rte, k=16, seed=13)
    assert again["train"]["idx"] == fs["train"]["idx"] and again["dev"]["idx"] == fs["dev"]["idx"]
    other = T.few_shot_split(rte, k=16, seed=42)
    assert set(other["train"]["idx"]) != set(fs["train"]["idx"])


def test_few_shot_split_too_few_examples() -> None:
    cb = T.load_task("cb")
    assert label_counts(T.few_shot_split(cb, k=8, seed=1)["train"]) == {
        "entailment": 8, "contradiction": 8, "neutral": 8}
    with pytest.raises(ValueError, match=r"class 'neutral' \(2\) has 16 train examples; k=16 needs 32"):
        T.few_shot_split(cb, k=16, seed=1)


def test_cv_folds_disjoint_covering_stratified() -> None:
    train = T.load_task("cb")["train"]
    folds = T.cv_folds(train, n_folds=4, seed=0)
    assert len(folds) == 4
    all_idx = set(train["idx"])
    devs = [set(dev["idx"]) for _, dev in folds]
    for (tr, dev), dset in zip(folds, devs):
        assert not set(tr["idx"]) & dset and set(tr["idx"]) | dset == all_idx
    assert set().union(*devs) == all_idx and sum(map(len, devs)) == len(train)
    sizes = [len(d) for d in devs]
    assert max(sizes) - min(sizes) <= 1
    total = collections.Counter(train["label"])
    for _, dev in folds:
        for c, n in collections.Counter(dev["label"]).items():
            assert abs(n - total[c] / 4) <= 1
    assert [d["idx"] for _, d in T.cv_folds(train, 4, 0)] == [d["idx"] for _, d in folds]
    assert [d["idx"] for _, d in T.cv_folds(train, 4, 1)] != [d["idx"] for _, d in folds]


def test_subsample(rte: datasets.DatasetDict) -> None:
    ds = rte["validation"]  # 146 entailment / 131 not_entailment
    sub = T.subsample(ds, 100, seed=0)
    assert len(sub) == 100
    assert label_counts(sub) == {"entailment": 53, "not_entailment": 47}
    assert sub["idx"] == sorted(sub["idx"]) and set(sub["idx"]) <= set(ds["idx"])
    assert T.subsample(ds, 100, seed=0)["idx"] == sub["idx"]
    assert T.subsample(ds, 100, seed=1)["idx"] != sub["idx"]
    assert T.subsample(ds, 277, seed=0) is ds and T.subsample(ds, 10_000, seed=0) is ds


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #


def test_multirc_metrics_hand_example() -> None:
    groups = [0, 0, 0, 1, 1, 2]
    labels = [1, 0, 1, 0, 0, 1]
    preds = [1, 0, 0, 0, 0, 1]  # group 0 misses one option
    m = T.compute_metrics("multirc", preds, labels, groups)
    assert list(m) == ["f1a", "em", "accuracy"]
    assert m["em"] == pytest.approx(2 / 3)
    assert m["f1a"] == pytest.approx(0.8)  # P = 1, R = 2/3
    assert m["accuracy"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="needs groups"):
        T.compute_metrics("multirc", preds, labels)


def test_accuracy_and_logits() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert T.compute_metrics("cb", logits, [1, 0, 2, 2]) == {"accuracy": 0.75}
    assert T.compute_metrics(T.TASKS["sst2"], [0, 0], [1, 1]) == {"accuracy": 0.0}
    with pytest.raises(ValueError, match="do not match"):
        T.compute_metrics("cb", [0, 1], [0])
