"""Bad records in every reader: the error names the file, the 1-based line (or archive member) and the field."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

import ipt_ray.data as T
from data_helpers import CB_ROWS, cb_dir, jsonl_text, raises_data_error


def test_missing_field(tmp_path: Path) -> None:
    rows = [dict(r) for r in CB_ROWS]
    del rows[2]["hypothesis"]
    d = cb_dir(tmp_path, jsonl_text(rows))
    err = raises_data_error(lambda: T.load_task("cb", d), "CB/train.jsonl line 3: field 'hypothesis' missing")
    assert (err.file, err.line, err.field) == ("CB/train.jsonl", 3, "hypothesis")


def test_unknown_label(tmp_path: Path) -> None:
    rows = [dict(r) for r in CB_ROWS]
    rows[6]["label"] = "maybe"
    d = cb_dir(tmp_path, jsonl_text(rows))
    err = raises_data_error(
        lambda: T.load_task("cb", d),
        "CB/train.jsonl line 7: unknown label 'maybe' (allowed: entailment, contradiction, neutral)",
    )
    assert err.field == "label"


def test_wrong_type_field(tmp_path: Path) -> None:
    rows = [dict(r) for r in CB_ROWS]
    rows[1]["premise"] = None
    d = cb_dir(tmp_path, jsonl_text(rows))
    raises_data_error(lambda: T.load_task("cb", d), "line 2", "field 'premise' must be str")


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    d = cb_dir(tmp_path, content)
    raises_data_error(lambda: T.load_task("cb", d), "CB/train.jsonl line 1", "empty")


def test_truncated_json_line(tmp_path: Path) -> None:
    text = jsonl_text(CB_ROWS[:5])
    d = cb_dir(tmp_path, text[: len(text) - 20])  # cut inside line 5
    err = raises_data_error(lambda: T.load_task("cb", d), "CB/train.jsonl line 5: bad JSON")
    assert err.line == 5


def test_truncated_gzip(tmp_path: Path) -> None:
    rows = [dict(r, premise=f"premise {i} " + "x" * (i % 97), idx=i) for i, r in
            enumerate(CB_ROWS * 300)]
    blob = gzip.compress(jsonl_text(rows).encode())
    d = cb_dir(tmp_path, blob[: len(blob) // 2], name="train.jsonl.gz")
    err = raises_data_error(lambda: T.load_task("cb", d), "CB/train.jsonl.gz line ", "gzip")
    assert err.line is not None and 1 < err.line < len(rows)


def test_not_gzip(tmp_path: Path) -> None:
    d = cb_dir(tmp_path, jsonl_text(CB_ROWS), name="train.jsonl.gz")
    raises_data_error(lambda: T.load_task("cb", d), "CB/train.jsonl.gz line 1", "gzip")


def test_boolq_label_must_be_boolean(tmp_path: Path) -> None:
    d = tmp_path / "BoolQ"
    d.mkdir()
    good = {"question": "q", "passage": "p", "idx": 0, "label": True}
    (d / "fewglue_train32.jsonl").write_text(jsonl_text([good, dict(good, idx=1, label=1)]))
    err = raises_data_error(lambda: T.load_split("boolq", d, "train"),
                  "BoolQ/fewglue_train32.jsonl line 2: unknown label 1 (allowed: false, true)")
    assert err.field == "label"


def test_multirc_nested_field(tmp_path: Path) -> None:
    d = tmp_path / "MultiRC"
    d.mkdir()
    rec = {"idx": 0, "passage": {"text": "P", "questions": [
        {"question": "q0", "idx": 0, "answers": [{"text": "a", "idx": 0, "label": 1}]},
        {"question": "q1", "idx": 1, "answers": [{"text": "b", "idx": 1}]},
    ]}}
    (d / "val.jsonl").write_text(jsonl_text([rec]))
    err = raises_data_error(lambda: T.load_split("multirc", d, "validation"),
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
    raises_data_error(lambda: T.load_split("sst2", d, "train"), "SST-2/train.tsv line 3: unknown label '2' (allowed: 0, 1)")
    (d / "train.tsv").write_text("sentence\tlabel\nok\t1\nno label here\n")
    err = raises_data_error(lambda: T.load_split("sst2", d, "train"), "SST-2/train.tsv line 3: field 'label' missing")
    assert err.field == "label"
    (d / "train.tsv").write_text("sentence\tlabel\n")
    raises_data_error(lambda: T.load_split("sst2", d, "train"), "SST-2/train.tsv", "empty")


def test_ag_news_csv(tmp_path: Path) -> None:
    d = tmp_path / "ag_news"
    d.mkdir()
    (d / "test.csv").write_text('Class Index,Title,Description\n"3","T, one","D ""quoted"""\n"1","T2","D2"\n')
    ds = T.load_split("ag_news", d, "validation")
    assert ds["title"] == ["T, one", "T2"] and ds["description"] == ['D "quoted"', "D2"]
    assert ds["label"] == [2, 0]
    (d / "test.csv").write_text('"3","T","D"\n"2","only title"\n')
    err = raises_data_error(lambda: T.load_split("ag_news", d, "validation"),
                  "ag_news/test.csv line 2: field 'description' missing")
    assert err.field == "description"
    (d / "test.csv").write_text('"3","T","D"\n"5","T","D"\n')
    raises_data_error(lambda: T.load_split("ag_news", d, "validation"),
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
    err = raises_data_error(lambda: T.load_split("imdb", tmp_path, "validation"),
                  "aclImdb_test.tar.gz member aclImdb/test/pos/7_2.txt", "rating 2")
    assert err.field == "rating"


def test_iter_jsonl_yields_line_numbers_and_names_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(T.iter_jsonl(str(p))) == [(1, {"a": 1}), (3, {"a": 2})]
    p.write_text('{"a": 1}\n[1, 2]\n')
    err = raises_data_error(lambda: list(T.iter_jsonl(p)), "rows.jsonl line 2: expected a JSON object, got list")
    assert err.line == 2
