"""Your own dataset end to end: ``ipt-ray sweep`` on a small CSV (in the Tune trial, and with two Ray Train
workers in one DDP group), ``ipt-ray report`` from MLflow alone, and a dataset as a category source of
``ipt-ray pretrain`` whose prompt table then trains on that dataset."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from ipt_ray.cli import main
from ipt_ray.config import load_config
from ipt_ray.sweep import run_sweep

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TOPICS = {"sport": "the movie was great and the acting was wonderful", "world": "a terrible film with a boring plot",
          "tech": "sports business world technology news today"}


def write_csv(path: Path, n_per_topic: int, offset: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["topic", "headline", "body"])
        for i in range(n_per_topic):
            for topic, text in TOPICS.items():
                writer.writerow([topic, f"{topic} story {offset + i}", f"{text} {offset + i}"])


def experiment(tmp_path: Path, backbone: Path, workers: int) -> Path:
    """An experiment folder: the YAML beside data/{train,dev,test}.csv, named relative to it."""
    folder = tmp_path / "experiment"
    write_csv(folder / "data" / "train.csv", 8)
    write_csv(folder / "data" / "dev.csv", 3, offset=100)
    write_csv(folder / "data" / "test.csv", 4, offset=200)
    data = {
        "task": {"name": "my-news", "max_length": 32, "dataset": {
            "format": "csv", "train": "data/train.csv", "validation": "data/dev.csv", "test": "data/test.csv",
            "text_fields": ["headline", "body"], "label_field": "topic"}},
        "backbone": {"name": str(backbone)},
        "method": {"strategy": "random_ipt", "prompt_length": 4},
        "train": {"epochs": 2, "batch_size": 8, "seeds": [0, 1], "output_dir": str(tmp_path / "runs"),
                  "progress": False},
        "sweep": {"searcher": "grid", "max_concurrent_trials": 1, "search_space": {
            "method.strategy": {"type": "choice", "values": ["prompt_tuning", "encoder_ipt"]}}},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "custom"},
        "cluster": {"num_workers": workers, "cpus_per_worker": 1},
    }
    path = folder / "news.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("workers", [0, 2], ids=["in-trial", "ddp-two-cpu-workers"])
def test_sweep_and_report_on_a_csv(workers, tiny_bert, tmp_path, monkeypatch, capsys):
    path = experiment(tmp_path, tiny_bert, workers)
    monkeypatch.chdir(tmp_path)  # not the YAML's folder: its data paths still resolve beside it
    out = run_sweep(load_config(path), path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("custom").experiment_id], max_results=100)
    assert Counter(r.data.tags.get("ipt.kind") for r in runs) == {"parent": 1, "trial": 4, "aggregate": 1}
    trials = [r for r in runs if r.data.tags.get("ipt.kind") == "trial"]
    assert {r.data.tags["ipt.strategy"] for r in trials} == {"prompt_tuning", "encoder_ipt"}
    for run in trials:
        assert run.data.tags["ipt.status"] == "completed"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "dev_accuracy")] == [1, 2]
        assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0  # the dataset's own test split, scored
        if workers:  # every worker read the CSV and joined one DDP group
            assert run.data.metrics["world_size"] == workers
    summary = out["summary"]
    assert len(summary.configs) == 2 and all(c.n_seeds == 2 for c in summary.configs)
    capsys.readouterr()
    assert main(["report", out["name"], "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--experiment", "custom"]) == 0
    rebuilt = capsys.readouterr().out
    for config in summary.configs:
        assert config.config_id in rebuilt


def test_a_dataset_as_pretraining_source_then_its_table_trains_on_it(tiny_bert, tmp_path, capsys):
    path = experiment(tmp_path, tiny_bert, 0)
    folder = path.parent
    write_csv(folder / "by-file" / "stories.csv", 6)
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"categories": ["People and self", "History and events", "Technology"],
                                        "datasets": {
                                            "my-news": {"kind": "dataset", "labels": {
                                                "sport": "People and self", "world": "History and events",
                                                "tech": "Technology"}},
                                            "my-files": {"kind": "dataset", "files": {"stories.csv": "Technology"}}}}))
    config = yaml.safe_load(path.read_text())
    described = config["task"]["dataset"]
    config["pretrain"] = {
        "manifest": "manifest.yaml", "epochs": 1, "batch_size": 8, "max_length": 32, "channels": 4,
        "output": str(tmp_path / "table"),
        "sources": [{"kind": "dataset", "name": "my-news", "dataset": described},
                    {"kind": "dataset", "name": "my-files", "split": "train", "max_rows": 10, "dataset": {
                        "format": "csv", "train": "by-file/*.csv", "text_fields": ["headline", "body"]}}]}
    pretrain_yaml = folder / "pretrain.yaml"
    pretrain_yaml.write_text(yaml.safe_dump(config))
    assert main(["pretrain", str(pretrain_yaml), "--no-tracking"]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "table").is_dir(), printed
    # every split of the labelled source (24 + 9 + 12 rows), 10 of the 18 rows of the by-file one
    assert "ipt-ray pretrain: 55 texts from my-news, my-files" in printed, printed
    # The table from the user's data initialises Pretrained IPT on the same data.
    assert main(["train", str(path), "--set", "method.strategy=pretrained_ipt", "--set",
                 f"method.table_init={tmp_path / 'table'}", "--set", "train.seeds=[0]", "--set", "train.epochs=1",
                 "--run-dir", str(tmp_path / "runs" / "pretrained")]) == 0
    assert (tmp_path / "runs" / "pretrained" / "seed_0" / "adapter_model.safetensors").is_file()
