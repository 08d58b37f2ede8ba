"""Your own dataset (``task.dataset``): every format loads into the built-in tasks' schema, paths resolve
against the YAML, the protocol applies unchanged, and bad data is refused precisely before anything runs.

The bad-data cases go through ``ipt-ray validate`` (config-level) or ``ipt-ray train`` and ``ipt-ray sweep``
(preflight) against a folder that already holds a runs folder and an MLflow store with a finished run; the
guards make any training, tokenising, weight loading, Ray start or MLflow access fail the test, and every
file and MLflow row is compared with the snapshot taken before.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ipt_ray.cli import main
from ipt_ray.config import ConfigError, PretrainConfig, TaskConfig, load_config, validate_config
from ipt_ray.data import DataError, build_corpus, custom_task, load_manifest, load_splits, task_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOPICS = ("world", "sport", "tech")
ROWS = [{"topic": TOPICS[i % 3], "headline": f"{TOPICS[i % 3]} headline {i}", "body": f"the body of story {i}"}
        for i in range(12)]


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path_factory, monkeypatch):
    """``datasets.load_dataset`` caches what it reads: here, never in the user's home."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf-datasets"))


def write(path: Path, rows: list[dict[str, Any]], fmt: str | None = None) -> str:
    """``rows`` as a csv / tsv / json / jsonl / parquet file (format from the suffix unless given)."""
    fmt = fmt or path.suffix[1:]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("csv", "tsv"):
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def news_task(train: Any, fmt: str = "csv", task: dict[str, Any] | None = None, **dataset: Any) -> TaskConfig:
    return TaskConfig(name="my-news", **(task or {}), dataset={"format": fmt, "train": train, "label_field": "topic",
                                                               "text_fields": ["headline", "body"], **dataset})


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_each_format_loads_into_the_task_schema(fmt, tmp_path):
    task = news_task(write(tmp_path / f"train.{fmt}", ROWS), fmt,
                     validation=write(tmp_path / f"dev.{fmt}", ROWS[:6]), test=write(tmp_path / f"test.{fmt}", ROWS[6:]))
    spec, data = custom_task(task)
    assert spec.name == "my-news" and spec.label_names == ("sport", "tech", "world")  # sorted values of train
    assert spec.label_words == spec.label_names and spec.metrics == ("accuracy",)
    assert list(data) == ["train", "validation", "test"]
    for name, rows in (("train", ROWS), ("validation", ROWS[:6]), ("test", ROWS[6:])):
        ds = data[name]
        assert ds.features == spec.features() and ds.column_names == list(spec.columns)
        assert ds["headline"] == [r["headline"] for r in rows] and ds["body"] == [r["body"] for r in rows]
        assert [spec.label_names[i] for i in ds["label"]] == [r["topic"] for r in rows]
        assert ds["idx"] == list(range(len(rows)))


def test_csv_cells_are_text_and_integer_labels_sort_as_numbers(tmp_path):
    rows = [{"topic": t, "headline": h, "body": "NA"} for t, h in (("10", "007"), ("2", "null"), ("1", "x"))] * 2
    spec, data = custom_task(news_task(write(tmp_path / "train.csv", rows)))
    assert data["train"]["headline"][:3] == ["007", "null", "x"] and data["train"]["body"][0] == "NA"
    assert spec.label_names == ("1", "10", "2")  # CSV cells are text: labels sort as strings
    jrows = [{**r, "topic": int(r["topic"])} for r in rows]
    spec, _ = custom_task(news_task(write(tmp_path / "train.jsonl", jrows), "jsonl"))
    assert spec.label_names == ("1", "2", "10")  # JSON integers sort as numbers


def test_a_headerless_csv_is_read_with_column_names(tmp_path):
    """AG News' files have no header row: ``column_names`` names the columns and the first row is data."""
    path = tmp_path / "train.csv"
    path.write_text("".join(f'"{r["topic"]}","{r["headline"]}","{r["body"]}"\n' for r in ROWS))
    spec, data = custom_task(news_task(str(path), column_names=["topic", "headline", "body"]))
    assert data["train"]["headline"] == [r["headline"] for r in ROWS]  # all 12 rows, the first one included
    assert spec.label_names == ("sport", "tech", "world")
    with pytest.raises(ValueError, match=r"'topic' not in column_names \(label, headline, body\)"):
        news_task(str(path), column_names=["label", "headline", "body"])
    with pytest.raises(ValueError, match=r"column_names is for headerless csv / tsv files \(format is 'jsonl'\)"):
        news_task(str(path), "jsonl", column_names=["topic", "headline", "body"])


def test_json_boolean_labels_read_as_json_spells_them(tmp_path):
    """BoolQ's JSONL has true/false labels: they become the classes 'false' and 'true'."""
    rows = [{"topic": t, "headline": "h", "body": "b"} for t in (True, False, True)] * 2
    spec, data = custom_task(news_task(write(tmp_path / "train.jsonl", rows), "jsonl"))
    assert spec.label_names == ("false", "true")
    assert [spec.label_names[i] for i in data["train"]["label"]] == ["true", "false", "true"] * 2


def test_labels_label_words_and_template_come_from_the_yaml(tmp_path):
    task = news_task(write(tmp_path / "train.csv", ROWS), labels=["world", "sport", "tech"],
                     label_words=["global", "game", "computer"], template="{headline}: {body} It is about {mask}.")
    spec, data = custom_task(task)
    assert spec.label_names == ("world", "sport", "tech") and spec.label_words == ("global", "game", "computer")
    assert data["train"]["label"][:3] == [0, 1, 2]
    assert spec.render(data["train"][0], "[MASK]") == "world headline 0: the body of story 0 It is about [MASK]."
    assert custom_task(news_task(write(tmp_path / "t.csv", ROWS)))[0].template == "{headline} {body} {mask}."


def test_a_hub_dataset_is_read_by_name_config_and_split(monkeypatch):
    calls = []
    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})

    def fake_load_dataset(name, config=None, *, split):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict({"text": ["bad", "good", "fine"], "label": [0, 1, 1]}, features=feats)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = TaskConfig(name="reviews", dataset={"format": "hf", "train": "someone/reviews", "hf_config": "en",
                                               "validation": "dev", "test": "other/reviews:test",
                                               "text_fields": ["text"], "label_field": "label"})
    spec, data = custom_task(task)
    assert calls == [("someone/reviews", "en", "train"), ("someone/reviews", "en", "dev"), ("other/reviews", "en", "test")]
    assert spec.label_names == ("neg", "pos")  # a ClassLabel's names, in its order
    assert data["validation"]["label"] == [0, 1, 1] and data["test"]["text"] == ["bad", "good", "fine"]


def test_paths_globs_and_lists_are_relative_to_the_yaml(tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    write(exp / "data" / "part-1.csv", ROWS[:6])
    write(exp / "data" / "part-2.csv", ROWS[6:])
    write(exp / "dev.csv", ROWS)
    (exp / "e.yaml").write_text(yaml.safe_dump({"task": {"name": "my-news", "dataset": {
        "format": "csv", "train": "data/part-*.csv", "validation": ["dev.csv"], "text_fields": ["headline", "body"],
        "label_field": "topic"}}}))
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "dev.csv", ROWS[:1])  # a file of that name where the command runs is not the YAML's
    monkeypatch.chdir(elsewhere)
    cfg = load_config("../exp/e.yaml")
    assert cfg.task.dataset.train == str(exp / "data" / "part-*.csv")
    assert cfg.task.dataset.validation == [str(exp / "dev.csv")]
    _, data = custom_task(cfg.task)
    assert data["train"]["headline"] == [r["headline"] for r in ROWS] and data["train"]["idx"] == list(range(12))
    assert len(data["validation"]) == 12
    hub = load_config("../exp/e.yaml", ["task.dataset.format=hf", "task.dataset.train=org/name",
                                        "task.dataset.validation=dev"])
    assert (hub.task.dataset.train, hub.task.dataset.validation) == ("org/name", "dev")  # names, not paths


def test_the_protocol_applies_unchanged(tmp_path):
    train = write(tmp_path / "train.csv", ROWS * 2)
    spec, splits = load_splits(news_task(train, test=write(tmp_path / "test.csv", ROWS)))
    assert set(splits) == {"train", "dev", "test"}  # no validation: a stratified dev carved from train
    assert len(splits["train"]) + len(splits["dev"]) == 24 and not set(splits["train"]["idx"]) & set(splits["dev"]["idx"])
    assert len(set(splits["dev"]["label"])) == 3
    _, few = load_splits(news_task(train, validation=write(tmp_path / "dev.csv", ROWS), task={"few_shot_k": 2}))
    assert len(few["train"]) == 6 and len(few["dev"]) == 6 and len(few["test"]) == 12
    _, small = load_splits(news_task(train, validation=write(tmp_path / "dev2.csv", ROWS),
                                       task={"max_train_samples": 6}))
    assert len(small["train"]) == 6 and spec.num_labels == 3


def test_a_saved_adapters_labels_need_no_files(tmp_path):
    task = news_task(str(tmp_path / "gone.csv"))
    assert task_spec(task, ["b", "a"]).label_names == ("b", "a")
    assert task_spec(news_task(str(tmp_path / "gone.csv"), labels=[3, 1])).label_names == ("3", "1")
    with pytest.raises(DataError, match="no such file"):
        task_spec(task)


def test_two_datasets_of_one_name_never_share_tokenised_inputs(tmp_path, tiny_bert):
    from ipt_ray.train.inputs import prepared_inputs

    base = {"backbone": {"name": str(tiny_bert)}, "train": {"progress": False}}
    first = validate_config({**base, "task": news_task(write(tmp_path / "a.csv", ROWS)).model_dump()})
    other = [{**r, "headline": "sports business world " + r["headline"]} for r in ROWS]
    second = validate_config({**base, "task": news_task(write(tmp_path / "b.csv", other)).model_dump()})
    a, b = prepared_inputs(first), prepared_inputs(second)
    assert a.rows["train"][0]["input_ids"] != b.rows["train"][0]["input_ids"]
    assert prepared_inputs(second) is b


def test_a_dataset_is_a_category_source_for_pretraining(tmp_path):
    write(tmp_path / "news.csv", ROWS)
    write(tmp_path / "files" / "science.csv", [{"text": "stars and planets"}, {"text": "atoms"}])
    write(tmp_path / "files" / "games.csv", [{"text": "a hockey game"}])
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"categories": ["Science", "Sport", "World"], "datasets": {
        "my-news": {"kind": "dataset", "labels": {"world": "World", "sport": "Sport", "tech": "Science"}},
        "my-files": {"kind": "dataset", "files": {"science.csv": "Science", "games.csv": "Sport"}}}}))
    cfg = PretrainConfig(manifest=str(manifest), sources=[
        {"kind": "dataset", "name": "my-news", "dataset": {"format": "csv", "train": str(tmp_path / "news.csv"),
                                                           "text_fields": ["headline", "body"], "label_field": "topic"}},
        {"kind": "dataset", "name": "my-files", "dataset": {"format": "csv", "train": str(tmp_path / "files" / "*.csv"),
                                                            "text_fields": ["text"]}}])
    corpus = build_corpus(cfg, load_manifest(manifest))
    assert len(corpus) == 15 and corpus.texts[0] == "world headline 0 the body of story 0"
    assert corpus.counts() == {"Science": 4 + 2, "Sport": 4 + 1, "World": 4}
    assert corpus.texts[12:] == ["a hockey game", "stars and planets", "atoms"]  # games.csv sorts first
    with pytest.raises(ConfigError, match="kind 'dataset' needs dataset"):
        validate_config({"pretrain": {"sources": [{"kind": "dataset", "name": "x"}]}})


# ---------------------------------------------------------------- bad data, refused before anything runs


@dataclass
class World:
    root: Path  # snapshotted: runs/ and store/mlflow.db
    scratch: Path  # the data files and YAMLs of the cases
    base: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_backbones) -> World:
    from mlflow.tracking import MlflowClient

    root, scratch = tmp_path_factory.mktemp("custom-world"), tmp_path_factory.mktemp("custom-scratch")
    (root / "store").mkdir()
    (root / "runs" / "existing" / "seed_0").mkdir(parents=True)
    (root / "runs" / "existing" / "seed_0" / "adapter_model.safetensors").write_bytes(b"trained before")
    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("custom", artifact_location=(root / "store" / "mlartifacts").as_uri())
    run = client.create_run(exp, run_name="finished-before", tags={"ipt.kind": "trial"})
    client.log_metric(run.info.run_id, "dev_accuracy", 0.5, step=1)
    client.set_terminated(run.info.run_id, "FINISHED")
    base = {
        "task": {"name": "my-news", "max_length": 32, "dataset": {
            "format": "csv", "train": write(scratch / "good" / "train.csv", ROWS),
            "validation": write(scratch / "good" / "dev.csv", ROWS[:6]), "text_fields": ["headline", "body"],
            "label_field": "topic"}},
        "backbone": {"name": str(tiny_backbones["bert"])},
        "method": {"strategy": "random_ipt", "prompt_length": 4},
        "train": {"epochs": 1, "batch_size": 8, "seeds": [0], "output_dir": str(root / "runs"), "progress": False},
        "sweep": {"num_samples": 1, "search_space": {"method.prompt_length": {"type": "choice", "values": [4, 8]}}},
        "tracking": {"uri": uri, "experiment": "custom"},
        "cluster": {"num_workers": 0},
    }
    return World(root, scratch, base)


def snapshot(root: Path) -> dict[str, Any]:
    files = {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in sorted(root.rglob("*")) if p.is_file()}
    with sqlite3.connect(f"file:{root / 'store' / 'mlflow.db'}?mode=ro", uri=True) as con:
        rows = [con.execute(f"select * from {t} order by 1").fetchall() for t in ("runs", "metrics", "tags")]
    con.close()
    return {"files": files, "mlflow": rows}


@pytest.fixture
def guards(monkeypatch):
    """Anything that trains, tokenises, loads weights, starts Ray or opens MLflow fails the test."""
    import ray

    import ipt_ray.backbone
    import ipt_ray.backbone.loading
    import ipt_ray.sweep.driver
    import ipt_ray.sweep.trial
    import ipt_ray.tracking
    import ipt_ray.tracking.client
    import ipt_ray.tracking.tracker
    import ipt_ray.train
    import ipt_ray.train.inputs
    import ipt_ray.train.loop

    def forbid(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"{what} was reached: the bad data was not caught up front")
        return refuse

    monkeypatch.setattr(ray, "init", forbid("ray.init"))
    for modules, name in (((ipt_ray.train, ipt_ray.train.loop, ipt_ray.sweep.trial), "train_loop_per_worker"),
                          ((ipt_ray.train, ipt_ray.train.inputs, ipt_ray.train.loop), "prepared_inputs"),
                          ((ipt_ray.backbone, ipt_ray.backbone.loading, ipt_ray.train.inputs), "load_backbone"),
                          ((ipt_ray.tracking, ipt_ray.tracking.client, ipt_ray.sweep.driver), "check_reachable"),
                          ((ipt_ray.tracking, ipt_ray.tracking.tracker, ipt_ray.sweep.driver), "SweepTracker"),
                          ((ipt_ray.tracking.client, ipt_ray.tracking.tracker), "MlflowClient")):
        for module in modules:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbid(name))


HEADER = "topic,headline,body\n"


def text_file(world: World, case: str, name: str, content: str | bytes) -> str:
    path = world.scratch / case / name
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return str(path)


def train_file(name: str, content: str | bytes, fmt: str = "csv") -> Callable[[World, str], dict[str, Any]]:
    """A case whose train file is ``content`` (format ``fmt``)."""
    def patch(world: World, case: str) -> dict[str, Any]:
        path = text_file(world, case, name, content)
        return {"format": fmt, "train": path, **({"validation": None} if fmt != "csv" else {})}
    return patch


def dataset(**fields: Any) -> Callable[[World, str], dict[str, Any]]:
    return lambda world, case: fields


@dataclass
class Case:
    id: str
    patch: Callable[[World, str], dict[str, Any]]  # over task.dataset
    error: type[BaseException]
    match: str
    commands: tuple[str, ...] = ("train", "sweep")  # "validate": caught by the typed config
    verbalizer: bool = False


CASES = [
    Case("missing-column", train_file("train.csv", "topic,headline,text\nsport,a,b\nworld,c,d\n"), DataError,
         r"train\.csv: no column 'body' \(task\.dataset\.text_fields\); its columns: topic, headline, text"),
    Case("dev-label-train-lacks",
         lambda w, c: {"validation": text_file(w, c, "dev.csv", HEADER + "sport,a,b\ncooking,c,d\n")}, DataError,
         r"dev\.csv: row 2: label 'cooking' does not occur in train \(sport, tech, world\)"),
    Case("test-label-train-lacks",
         lambda w, c: {"test": text_file(w, c, "test.csv", HEADER + "sport,a,b\nweather,c,d\n")}, DataError,
         r"test\.csv: row 2: label 'weather' does not occur in train"),
    Case("empty-file", train_file("train.csv", ""), DataError, r"train\.csv line 1: file is empty \(no records\)"),
    Case("header-only", train_file("train.csv", HEADER), DataError, r"train\.csv: file has no rows"),
    Case("empty-text", train_file("train.csv", HEADER + "sport,a,b\nworld,c,d\ntech, ,e\n"), DataError,
         r"train\.csv: row 3: text field 'headline' is empty"),
    Case("empty-label", train_file("train.csv", HEADER + "sport,a,b\n,c,d\n"), DataError,
         r"train\.csv: row 2: label field 'topic' is empty"),
    Case("mixed-label-types", train_file("train.jsonl", '{"topic": 1, "headline": "a", "body": "b"}\n'
                                                        '{"topic": "world", "headline": "c", "body": "d"}\n', "jsonl"),
         DataError, r"labels of mixed types \(int first in \S*train\.jsonl row 1, str first in \S*train\.jsonl row 2\)"),
    Case("labels-do-not-cover", dataset(labels=["sport", "world"]), DataError,
         r"train\.csv: row 3: label 'tech' is not one of task\.dataset\.labels \(sport, world\)"),
    Case("label-without-rows", dataset(labels=["sport", "world", "tech", "food"]), DataError,
         r"label\(s\) 'food' of task\.dataset\.labels have no train rows"),
    Case("template-without-mask", dataset(template="{headline} {body}"), ConfigError,
         r"task\.dataset: .*template '\{headline\} \{body\}' has no \{mask\}", commands=("validate",)),
    Case("template-unknown-column", dataset(template="{headline} {summary} {mask}"), ConfigError,
         r"template .* names 'summary', not one of text_fields \(headline, body\)", commands=("validate",)),
    Case("label-words-count", dataset(label_words=["a", "b"]), ConfigError,
         r"task\.dataset\.label_words has 2 words for the 3 labels found in train \(sport, tech, world\)"),
    Case("label-words-not-one-token", dataset(label_words=["sports", "wonderfulness", "world"]), ConfigError,
         r"label word 'wonderfulness' of task\.dataset\.label_words is 3 tokens for backbone '.*bert-mlm' "
         r"\(wonderful ##n ##ess\)", verbalizer=True),
    Case("labels-as-words-not-one-token", dataset(), ConfigError,  # without label_words the labels are the words
         r"label word 'sport' of the labels \(task\.dataset\.label_words defaults to them\) is 3 tokens",
         verbalizer=True),
    Case("bad-csv-row", train_file("train.csv", HEADER + "sport,a,b\nworld,c,d,e\n"), DataError,
         r"train\.csv: not a valid CSV file \(ParserError: .*Expected 3 fields in line 3, saw 4\)"),
    Case("bad-jsonl-line", train_file("train.jsonl", '{"topic": "a", "headline": "a", "body": "b"}\n{"topic": \n',
                                      "jsonl"), DataError, r"train\.jsonl line 2: bad JSON"),
    Case("not-utf8", train_file("train.csv", (HEADER + "sport,a,b\nworld,caf\xe9,d\n").encode("latin-1")), DataError,
         r"train\.csv line 3: not valid UTF-8"),
    Case("not-parquet", train_file("train.parquet", "not parquet at all", "parquet"), DataError,
         r"train\.parquet: not a valid Parquet file"),
    Case("no-such-file", lambda w, c: {"train": str(w.scratch / c / "missing.csv")}, DataError,
         r"task\.dataset\.train: no such file '.*missing\.csv'"),
    Case("yaml-boolean-labels", dataset(labels=[True, False]), ConfigError,
         r"task\.dataset\.labels: .*holds booleans: YAML reads yes/no, true/false and on/off so; quote them",
         commands=("validate",)),
    Case("builtin-name", lambda w, c: {}, ConfigError, r"task\.name 'cb' is a built-in task", commands=("validate",)),
]


def case_yaml(world: World, case: Case) -> Path:
    base = json.loads(json.dumps(world.base))
    base["task"]["dataset"].update(case.patch(world, case.id))
    if case.id == "builtin-name":
        base["task"]["name"] = "cb"
    if case.verbalizer:
        base["backbone"]["name"] = str(Path(base["backbone"]["name"]).parent / "bert-mlm")
        base["method"]["head"] = "verbalizer"
    path = world.scratch / "yaml" / f"{case.id}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data_is_refused_before_anything_runs(case, world, guards, capsys):
    path = case_yaml(world, case)
    before = snapshot(world.root)
    for command in case.commands:
        assert main([command, str(path)]) == 2, command
        err = capsys.readouterr().err
        assert re.search(case.match, err), (command, err)
    assert snapshot(world.root) == before


def test_the_cases_cover_the_issue(world, guards, capsys):
    assert len(CASES) >= 10 and len({c.id for c in CASES}) == len(CASES)
    good = world.scratch / "yaml" / "good.yaml"
    good.write_text(yaml.safe_dump(world.base))
    assert main(["validate", str(good)]) == 0
    from ipt_ray.preflight import preflight

    preflight(load_config(good))  # the base of every case passes: each case fails for its own reason
