"""SweepTracker against a real sqlite MLflow store: run layout, resume without duplicates, aggregate run."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from ipt_ray import results as report
from ipt_ray.results import config_id
from ipt_ray.tracking import (
    SweepTracker,
    TrackingError,
    check_reachable,
    find_sweep_runs,
    resolve_tracking_uri,
    results_from_mlflow,
)
from ipt_ray.tracking.callback import MlflowTrackingCallback
from ipt_ray.tracking.fanout import RequestFanout
from ipt_ray.tracking.journal import read_journal

SEEDS = [0, 1, 2]
EXPERIMENT = "ipt-test"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """One migrated store per module (creating the schema costs ~5 s); each test gets a copy."""
    root = tmp_path_factory.mktemp("mlflow-template")
    cwd = os.getcwd()
    os.chdir(root)  # MLflow resolves the default experiment's location against the cwd
    try:
        MlflowClient(f"sqlite:///{root / 'mlflow.db'}").search_experiments(max_results=1)
    finally:
        os.chdir(cwd)
    return root / "mlflow.db"


@pytest.fixture
def uri(tmp_path, template_db, monkeypatch) -> str:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)  # anything written to the cwd by mistake stays in tmp
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def value(trial: int, seed: int, epoch: int) -> float:
    return round(0.5 + 0.1 * trial + 0.01 * seed + 0.001 * epoch, 6)


def make_result(trial: int, epoch: int, seeds=SEEDS) -> dict:
    """A trial's flat per-epoch result as train.py reports it, plus keys Tune adds."""
    result = {"epoch": epoch, "epoch_time_s": 1.5 * epoch, "trainable_params": 4227, "backbone_params": 22565376,
              "trainable_pct": 0.02, "trial_id": f"t{trial}", "training_iteration": epoch, "time_total_s": 3.0,
              "config": {"method.prompt_length": 16}}
    for s in seeds:
        result[f"dev_accuracy/seed_{s}"] = value(trial, s, epoch)
        result[f"dev_loss/seed_{s}"] = 1.0 - value(trial, s, epoch)
    result["dev_accuracy_mean"] = sum(value(trial, s, epoch) for s in seeds) / len(seeds)
    return result


def trial_params(trial: int) -> dict:
    return {"method.prompt_length": 8 * (trial + 1), "method.strategy": "random_ipt", "train.lr": 0.01}


def new_tracker(uri: str, sweep_id: str = "sw-1", name: str = "demo") -> SweepTracker:
    tracker = SweepTracker(uri, EXPERIMENT, sweep_id, name)
    tracker.start_parent("task:\n  name: rte\n", {"method.prompt_length": {"choice": [8, 16]}}, "abc123",
                         {"task.name": "rte"})
    return tracker


def log_trials(tracker: SweepTracker, trials=(0, 1), epochs=(1, 2, 3)) -> None:
    for epoch in epochs:
        for t in trials:
            p = trial_params(t)
            tracker.log_result(f"t{t}", config_id(p), p, make_result(t, epoch), SEEDS, "random_ipt")


def runs_of(uri: str, kind: str, sweep_id: str = "sw-1"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([exp.experiment_id], f"tags.`ipt.sweep_id` = '{sweep_id}' and tags.`ipt.kind` = '{kind}'")


# ---------------------------------------------------------------- URIs


@pytest.mark.parametrize("given, expected", [
    ("sqlite:///mlflow.db", "sqlite:////base/dir/mlflow.db"),
    ("sqlite:///x/y.db", "sqlite:////base/dir/x/y.db"),
    ("sqlite:////abs/store.db", "sqlite:////abs/store.db"),
    ("sqlite:///../up.db?mode=ro", "sqlite:////base/up.db?mode=ro"),
    ("mlruns", "file:///base/dir/mlruns"),
    ("./a/mlruns", "file:///base/dir/a/mlruns"),
    ("/abs/mlruns", "file:///abs/mlruns"),
    ("file:mlruns", "file:///base/dir/mlruns"),
    ("file:///abs/mlruns", "file:///abs/mlruns"),
    ("http://head:5000", "http://head:5000"),
    ("https://mlflow.example.org/", "https://mlflow.example.org/"),
    ("databricks", "databricks"),
    ("postgresql://u@db/mlflow", "postgresql://u@db/mlflow"),
])
def test_resolve_tracking_uri(given, expected, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(given, Path("/base/dir")) == expected


def test_resolve_tracking_uri_env_and_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    assert resolve_tracking_uri(None, Path("/srv/exp")) == "sqlite:////srv/exp/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///runs/m.db")
    assert resolve_tracking_uri(None) == f"sqlite:///{Path.cwd() / 'runs' / 'm.db'}"
    assert resolve_tracking_uri("http://other:5000") == "http://other:5000"  # explicit beats the env
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://head:5000")
    assert resolve_tracking_uri(None, Path("/srv/exp")) == "http://head:5000"


def test_check_reachable_fails_fast_on_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    env_before = dict(os.environ)
    start = time.monotonic()
    with pytest.raises(TrackingError, match=f"127.0.0.1:{port}"):
        check_reachable(uri)
    assert time.monotonic() - start < 10
    assert dict(os.environ) == env_before  # the probe's retry/timeout settings do not leak
    check_reachable("sqlite:////nonexistent/dir/x.db")  # not a server: nothing to probe


def test_a_busy_server_gets_a_longer_probe_and_a_silent_one_is_refused():
    """A server that takes the connection but answers after the first probe's timeout is busy, not gone."""
    import http.server
    import threading

    class Slow(http.server.BaseHTTPRequestHandler):
        delay_s = 2.5

        def do_POST(self):  # noqa: N802 - http.server's name; search_experiments is a POST
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(self.delay_s)
            body = b'{"experiments": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        start = time.monotonic()
        check_reachable(uri, timeout_s=1, busy_timeout_s=10)  # the first probe times out, the second answers
        assert 2.5 <= time.monotonic() - start < 10
        with pytest.raises(TrackingError, match="is not reachable"):
            check_reachable(uri, timeout_s=1, busy_timeout_s=1)  # slower than both probes: refused
    finally:
        server.shutdown()
        server.server_close()


def test_config_id_is_stable_and_short():
    a = config_id({"train.lr": 0.01, "method.prompt_length": 16})
    assert a == config_id({"method.prompt_length": 16, "train.lr": 0.01})
    assert len(a) == 8 and int(a, 16) >= 0
    assert a != config_id({"train.lr": 0.02, "method.prompt_length": 16})


# ---------------------------------------------------------------- parent and children


def test_parent_created_once_and_reused_after_restart(uri):
    first = new_tracker(uri)
    client = MlflowClient(uri)
    parent = client.get_run(first.parent_id)
    assert parent.info.run_name == "demo"
    assert parent.data.tags["ipt.code_version"] == "abc123"
    assert parent.data.params["task.name"] == "rte"
    assert parent.data.params["search.method.prompt_length"] == '{"choice": [8, 16]}'
    assert {a.path for a in client.list_artifacts(first.parent_id)} == {"experiment.yaml", "search_space.json"}
    first.finish("KILLED")  # the driver died

    second = new_tracker(uri)  # same sweep id: the resumed sweep
    assert second.parent_id == first.parent_id
    assert client.get_run(second.parent_id).info.status == "RUNNING"
    other = new_tracker(uri, sweep_id="sw-2")
    assert other.parent_id != first.parent_id
    assert len(runs_of(uri, "parent")) == 1


def test_children_layout_metrics_and_resume_without_duplicates(uri):
    tracker = new_tracker(uri)
    log_trials(tracker)
    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    all_runs = client.search_runs([exp_id])
    assert len(all_runs) == 7
    assert len(runs_of(uri, "parent")) == 1
    children = runs_of(uri, "trial")
    assert len(children) == 6

    def check_children():
        children = runs_of(uri, "trial")
        assert len(children) == 6
        seen = set()
        for run in children:
            tags = run.data.tags
            t, seed = int(tags["ipt.trial_id"][1:]), int(tags["ipt.seed"])
            seen.add((t, seed))
            assert tags["mlflow.parentRunId"] == tracker.parent_id
            assert tags["ipt.config_id"] == config_id(trial_params(t))
            assert tags["ipt.strategy"] == "random_ipt" and tags["ipt.status"] == "running"
            assert run.info.run_name == f"{config_id(trial_params(t))}-seed{seed}"
            assert run.data.params == {"method.prompt_length": str(8 * (t + 1)), "method.strategy": "random_ipt",
                                       "train.lr": "0.01", "seed": str(seed)}
            history = client.get_metric_history(run.info.run_id, "dev_accuracy")
            assert sorted((m.step, m.value) for m in history) == [(e, value(t, seed, e)) for e in (1, 2, 3)]
            assert len(client.get_metric_history(run.info.run_id, "dev_loss")) == 3
            assert run.data.metrics["trainable_params"] == 4227
            assert run.data.metrics["epoch_time_s"] == 4.5  # the last epoch's
            assert "backbone_params" not in run.data.metrics and "dev_accuracy_mean" not in run.data.metrics
        assert seen == {(t, s) for t in (0, 1) for s in SEEDS}

    check_children()
    # Driver restart: a NEW tracker replays epochs 2 and 3 (Tune restores trials from checkpoints).
    restarted = new_tracker(uri)
    assert sum(tracker.log_result(f"t{t}", config_id(trial_params(t)), trial_params(t), make_result(t, e), SEEDS,
                                  "random_ipt") for t in (0, 1) for e in (2, 3)) == 0  # old one: in memory
    assert sum(restarted.log_result(f"t{t}", config_id(trial_params(t)), trial_params(t), make_result(t, e), SEEDS,
                                    "random_ipt") for t in (0, 1) for e in (2, 3)) == 0  # new one: from tags
    check_children()
    # ... and what comes next is not lost.
    p = trial_params(0)
    assert restarted.log_result("t0", config_id(p), p, make_result(0, 4), SEEDS, "random_ipt") == 3
    run = next(r for r in runs_of(uri, "trial") if r.data.tags["ipt.trial_id"] == "t0")
    assert [m.step for m in sorted(client.get_metric_history(run.info.run_id, "dev_accuracy"), key=lambda m: m.step)] \
        == [1, 2, 3, 4]
    assert run.data.tags["ipt.last_epoch"] == "4"


def test_an_epoch_whose_metrics_landed_without_its_tag_is_not_logged_twice_on_resume(uri):
    """MLflow's SQL store commits a log_batch's metrics, then its tags: a driver killed in between leaves
    epoch 2's metrics without ``ipt.last_epoch`` 2. The resumed driver's replay of epoch 2 must skip it."""
    from mlflow.entities import Metric

    tracker = new_tracker(uri)
    log_trials(tracker, trials=(0,), epochs=(1,))
    client = MlflowClient(uri)
    for run in runs_of(uri, "trial"):  # epoch 2's metrics only, as the killed log_batch left them
        seed = int(run.data.tags["ipt.seed"])
        client.log_batch(run.info.run_id, metrics=[Metric("dev_accuracy", value(0, seed, 2), 0, 2),
                                                   Metric("dev_loss", 1.0 - value(0, seed, 2), 0, 2)])
    assert {r.data.tags["ipt.last_epoch"] for r in runs_of(uri, "trial")} == {"1"}
    resumed = new_tracker(uri)
    log_trials(resumed, trials=(0,), epochs=(2, 3))
    for run in runs_of(uri, "trial"):
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "dev_accuracy"))
        assert steps == [1, 2, 3] and run.data.tags["ipt.last_epoch"] == "3"


def test_result_missing_a_seed_does_not_mark_its_epoch(uri):
    tracker = new_tracker(uri)
    p = trial_params(0)
    assert tracker.log_result("t0", config_id(p), p, make_result(0, 1, seeds=[0]), SEEDS, "random_ipt") == 1
    assert len(runs_of(uri, "trial")) == 1
    assert tracker.log_result("t0", config_id(p), p, make_result(0, 1), SEEDS, "random_ipt") == 2


def test_end_trial_statuses(uri):
    tracker = new_tracker(uri)
    log_trials(tracker, trials=(0, 1, 2), epochs=(1,))
    tracker.end_trial("t0", "completed")
    SweepTracker(uri, EXPERIMENT, "sw-1", "demo").end_trial("t1", "early_stopped")  # after a restart, too
    tracker.end_trial("t2", "failed")
    with pytest.raises(ValueError, match="status"):
        tracker.end_trial("t0", "done")
    by_trial: dict[str, set] = {}
    for run in runs_of(uri, "trial"):
        by_trial.setdefault(run.data.tags["ipt.trial_id"], set()).add((run.data.tags["ipt.status"], run.info.status))
    assert by_trial == {"t0": {("completed", "FINISHED")}, "t1": {("early_stopped", "FINISHED")},
                        "t2": {("failed", "FAILED")}}


def test_retried_trial_runs_again_in_the_same_runs(uri):
    tracker = new_tracker(uri)
    p = trial_params(0)
    tracker.log_result("t0", config_id(p), p, make_result(0, 1), SEEDS, "random_ipt")
    tracker.end_trial("t0", "failed")
    tracker.log_result("t0", config_id(p), p, make_result(0, 2), SEEDS, "random_ipt")  # Tune retried it
    runs = runs_of(uri, "trial")
    assert len(runs) == 3
    assert {(r.info.status, r.data.tags["ipt.status"], r.data.tags["ipt.last_epoch"]) for r in runs} == {
        ("RUNNING", "running", "2")}


def test_an_ended_trial_leaves_nothing_cached_and_a_replay_reads_its_tags(uri):
    # Why: the driver's memory must not grow with the trials a sweep has ended (bench/results/scale_runs.md)
    tracker = new_tracker(uri)
    log_trials(tracker, trials=(0, 1), epochs=(1, 2))
    tracker.end_trial("t0", "completed")
    assert set(tracker._runs) == {"t1"}
    assert len(tracker._last_epoch) == len(tracker._run_info) == len(SEEDS) and not tracker._ended
    p = trial_params(0)
    assert tracker.log_result("t0", config_id(p), p, make_result(0, 2), SEEDS, "random_ipt") == 0  # logged before
    assert {r.info.status for r in runs_of(uri, "trial") if r.data.tags["ipt.trial_id"] == "t0"} == {"FINISHED"}


def test_pickled_tracker_forgets_its_cache(uri):
    tracker = new_tracker(uri)
    log_trials(tracker, trials=(0,), epochs=(1,))
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone.parent_id == tracker.parent_id and clone._runs == {} and clone._last_epoch == {}
    log_trials(tracker, trials=(0,), epochs=(2,))
    assert sum(clone.log_result("t0", config_id(trial_params(0)), trial_params(0), make_result(0, 2), SEEDS,
                                "random_ipt") for _ in range(2)) == 0  # reads epoch 2 from the tags


def test_a_resumed_config_under_a_new_trial_id_adopts_the_orphaned_runs(uri):
    # The driver died after trial t0 logged epoch 1 but before Tune's snapshot held t0; the resumed
    # searcher proposes t0's config again as t9. A config Tune still knows (t1) keeps its own runs.
    tracker = new_tracker(uri)
    log_trials(tracker, trials=(0, 1), epochs=(1,))
    resumed = new_tracker(uri)
    callback = MlflowTrackingCallback(resumed, SEEDS, metric="accuracy", max_epochs=3, resuming=True)
    again = SimpleNamespace(trial_id="t9", config=trial_params(0), last_result={})
    twin = SimpleNamespace(trial_id="t8", config=trial_params(1), last_result={})  # same config as t1, a known trial
    known = [SimpleNamespace(trial_id="t1", config=trial_params(1)), again, twin]
    for trial in (again, twin):
        callback.on_trial_start(iteration=1, trials=known, trial=trial)
    for epoch in (1, 2, 3):  # t9 retrains from epoch 1; the epoch its runs hold already is not logged twice
        again.last_result = make_result(0, epoch)
        callback.on_trial_result(iteration=epoch, trials=known, trial=again, result=again.last_result)
    callback.on_trial_complete(iteration=4, trials=known, trial=again)
    runs = runs_of(uri, "trial")
    by_trial = Counter(r.data.tags["ipt.trial_id"] for r in runs)
    assert by_trial == {"t9": 3, "t1": 3}  # no new runs for t9; t8 took none of t1's
    client = MlflowClient(uri)
    for run in runs:
        if run.data.tags["ipt.trial_id"] == "t9":
            assert [m.step for m in client.get_metric_history(run.info.run_id, "dev_accuracy")] == [1, 2, 3]
            assert run.data.tags["ipt.status"] == "completed"


def test_a_resumed_sweep_retires_the_runs_of_a_trial_tune_forgot_and_whose_config_never_came_back(uri, tmp_path):
    # The killed driver had logged t0 and t1; the resumed Tune knows t1 and ran t7 (another config, as
    # Optuna's TPE may propose after a restore) instead of t0: t0's runs are orphans, ended and deleted.
    tracker = new_tracker(uri)
    log_trials(tracker, trials=(0, 1), epochs=(1,))
    resumed = SweepTracker(uri, EXPERIMENT, "sw-1", "demo", journal=tmp_path / "journal.jsonl")
    resumed.start_parent("", {}, "abc123", {})
    log_trials(resumed, trials=(1, 7), epochs=(1, 2))
    assert resumed.retire_orphans(["t1", "t7"]) == len(SEEDS)
    assert Counter(r.data.tags["ipt.trial_id"] for r in runs_of(uri, "trial")) == {"t1": 3, "t7": 3}
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    gone = client.search_runs([exp.experiment_id], "tags.`ipt.trial_id` = 't0'", ViewType.DELETED_ONLY)
    assert len(gone) == len(SEEDS)
    assert {(r.info.status, r.data.tags["ipt.status"]) for r in gone} == {("KILLED", "orphaned")}
    assert resumed.retire_orphans(["t1", "t7"]) == 0  # idempotent: nothing active is left to retire
    # with tags, only the matching runs are looked at (a few-shot phase's)
    assert resumed.retire_orphans(["t1"], tags={"ipt.phase": "select"}) == 0
    assert len(runs_of(uri, "trial")) == 2 * len(SEEDS)


# ---------------------------------------------------------------- Tune callback


def test_callback_with_fake_trials(uri):
    tracker = new_tracker(uri)
    callback = MlflowTrackingCallback(tracker, SEEDS, metric="accuracy", max_epochs=3, default_strategy="prompt_tuning")
    trials = [SimpleNamespace(trial_id=f"t{t}", config=trial_params(t), last_result={}) for t in range(3)]
    trials[2].config = {"train.lr": 0.1}  # no strategy in the search space
    for t, trial in enumerate(trials):
        for epoch in (1, 2, 3) if t == 0 else (1,):
            trial.last_result = make_result(t, epoch)
            callback.on_trial_result(iteration=epoch, trials=trials, trial=trial, result=trial.last_result,
                                     runner=None)
    callback.on_trial_complete(iteration=4, trials=trials, trial=trials[0])
    callback.on_trial_complete(iteration=4, trials=trials, trial=trials[1])  # stopped by the scheduler at epoch 1
    callback.on_trial_error(iteration=4, trials=trials, trial=trials[2], extra="ignored")
    runs = runs_of(uri, "trial")
    assert len(runs) == 9
    status = {(r.data.tags["ipt.trial_id"], r.data.tags["ipt.status"], r.data.tags["ipt.strategy"],
               r.data.tags["ipt.config_id"]) for r in runs}
    assert status == {("t0", "completed", "random_ipt", config_id(trial_params(0))),
                      ("t1", "early_stopped", "random_ipt", config_id(trial_params(1))),
                      ("t2", "failed", "prompt_tuning", config_id({"train.lr": 0.1}))}


# ---------------------------------------------------------------- aggregate and read-back


def test_log_aggregate_creates_one_run_and_updates_it(uri, tmp_path):
    tracker = new_tracker(uri)
    log_trials(tracker)
    client = MlflowClient(uri)
    summary = report.aggregate(results_from_mlflow(runs_of(uri, "trial"), "accuracy"), "accuracy", "max")
    best = summary.best
    assert best.config_id == config_id(trial_params(1))
    first = tracker.log_aggregate(summary, report.write_artifacts(summary, tmp_path / "a"))
    # A resumed sweep re-aggregates with more results: the same run is updated.
    more = report.SeedResult("zzzzzzzz", "t9", 0, 0.99, {"method.prompt_length": 64}, "completed")
    summary2 = report.aggregate([*results_from_mlflow(runs_of(uri, "trial"), "accuracy"), more], "accuracy")
    second = new_tracker(uri).log_aggregate(summary2, report.write_artifacts(summary2, tmp_path / "b"))
    assert first == second
    aggregates = runs_of(uri, "aggregate")
    assert len(aggregates) == 1
    run = aggregates[0]
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_id
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "results.csv", "results.md", "results.png", "summary.json"}
    m = run.data.metrics
    assert m[f"{best.config_id}/accuracy_mean"] == pytest.approx(best.mean)
    assert m[f"{best.config_id}/accuracy_std"] == pytest.approx(best.std)
    assert m["best/accuracy_mean"] == pytest.approx(0.99) and m["best/accuracy_std"] == 0.0
    assert run.data.tags["ipt.best_config_id"] == "zzzzzzzz"
    assert run.data.tags["best.method.prompt_length"] == "64"
    assert "best.train.lr" not in run.data.tags  # left over from the first best: removed
    assert run.data.tags["ipt.aggregate_version"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "best/accuracy_mean")) == 2


def test_find_sweep_runs_by_id_and_by_name(uri):
    log_trials(new_tracker(uri, "sw-1", "demo"), trials=(0,), epochs=(1,))
    time.sleep(0.01)  # distinct start times
    log_trials(new_tracker(uri, "sw-2", "demo"), trials=(0, 1), epochs=(1,))
    log_trials(new_tracker(uri, "sw-3", "other"), trials=(0,), epochs=(1,))
    assert len(find_sweep_runs(uri, EXPERIMENT, "sw-1")) == 3
    by_name = find_sweep_runs(uri, EXPERIMENT, "demo")  # two sweeps share the name: the most recent
    assert len(by_name) == 6 and {r.data.tags["ipt.sweep_id"] for r in by_name} == {"sw-2"}
    assert {r.data.tags["ipt.sweep_id"] for r in find_sweep_runs(uri, EXPERIMENT, "other")} == {"sw-3"}
    with pytest.raises(TrackingError, match="nope"):
        find_sweep_runs(uri, EXPERIMENT, "nope")
    with pytest.raises(TrackingError, match="missing-exp"):
        find_sweep_runs(uri, "missing-exp", "sw-1")


def test_artifacts_stay_beside_the_sqlite_store(uri, tmp_path):
    tracker = new_tracker(uri)
    location = MlflowClient(uri).get_experiment(tracker.experiment_id).artifact_location
    assert location == (tmp_path / "mlartifacts").as_uri()
    assert (tmp_path / "mlartifacts").is_dir()


# ---------------------------------------------------------------- outages: the journal


def _outage() -> Exception:
    """What MLflow raises when the server is gone: an MlflowException chained to a refused connection."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        try:
            raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")
        except requests.exceptions.ConnectionError as err:
            raise MlflowException(f"API request to http://127.0.0.1:1/api failed with exception {err}")
    except MlflowException as wrapped:
        return wrapped


class FlakyClient:
    """An MlflowClient whose calls fail like a lost server while ``down`` (or for the next ``fail_next`` calls)."""

    def __init__(self, real: MlflowClient) -> None:
        self.real = real
        self.down = False
        self.fail_next: dict[str, int] = {}
        self.calls = 0

    def __getattr__(self, name: str):
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.down or self.fail_next.get(name, 0) > 0:
                if not self.down:
                    self.fail_next[name] -= 1
                raise _outage()
            self.calls += 1
            return attr(*args, **kwargs)

        return call


def journaled_tracker(uri: str, tmp_path: Path, **kwargs) -> tuple[SweepTracker, FlakyClient]:
    tracker = SweepTracker(uri, EXPERIMENT, "sw-1", "demo", journal=tmp_path / "sweep" / "mlflow_journal.jsonl",
                           **kwargs)
    tracker.start_parent("task:\n  name: rte\n", {"method.prompt_length": {"choice": [8, 16]}}, "abc123",
                         {"task.name": "rte"})
    flaky = FlakyClient(tracker.client)
    tracker.client = flaky
    return tracker, flaky


def assert_exact_sweep(uri: str, trials=(0, 1), epochs=(1, 2, 3), status="completed"):
    client = MlflowClient(uri)
    children = runs_of(uri, "trial")
    assert sorted((r.data.tags["ipt.trial_id"], r.data.tags["ipt.seed"]) for r in children) == sorted(
        (f"t{t}", str(s)) for t in trials for s in SEEDS)  # one run per (trial, seed): no duplicates
    for run in children:
        t, seed = int(run.data.tags["ipt.trial_id"][1:]), int(run.data.tags["ipt.seed"])
        history = client.get_metric_history(run.info.run_id, "dev_accuracy")
        assert sorted((m.step, m.value) for m in history) == [(e, value(t, seed, e)) for e in epochs]
        assert run.data.params["seed"] == str(seed) and run.data.params["method.prompt_length"] == str(8 * (t + 1))
        assert (run.data.tags["ipt.status"], run.info.status) == (status, "FINISHED")
    return children


def summary_of(uri: str):
    return report.aggregate(results_from_mlflow(runs_of(uri, "trial"), "accuracy"), "accuracy", "max")


def test_is_outage_tells_a_lost_server_from_a_refused_request():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    from ipt_ray.tracking import is_outage

    assert is_outage(_outage())
    assert is_outage(ConnectionRefusedError(111, "refused")) and is_outage(TimeoutError())
    assert is_outage(MlflowException("try later", error_code=TEMPORARILY_UNAVAILABLE))
    assert not is_outage(MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE))
    assert not is_outage(ValueError("bad value"))


def test_lost_server_journals_writes_and_sync_replays_them_exactly(uri, tmp_path, caplog):
    tracker, flaky = journaled_tracker(uri, tmp_path)
    log_trials(tracker, epochs=(1,))
    flaky.down = True  # the server dies after the first epoch
    with caplog.at_level("WARNING", logger="ipt_ray.tracking"):
        log_trials(tracker, epochs=(2, 3))  # nothing raises: the sweep goes on
        tracker.end_trial("t0", "completed")
        tracker.end_trial("t1", "completed")
        summary = report.aggregate([report.SeedResult(config_id(trial_params(t)), f"t{t}", s, value(t, s, 3),
                                                      trial_params(t), "completed") for t in (0, 1) for s in SEEDS],
                                   "accuracy")
        assert tracker.log_aggregate(summary, report.write_artifacts(summary, tmp_path / "report")) is None
        tracker.tag_parent({"ipt.optuna.complete": "2"})
        tracker.finish()
    assert sum("is unreachable" in r.getMessage() for r in caplog.records) == 1  # warned once
    assert tracker.pending() == 4 + 2 + 1 + 1 + 1
    assert all(r.data.tags["ipt.last_epoch"] == "1" for r in runs_of(uri, "trial"))
    assert runs_of(uri, "aggregate") == []

    # The server is back; a fresh tracker (what `ipt-ray report --sync` builds) replays the journal.
    flaky.down = False
    fresh = SweepTracker(uri, EXPERIMENT, "sw-1", "demo", journal=tracker.journal)
    assert fresh.sync() == 9
    assert fresh.pending() == 0 and tracker.journal.read_text() == ""
    assert_exact_sweep(uri)
    (aggregate,) = runs_of(uri, "aggregate")
    assert aggregate.info.status == "FINISHED" and aggregate.data.tags["ipt.aggregate_version"] == "1"
    assert {a.path for a in MlflowClient(uri).list_artifacts(aggregate.info.run_id)} == {
        "results.csv", "results.md", "results.png", "summary.json"}
    (parent,) = runs_of(uri, "parent")
    assert parent.info.status == "FINISHED" and parent.data.tags["ipt.optuna.complete"] == "2"
    assert fresh.sync() == 0  # idempotent: nothing left
    assert len(runs_of(uri, "trial")) == 6 and len(runs_of(uri, "aggregate")) == 1


def test_writes_wait_behind_the_journal_and_resume_when_the_server_is_back(uri, tmp_path):
    tracker, flaky = journaled_tracker(uri, tmp_path, retry_interval_s=0.0)
    log_trials(tracker, epochs=(1,))
    flaky.down = True
    log_trials(tracker, epochs=(2,))
    assert tracker.pending() == 2
    flaky.down = False
    log_trials(tracker, epochs=(3,))  # the probe finds the server: epoch 2 replayed first, then epoch 3
    assert tracker.pending() == 0
    tracker.end_trial("t0", "completed")
    tracker.end_trial("t1", "completed")
    assert_exact_sweep(uri)


def test_order_is_kept_while_the_server_is_not_probed_yet(uri, tmp_path):
    tracker, flaky = journaled_tracker(uri, tmp_path, retry_interval_s=3600.0)
    log_trials(tracker, epochs=(1, 2))
    flaky.down = True
    log_trials(tracker, epochs=(3,))
    flaky.down = False  # back, but not probed yet: the end must not overtake the journaled epoch 3
    tracker.end_trial("t0", "completed")
    tracker.end_trial("t1", "completed")
    assert tracker.pending() == 4
    assert {r.info.status for r in runs_of(uri, "trial")} == {"RUNNING"}
    assert tracker.flush() == 0  # the sweep's last replay attempt ignores the probe interval
    assert_exact_sweep(uri)


def test_a_half_landed_write_is_completed_not_duplicated(uri, tmp_path):
    tracker, flaky = journaled_tracker(uri, tmp_path)
    flaky.fail_next["log_batch"] = 1  # the child run is created, then its params are cut off
    p = trial_params(0)
    assert tracker.log_result("t0", config_id(p), p, make_result(0, 1), SEEDS, "random_ipt") == 0
    assert len(runs_of(uri, "trial")) == 1 and runs_of(uri, "trial")[0].data.params == {}
    # a write fails midway through a replay: the rest stays journaled
    flaky.fail_next["log_batch"] = 1
    with pytest.raises(TrackingError, match="went away during the replay: 0 of 1"):
        tracker.sync()
    assert tracker.pending() == 1
    assert tracker.sync() == 1
    log_trials(tracker, trials=(0,), epochs=(2, 3))
    tracker.end_trial("t0", "completed")
    assert_exact_sweep(uri, trials=(0,))


def test_seed_requests_side_by_side_land_exactly_and_a_half_landed_write_completes(uri, tmp_path):
    """Over HTTP a write's per-seed requests go side by side: one seed's failure leaves the others landed,
    the record journaled, and its replay skips what landed."""
    tracker, flaky = journaled_tracker(uri, tmp_path)
    tracker._fanout = RequestFanout("http://127.0.0.1", max_parallel=len(SEEDS))  # as a server URI gets it
    flaky.fail_next["log_batch"] = 1
    p = trial_params(0)
    assert tracker.log_result("t0", config_id(p), p, make_result(0, 1), SEEDS, "random_ipt") == 0
    assert tracker.pending() == 1 and len(runs_of(uri, "trial")) == len(SEEDS)  # each seed's run made once
    landed = [r for r in runs_of(uri, "trial") if r.data.tags.get("ipt.last_epoch") == "1"]
    assert 0 < len(landed) < len(SEEDS)  # one after the other, the first seed's failure would stop them all
    assert tracker.sync() == 1
    log_trials(tracker, trials=(1,), epochs=(1,))
    log_trials(tracker, epochs=(2, 3))
    tracker.end_trial("t0", "completed")
    tracker.end_trial("t1", "completed")
    assert_exact_sweep(uri)
    tracker._fanout.close()


def test_other_mlflow_errors_still_raise(uri, tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    tracker, flaky = journaled_tracker(uri, tmp_path)
    log_trials(tracker, trials=(0,), epochs=(1,))

    def refuse(*args, **kwargs):
        raise MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE)

    flaky.real = SimpleNamespace(**{name: refuse for name in ("log_batch", "search_runs", "set_tag", "update_run",
                                                              "set_terminated")})
    with pytest.raises(MlflowException, match="Changing param values"):
        tracker.end_trial("t0", "completed")
    assert tracker.pending() == 0


def test_unreachable_at_start_is_an_error_not_a_journal(uri, tmp_path):
    tracker = SweepTracker(uri, EXPERIMENT, "sw-1", "demo", journal=tmp_path / "j.jsonl")
    tracker.client = FlakyClient(tracker.client)
    tracker.client.down = True
    with pytest.raises(TrackingError, match="stopped answering"):
        tracker.start_parent("x: 1\n", {}, "abc", {})
    assert not (tmp_path / "j.jsonl").exists()


def test_journal_lines_cut_short(tmp_path, caplog):
    from ipt_ray.tracking import read_journal

    good = json.dumps({"v": 1, "op": "finish", "sweep_id": "sw-1", "args": {"status": "FINISHED"}})
    path = tmp_path / "j.jsonl"
    path.write_text(good + "\n" + good[:20])  # the driver died while appending
    with caplog.at_level("WARNING", logger="ipt_ray.tracking"):
        assert [r["op"] for r in read_journal(path)] == ["finish"]
    assert "incomplete record" in caplog.text
    path.write_text(good[:20] + "\n" + good + "\n")
    with pytest.raises(TrackingError, match="line 1: not a journal record"):
        read_journal(path)


def test_appending_after_a_cut_line_starts_a_new_line(uri, tmp_path):
    tracker, flaky = journaled_tracker(uri, tmp_path)
    tracker.journal.parent.mkdir(parents=True, exist_ok=True)
    tracker.journal.write_text('{"v": 1, "op": "fin')
    flaky.down = True
    tracker.finish()
    lines = tracker.journal.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["op"] == "finish"


def test_report_sync_replays_a_sweep_folder_and_reports(uri, tmp_path, capsys):
    from ipt_ray.cli import main

    sweep_dir = tmp_path / "runs" / "sweeps" / "demo"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "ipt_sweep.json").write_text(json.dumps({"name": "demo", "sweep_id": "sw-1", "tracking_uri": uri,
                                                          "experiment": EXPERIMENT}))
    tracker = SweepTracker(uri, EXPERIMENT, "sw-1", "demo", journal=sweep_dir / "mlflow_journal.jsonl")
    tracker.start_parent("x: 1\n", {}, "abc", {})
    tracker.client = flaky = FlakyClient(tracker.client)
    log_trials(tracker, epochs=(1,))
    flaky.down = True
    log_trials(tracker, epochs=(2, 3))
    for t in (0, 1):
        tracker.end_trial(f"t{t}", "completed")
    assert tracker.pending() == 6
    assert main(["report", "--sync", "demo"]) == 0  # found under ./runs/sweeps; URI and experiment from the sweep
    out = capsys.readouterr().out
    assert "6 journaled tracking writes replayed" in out and config_id(trial_params(1)) in out
    assert_exact_sweep(uri)
    assert main(["report", "--sync", str(sweep_dir)]) == 0  # again, by folder: nothing left to do
    assert "nothing to sync" in capsys.readouterr().out
    assert_exact_sweep(uri)
    assert main(["report", "--sync", "no-such-sweep"]) == 2
    assert "no folder of sweep 'no-such-sweep'" in capsys.readouterr().err


def test_a_resumed_sweep_replays_the_journal_before_anything_else(uri, tmp_path):
    tracker, flaky = journaled_tracker(uri, tmp_path)
    log_trials(tracker, epochs=(1,))
    flaky.down = True
    log_trials(tracker, epochs=(2,))
    tracker.finish("KILLED")  # the driver gave up while the server was away
    # `ipt-ray sweep --resume`: a new tracker on the same journal; start_parent replays it first.
    resumed = SweepTracker(uri, EXPERIMENT, "sw-1", "demo", journal=tracker.journal)
    resumed.start_parent("x: 1\n", {}, "abc", {})
    assert resumed.pending() == 0
    assert MlflowClient(uri).get_run(resumed.parent_id).info.status == "RUNNING"
    log_trials(resumed, epochs=(3,))
    for t in (0, 1):
        resumed.end_trial(f"t{t}", "completed")
    assert_exact_sweep(uri)


# ---------------------------------------------------------------- a test split: named metrics, read at dev's epoch


def test_test_metrics_land_beside_dev_and_are_read_back_at_the_dev_selected_epoch(uri, tmp_path):
    tracker = new_tracker(uri)
    p = trial_params(0)
    dev, test = {1: 0.6, 2: 0.8, 3: 0.7}, {1: 0.9, 2: 0.65, 3: 0.75}  # test peaks where dev does not
    for epoch in (1, 2, 3):
        result = {"epoch": epoch, **{f"dev_accuracy/seed_{s}": dev[epoch] for s in SEEDS},
                  **{f"test_accuracy/seed_{s}": test[epoch] for s in SEEDS}}
        tracker.log_result("t0", config_id(p), p, result, SEEDS, "random_ipt")
    client = MlflowClient(uri)
    run = runs_of(uri, "trial")[0]
    assert {"dev_accuracy", "test_accuracy"} <= set(run.data.metrics)  # the split is in the name
    assert [m.value for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [0.9, 0.65, 0.75]
    last = results_from_mlflow(runs_of(uri, "trial"), "accuracy")
    assert {(r.value, r.test) for r in last} == {(0.7, 0.75)}
    best = results_from_mlflow(runs_of(uri, "trial"), "accuracy", epoch="best", history=client.get_metric_history)
    assert {(r.value, r.test) for r in best} == {(0.8, 0.65)}  # epoch 2, chosen on dev
    summary = report.aggregate(best, "accuracy")
    tracker.log_aggregate(summary, report.write_artifacts(summary, tmp_path / "a"))
    m = runs_of(uri, "aggregate")[0].data.metrics
    assert m["best/accuracy_mean"] == pytest.approx(0.8) and m["best/test_accuracy_mean"] == pytest.approx(0.65)
    assert m[f"{config_id(p)}/test_accuracy_mean"] == pytest.approx(0.65) and m["best/test_accuracy_std"] == 0.0
    assert "test accuracy mean ± std (%)" in (tmp_path / "a" / "results.md").read_text(encoding="utf-8")


def test_a_dev_only_aggregate_logs_no_test_metrics(uri, tmp_path):
    tracker = new_tracker(uri)
    log_trials(tracker, trials=(0,), epochs=(1,))
    summary = report.aggregate(results_from_mlflow(runs_of(uri, "trial"), "accuracy"), "accuracy")
    tracker.log_aggregate(summary, report.write_artifacts(summary, tmp_path / "a"))
    assert not [k for k in runs_of(uri, "aggregate")[0].data.metrics if "test_" in k]


def test_background_writes_land_in_order_and_survive_an_outage(uri, tmp_path):
    """The sweep's writer thread: trial writes journaled on the caller's thread, applied in order."""
    tracker, flaky = journaled_tracker(uri, tmp_path, retry_interval_s=0.05)
    tracker.start_background()
    log_trials(tracker, epochs=(1,))
    flaky.down = True  # lost while the writer works: it waits and probes, the callers never block
    log_trials(tracker, epochs=(2, 3))
    tracker.end_trial("t0", "completed")
    tracker.end_trial("t1", "completed")
    time.sleep(0.3)
    assert tracker.pending() > 0 and {r.info.status for r in runs_of(uri, "trial")} <= {"RUNNING"}
    flaky.down = False
    tracker.stop_background()
    assert tracker.pending() == 0 and tracker.journal.read_text() == ""
    assert_exact_sweep(uri)


def test_a_killed_driver_leaves_every_background_write_in_the_journal(uri, tmp_path):
    tracker, flaky = journaled_tracker(uri, tmp_path, retry_interval_s=3600.0)
    flaky.down = True  # nothing can land: what the callers handed over must all be on disk
    tracker.start_background()
    log_trials(tracker, epochs=(1, 2, 3))
    tracker.end_trial("t0", "completed")
    tracker.end_trial("t1", "completed")
    assert len(read_journal(tracker.journal)) == 3 * 2 + 2  # as if the driver died here
    deadline = time.monotonic() + 60
    while tracker._outage.next_probe <= time.monotonic() < deadline:  # the writer has met the outage: a dead
        time.sleep(0.01)  # driver writes nothing more (seen under load: it still wrote beside the replay below)
    flaky.down = False
    resumed = SweepTracker(uri, EXPERIMENT, "sw-1", "demo", journal=tracker.journal)
    resumed.start_parent("task:\n  name: rte\n", {}, "abc123", {})  # a resumed sweep replays first
    assert resumed.pending() == 0
    assert_exact_sweep(uri)
