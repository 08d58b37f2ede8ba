"""Adapters and the best config's pyfunc model in MLflow: uploaded once, registered once, replayed exactly,
and the registered model, loaded in a fresh offline process, predicts what load_adapter + a forward pass does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from adapters import PARAMS, make_seed_adapters, run_sweep_events
from ipt_ray.results import config_id
from ipt_ray.tracking import SweepTracker
from ipt_ray.tracking.models import ADAPTER_TAG, MODEL_KEY_TAG
from ipt_ray.train.inference import ensemble_probabilities, load_adapters

SEEDS = [0, 1]
EXPERIMENT = "ipt-models"
ROWS = [{"premise": "a cat sat on the mat", "hypothesis": "a cat sat"},
        {"premise": "the dog ran far away", "hypothesis": "the dog slept"}]


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mlflow-template")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        MlflowClient(f"sqlite:///{root / 'mlflow.db'}").search_experiments(max_results=1)
    finally:
        os.chdir(cwd)
    return root / "mlflow.db"


@pytest.fixture
def uri(tmp_path, template_db, monkeypatch) -> str:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="module")
def adapters_dir(bert, tiny_bert, tmp_path_factory) -> Path:
    """``<root>/t0/seed_<s>``: where a sweep's trial t0 saved its seeds' adapters."""
    root = tmp_path_factory.mktemp("adapters")
    make_seed_adapters(bert, tiny_bert, root / "t0", seeds=SEEDS)
    return root


def runs_of(uri: str, kind: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([exp.experiment_id], f"tags.`ipt.kind` = '{kind}'")


def artifact_files(client: MlflowClient, run_id: str, path: str) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        out += artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return out


def test_children_hold_their_adapter_and_the_aggregate_the_registered_model(uri, adapters_dir):
    run_sweep_events(uri, EXPERIMENT, adapters_dir)
    client = MlflowClient(uri)
    children = runs_of(uri, "trial")
    assert len(children) == 2
    for run in children:
        files = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
        assert files == {"adapter/adapter_model.safetensors", "adapter/adapter_config.json"}
        assert len(run.data.tags[ADAPTER_TAG]) == 64
        assert not [a for a in client.list_artifacts(run.info.run_id) if "checkpoint" in a.path]
    (aggregate,) = runs_of(uri, "aggregate")
    model_files = {a.path for a in client.list_artifacts(aggregate.info.run_id, "model")}
    assert {"model/MLmodel", "model/artifacts", "model/input_example.json"} <= model_files
    files = artifact_files(client, aggregate.info.run_id, "model/artifacts")
    assert sorted(Path(f).name for f in files) == sorted(["adapter_config.json", "adapter_model.safetensors"] * 2)
    assert not [f for f in model_files if f.endswith(".pkl")]  # models from code: no pickle
    (version,) = client.search_model_versions("name = 'ipt-rte'")
    tags = version.tags
    assert int(version.version) == 1 and version.run_id == aggregate.info.run_id
    assert tags["ipt.sweep_id"] == "sw-1" and tags["ipt.config_id"] == config_id(PARAMS)
    assert float(tags["accuracy_mean"]) == pytest.approx(0.55) and float(tags["accuracy_std"]) == pytest.approx(0.0707107)
    assert tags[MODEL_KEY_TAG] == aggregate.data.tags[MODEL_KEY_TAG]


def test_a_resumed_driver_uploads_and_registers_nothing_twice(uri, adapters_dir):
    run_sweep_events(uri, EXPERIMENT, adapters_dir)
    client = MlflowClient(uri)
    (aggregate,) = runs_of(uri, "aggregate")
    before = {r.info.run_id: r.data.tags[ADAPTER_TAG] for r in runs_of(uri, "trial")}
    run_sweep_events(uri, EXPERIMENT, adapters_dir)  # the same events again, as a restored Tune replays them
    assert len(client.search_model_versions("name = 'ipt-rte'")) == 1
    assert {r.info.run_id: r.data.tags[ADAPTER_TAG] for r in runs_of(uri, "trial")} == before
    assert [r.info.run_id for r in runs_of(uri, "aggregate")] == [aggregate.info.run_id]


def test_a_trial_ends_with_two_calls_per_run_besides_its_uploads(uri, adapters_dir, monkeypatch):
    """Status and adapter digest share one log_batch, then set_terminated: no set_tag per run (fewer
    requests per trial at scale, bench/scale.py)."""
    calls: list[tuple[str, str]] = []
    for name in ("log_batch", "set_tag", "set_terminated"):
        real = getattr(MlflowClient, name)

        def spy(self, run_id, *args, _real=real, _name=name, **kwargs):
            calls.append((_name, run_id))
            return _real(self, run_id, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, name, spy)
    tracker = SweepTracker(uri, EXPERIMENT, "sw-1", "demo")
    tracker.start_parent("task:\n  name: rte\n", {}, "abc", {})
    tracker.log_result("t0", config_id(PARAMS), PARAMS, {"epoch": 1, **{f"dev_accuracy/seed_{s}": 0.5 for s in SEEDS}},
                       SEEDS, "random_ipt")
    calls.clear()
    tracker.end_trial("t0", "completed", adapters={s: adapters_dir / "t0" / f"seed_{s}" for s in SEEDS})
    children = runs_of(uri, "trial")
    assert sorted(calls) == sorted((name, run.info.run_id) for run in children for name in ("log_batch", "set_terminated"))
    for run in children:
        assert run.data.tags["ipt.status"] == "completed" and len(run.data.tags[ADAPTER_TAG]) == 64
        assert run.info.status == "FINISHED"
        assert {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "adapter")} == {
            "adapter/adapter_model.safetensors", "adapter/adapter_config.json"}


def test_without_a_registry_name_the_model_is_logged_not_registered(uri, adapters_dir):
    run_sweep_events(uri, EXPERIMENT, adapters_dir, register_as=None)
    (aggregate,) = runs_of(uri, "aggregate")
    assert MODEL_KEY_TAG in aggregate.data.tags
    assert MlflowClient(uri).search_registered_models() == []


def test_journaled_model_writes_replay_exactly(uri, adapters_dir, tmp_path, monkeypatch):
    from ipt_ray.tracking import tracker as tracker_module

    journal = tmp_path / "sweep" / "mlflow_journal.jsonl"
    real = tracker_module.SweepTracker._log_best_model_now
    calls = {"n": 0}

    def lost_server(self, payload):  # the server goes away as the model is logged
        calls["n"] += 1
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(tracker_module.SweepTracker, "_log_best_model_now", lost_server)
    monkeypatch.setattr(tracker_module, "is_outage", lambda err: isinstance(err, ConnectionError))
    tracker = run_sweep_events(uri, EXPERIMENT, adapters_dir, journal=journal)
    assert calls["n"] == 1 and tracker.pending() == 1
    assert [json.loads(line)["op"] for line in journal.read_text().splitlines()] == ["log_best_model"]
    monkeypatch.setattr(tracker_module.SweepTracker, "_log_best_model_now", real)
    assert tracker.sync() == 1 and tracker.sync() == 0
    assert len(MlflowClient(uri).search_model_versions("name = 'ipt-rte'")) == 1


def test_the_registered_model_predicts_in_a_fresh_offline_process_as_load_adapter_does(uri, adapters_dir, tmp_path):
    run_sweep_events(uri, EXPERIMENT, adapters_dir)
    pd.DataFrame(ROWS).to_csv(tmp_path / "in.csv", index=False)
    script = ("import mlflow.pyfunc, pandas as pd; "
              "m = mlflow.pyfunc.load_model('models:/ipt-rte/1'); "
              f"m.predict(pd.read_csv({str(tmp_path / 'in.csv')!r})).to_json({str(tmp_path / 'out.json')!r})")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = pd.read_json(tmp_path / "out.json")

    backbone, loaded = load_adapters({s: adapters_dir / "t0" / f"seed_{s}" for s in SEEDS})
    probs = ensemble_probabilities(backbone, list(loaded.values()), ROWS)  # [S, N, C]
    labels = ["entailment", "not_entailment"]
    for s in SEEDS:
        np.testing.assert_allclose(served[[f"seed_{s}_prob_{c}" for c in labels]].to_numpy(), probs[s], atol=1e-5)
    np.testing.assert_allclose(served[[f"prob_{c}" for c in labels]].to_numpy(), probs.mean(0), atol=1e-5)
    assert list(served["label"]) == [labels[i] for i in probs.mean(0).argmax(-1)]
