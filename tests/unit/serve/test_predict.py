"""``ipt-ray predict``: a folder, a folder of seeds, an MLflow child run and a registered model on csv / jsonl."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from adapters import make_seed_adapters, run_sweep_events
from ipt_ray.cli.main import main
from ipt_ray.serve import resolve_source
from ipt_ray.train.inference import ensemble_probabilities, load_adapters

ROWS = [{"premise": "a cat sat on the mat", "hypothesis": "a cat sat"},
        {"premise": "the dog ran far away", "hypothesis": "the dog slept"},
        {"premise": "it rained", "hypothesis": "the street is wet"}]
LABELS = ["entailment", "not_entailment"]


@pytest.fixture(scope="module")
def adapters_dir(bert, tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    make_seed_adapters(bert, tiny_bert, root / "t0", seeds=(0, 1))
    return root


def expected(folders) -> np.ndarray:
    backbone, loaded = load_adapters(folders)
    return ensemble_probabilities(backbone, sorted(loaded.values(), key=lambda a: a.seed), ROWS)


def test_predict_one_seed_from_a_folder_csv_in_csv_out(adapters_dir, tmp_path, capsys):
    pd.DataFrame(ROWS).assign(id=[1, 2, 3]).to_csv(tmp_path / "in.csv", index=False)
    folder = adapters_dir / "t0" / "seed_1"
    assert main(["predict", str(folder), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"),
                 "--batch-size", "2"]) == 0
    assert "predicted 3 rows" in capsys.readouterr().out
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns[:3]) == ["premise", "hypothesis", "id"]
    probs = expected({"seed_1": folder})[0]
    np.testing.assert_allclose(out[[f"prob_{c}" for c in LABELS]].to_numpy(), probs, atol=1e-5)
    assert list(out["label"]) == [LABELS[i] for i in probs.argmax(-1)]
    assert "seed_0_label" not in out.columns


def test_ensemble_averages_the_seeds_and_text_fields_map_columns_jsonl(adapters_dir, tmp_path):
    renamed = pd.DataFrame(ROWS).rename(columns={"premise": "a", "hypothesis": "b"})
    renamed.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    assert main(["predict", str(adapters_dir / "t0" / "seed_0"), "--ensemble", "--text-fields", "a,b",
                 "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.csv"), "--no-progress"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    probs = expected({s: adapters_dir / "t0" / s for s in ("seed_0", "seed_1")})
    np.testing.assert_allclose(out[[f"prob_{c}" for c in LABELS]].to_numpy(), probs.mean(0), atol=1e-5)
    np.testing.assert_allclose(out[[f"seed_1_prob_{c}" for c in LABELS]].to_numpy(), probs[1], atol=1e-5)


def test_missing_columns_are_a_message(adapters_dir, tmp_path, capsys):
    pd.DataFrame({"text": ["x"]}).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(adapters_dir / "t0"), "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 2
    assert "no column(s) ['premise', 'hypothesis']" in capsys.readouterr().err


def test_mlflow_sources_a_child_run_and_a_registered_model(adapters_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_sweep_events(uri, "ipt-predict", adapters_dir)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ipt-predict")
    (child,) = client.search_runs([exp.experiment_id], "tags.`ipt.seed` = '1'")
    one = resolve_source(child.info.run_id, cache=tmp_path / "cache")
    assert list(one) == ["seed_1"]
    both = resolve_source(child.info.run_id, ensemble=True, cache=tmp_path / "cache")
    registered = resolve_source("models:/ipt-rte/1", cache=tmp_path / "cache")
    assert list(both) == list(registered) == ["seed_0", "seed_1"]
    np.testing.assert_allclose(expected(registered), expected({s: adapters_dir / "t0" / s for s in both}), atol=1e-6)
    pd.DataFrame(ROWS).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", "models:/ipt-rte/1", "--input", "in.csv", "--output", "out.csv"]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 3
    assert main(["predict", "models:/ipt-rte/7", "--input", "in.csv", "--output", "out.csv"]) == 2
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path / "cache")  # no ./mlflow.db here: the registry named by tracking_uri is read
    assert list(resolve_source("models:/ipt-rte/1", tracking_uri=uri, cache=tmp_path / "c2")) == ["seed_0", "seed_1"]
