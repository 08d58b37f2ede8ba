"""Reading a sweep back from MLflow: seed results (last and best epoch), its context, report uploads."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from ipt_ray.results import SeedResult, aggregate, config_id
from ipt_ray.tracking import log_report_artifacts, results_from_mlflow, sweep_context_from_mlflow


def test_results_from_mlflow_equals_the_fed_values(tmp_path, monkeypatch):
    from ipt_ray.tracking import SweepTracker, find_sweep_runs

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "ipt-report", "sweep-7", "report-test")
    tracker.start_parent("{}", {}, "v0", {})
    configs = {"t0": {"method.prompt_length": 8, "method.strategy": "random_ipt", "train.lr": 0.01},
               "t1": {"method.prompt_length": 16, "method.strategy": "random_ipt", "train.lr": 0.003}}
    fed: dict[tuple[str, int], float] = {}
    for epoch in (1, 2):
        for i, (trial, params) in enumerate(configs.items()):
            result = {"epoch": epoch}
            for s in (0, 1, 2):
                result[f"dev_accuracy/seed_{s}"] = fed[(trial, s)] = 0.6 + 0.1 * i + 0.01 * s + 0.05 * epoch
            tracker.log_result(trial, config_id(params), params, result, [0, 1, 2], "random_ipt")
    tracker.end_trial("t0", "completed")
    tracker.end_trial("t1", "early_stopped")

    results = results_from_mlflow(find_sweep_runs(uri, "ipt-report", "report-test"), "accuracy")
    assert sorted((r.trial_id, r.seed, r.value) for r in results) == sorted((t, s, v) for (t, s), v in fed.items())
    for r in results:
        assert r.config_id == config_id(configs[r.trial_id])
        assert r.params == configs[r.trial_id]  # types restored: int, float, str
        assert r.status == {"t0": "completed", "t1": "early_stopped"}[r.trial_id]
    summary = aggregate(results, "accuracy")
    from_tune = aggregate([SeedResult(config_id(configs[t]), t, s, v, configs[t], "completed")
                           for (t, s), v in fed.items()], "accuracy")
    assert [(c.config_id, c.mean, c.std, c.values) for c in summary.configs] == [
        (c.config_id, c.mean, c.std, c.values) for c in from_tune.configs]
    assert not (Path(os.getcwd()) / "mlruns").exists()


def _fake_run(run_id, cid, seed, last, status="completed"):
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, experiment_id="1"),
                           data=SimpleNamespace(tags={"ipt.config_id": cid, "ipt.seed": str(seed), "ipt.trial_id": cid,
                                                      "ipt.status": status, "ipt.sweep_id": "sw",
                                                      "mlflow.parentRunId": "parent"},
                                                params={"train.lr": "0.01", "seed": str(seed)},
                                                metrics={"dev_accuracy": last}))


def test_results_from_mlflow_best_epoch_by_seed_mean():
    curves = {"a0": [0.5, 0.8, 0.6], "a1": [0.7, 0.6, 0.65],  # mean by epoch: 0.6, 0.7, 0.625 -> epoch 2
              "b0": [0.4, 0.4], "b1": [0.5, 0.5]}  # a tie: the earliest epoch
    runs = [_fake_run("a0", "a", 0, 0.6), _fake_run("a1", "a", 1, 0.65), _fake_run("b0", "b", 0, 0.4),
            _fake_run("b1", "b", 1, 0.5)]
    calls = []

    def history(run_id, key):
        calls.append((run_id, key))
        return [SimpleNamespace(step=i + 1, value=v) for i, v in enumerate(curves[run_id])]

    last = {(r.config_id, r.seed): r.value for r in results_from_mlflow(runs, "accuracy")}
    assert last == {("a", 0): 0.6, ("a", 1): 0.65, ("b", 0): 0.4, ("b", 1): 0.5}
    best = {(r.config_id, r.seed): r.value
            for r in results_from_mlflow(runs, "accuracy", epoch="best", history=history)}
    assert best == {("a", 0): 0.8, ("a", 1): 0.6, ("b", 0): 0.4, ("b", 1): 0.5}
    assert set(calls) == {(r, "dev_accuracy") for r in curves}
    low = {(r.config_id, r.seed): r.value for r in results_from_mlflow(runs, "accuracy", epoch="best", history=history,
                                                                        mode="min")}
    assert low[("a", 0)] == 0.5 and low[("a", 1)] == 0.7  # epoch 1 has the lowest mean
    with pytest.raises(ValueError, match="history"):
        results_from_mlflow(runs, "accuracy", epoch="best")
    with pytest.raises(ValueError, match="epoch"):
        results_from_mlflow(runs, "accuracy", epoch="first")


def test_results_from_mlflow_best_epoch_reads_test_at_the_dev_epoch():
    dev = {"a0": [0.5, 0.8, 0.6], "a1": [0.7, 0.6, 0.65]}  # dev seed means: epoch 2
    test = {"a0": [0.9, 0.4, 0.95], "a1": [0.9, 0.5, 0.99]}  # test would pick epoch 3
    runs = [_fake_run("a0", "a", 0, 0.6), _fake_run("a1", "a", 1, 0.65)]
    for run in runs:
        run.data.metrics["test_accuracy"] = test[run.info.run_id][-1]
    calls = []

    def history(run_id, key):
        calls.append((run_id, key))
        curve = (dev if key == "dev_accuracy" else test)[run_id]
        return [SimpleNamespace(step=i + 1, value=v) for i, v in enumerate(curve)]

    last = {r.seed: (r.value, r.test) for r in results_from_mlflow(runs, "accuracy")}
    assert last == {0: (0.6, 0.95), 1: (0.65, 0.99)}
    best = {r.seed: (r.value, r.test) for r in results_from_mlflow(runs, "accuracy", epoch="best", history=history)}
    assert best == {0: (0.8, 0.4), 1: (0.6, 0.5)}
    assert set(calls) == {(r, k) for r in dev for k in ("dev_accuracy", "test_accuracy")}
    summary = aggregate(results_from_mlflow(runs, "accuracy", epoch="best", history=history), "accuracy")
    assert summary.best.test_values == {0: 0.4, 1: 0.5}


class _FakeClient:
    def __init__(self, yaml_text=None, aggregate=True):
        self.yaml_text, self.aggregate, self.logged = yaml_text, aggregate, []

    def get_run(self, run_id):
        return SimpleNamespace(info=SimpleNamespace(run_name="my-sweep"),
                               data=SimpleNamespace(params={"task": "cb", "seeds": "0,1"},
                                                    tags={"mlflow.runName": "my-sweep"}))

    def download_artifacts(self, run_id, path, dst):
        if self.yaml_text is None:
            raise OSError("no such artifact")
        target = Path(dst) / path
        target.write_text(self.yaml_text)
        return str(target)

    def search_runs(self, experiment_ids, filter_string, max_results=None):
        self.filter = filter_string
        return [SimpleNamespace(info=SimpleNamespace(run_id="agg"))] if self.aggregate else []

    def log_artifact(self, run_id, path, artifact_path=None):
        self.logged.append((run_id, Path(path).name, artifact_path))


def test_sweep_context_and_artifact_upload_through_a_duck_typed_client(tmp_path):
    runs = [_fake_run("r0", "a", 0, 0.5)]
    ctx = sweep_context_from_mlflow(_FakeClient("task:\n  name: rte\nmethod:\n  strategy: ppt\n"), runs)
    assert (ctx.name, ctx.sweep_id, ctx.params["task"]) == ("my-sweep", "sw", "cb")
    # the YAML as written says rte, the parent's params (the effective config, after --set) say cb: cb wins
    assert ctx.shared_params()["task.name"] == "cb" and ctx.shared_params()["method.strategy"] == "ppt"
    bare = sweep_context_from_mlflow(_FakeClient(None), runs)  # no YAML artifact: the parent's params still count
    assert bare.base == {} and bare.shared_params() == {"task.name": "cb"}
    (tmp_path / "paper.md").write_text("x")
    client = _FakeClient()
    assert log_report_artifacts(client, runs, [tmp_path / "paper.md"]) == "agg"
    assert client.logged == [("agg", "paper.md", "paper")] and "'aggregate'" in client.filter
    assert log_report_artifacts(_FakeClient(aggregate=False), runs, [tmp_path / "paper.md"]) is None
    assert log_report_artifacts(client, [], []) is None
