"""Outages: an MLflow server that errors at start, one lost mid-sweep, a trial worker killed with SIGKILL.

The figures each slow test measures (trials finished, runs in MLflow, duplicates) are printed on one
``OUTAGE FIGURES`` line (``pytest -s``) and quoted in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from ray import tune

from ipt_ray import results as report
from ipt_ray.cli import main
from ipt_ray.config import load_config
from ipt_ray.sweep import run_sweep
from ipt_ray.tracking import JOURNAL_FILE, TrackingError, check_reachable, read_journal
from servers import find_processes, mlflow_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CB = Path(__file__).resolve().parents[2] / "ipt_ray" / "data" / "superglue" / "CB"


def cb_copies(tmp_path: Path, copies: int) -> Path:
    """CB with its training set repeated ``copies`` times: epochs long enough (~1 s) to act mid-trial."""
    folder = tmp_path / "data" / "CB"
    folder.mkdir(parents=True)
    rows = [json.loads(line) for line in (CB / "train.jsonl").read_text().splitlines()]
    with open(folder / "train.jsonl", "w") as f:
        for i in range(copies):
            for row in rows:
                f.write(json.dumps({**row, "idx": i * len(rows) + row["idx"]}) + "\n")
    (folder / "val.jsonl").write_text((CB / "val.jsonl").read_text())
    return folder


def outage_yaml(tmp_path: Path, backbone: Path, uri: str, *, num_samples: int, epochs: int = 3, seeds=(0, 1),
                copies: int = 4, max_failures: int = 2) -> Path:
    data = {
        "task": {"name": "cb", "data_dir": str(cb_copies(tmp_path, copies)), "max_eval_samples": 20,
                 "max_length": 48},
        "backbone": {"name": str(backbone)},
        "method": {"strategy": "random_ipt", "prompt_length": 4},
        "train": {"epochs": epochs, "batch_size": 16, "seeds": list(seeds), "output_dir": str(tmp_path / "runs"),
                  "progress": False},
        "sweep": {"num_samples": num_samples, "max_concurrent_trials": 1, "searcher": "grid", "search_space": {
            "method.strategy": {"type": "choice", "values": ["prompt_tuning", "random_ipt"][:num_samples]}}},
        "tracking": {"uri": uri, "experiment": "outage"},
        "cluster": {"num_workers": 0, "max_failures": max_failures},
    }
    path = tmp_path / "outage.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def mlflow_counts(uri: str, epochs: int) -> dict[str, object]:
    """Runs by kind, duplicates and whether every child logged epochs 1..E exactly once."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("outage")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    kinds = Counter(r.data.tags.get("ipt.kind") for r in runs)
    children = [r for r in runs if r.data.tags.get("ipt.kind") == "trial"]
    per_seed = Counter((r.data.tags["ipt.trial_id"], r.data.tags["ipt.seed"]) for r in children)
    histories = {}
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "dev_accuracy")]
        histories[run.info.run_name] = sorted(steps)
    return {
        "kinds": dict(kinds),
        "duplicate_runs": sum(n - 1 for n in per_seed.values()),
        "duplicate_epochs": sum(len(s) - len(set(s)) for s in histories.values()),
        "exact_histories": all(s == list(range(1, epochs + 1)) for s in histories.values()),
        "statuses": Counter((r.data.tags.get("ipt.kind"), r.info.status) for r in runs),
        "child_tags": Counter(r.data.tags.get("ipt.status") for r in children),
        "runs": runs,
        "client": client,
    }


def figures(name: str, **values: object) -> None:
    print(f"\nOUTAGE FIGURES {name}: " + json.dumps(values, default=str), flush=True)


# ---------------------------------------------------------------- MLflow answers with HTTP errors at start


class _Failing(BaseHTTPRequestHandler):
    def _reply(self) -> None:
        body = b"<html><body>upstream unavailable</body></html>"
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def failing_server():
    servers = []

    def start(status: int) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
        server.status = status  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [500, 503, 404])
def test_server_answering_with_http_errors_is_refused_at_once(failing_server, status):
    uri = failing_server(status)
    start = time.monotonic()
    with pytest.raises(TrackingError, match=f"MLflow tracking server {uri} is not reachable"):
        check_reachable(uri)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("status, outage", [(500, True), (503, True), (404, False)])
def test_http_errors_mid_sweep_are_outages_only_when_retrying_could_help(failing_server, status, outage, monkeypatch):
    """5xx answers (after MLflow's retries) are journaled like a lost server; a 404 is a real error."""
    from ipt_ray.tracking import is_outage

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(Exception) as caught:
        MlflowClient(failing_server(status)).search_experiments(max_results=1)
    assert is_outage(caught.value) is outage


def test_sweep_against_an_erroring_server_fails_before_any_trial(failing_server, tiny_bert, tmp_path, monkeypatch):
    import ray

    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray started although MLflow was unusable")

    monkeypatch.setattr(ray, "init", no_ray)
    uri = failing_server(503)
    path = outage_yaml(tmp_path, tiny_bert, uri, num_samples=1, copies=1)
    with pytest.raises(TrackingError, match=f"{uri} is not reachable"):
        run_sweep(load_config(path), path)
    assert not (tmp_path / "runs" / "sweeps").exists()


# ---------------------------------------------------------------- MLflow lost mid-sweep


class KillServerAfterFirstEpoch(tune.Callback):
    """Runs after the tracking callback: the first epoch is in MLflow, then the server dies (SIGKILL)."""

    def __init__(self, marker: str, port: int) -> None:
        self.marker, self.port = marker, port
        self.killed: list[int] = []

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if self.killed or int(result.get("epoch", 0)) < 1:
            return
        self.killed = find_processes(self.marker)
        for pid in self.killed:
            os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline:  # until the port refuses connections
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)


@pytest.mark.slow
def test_mlflow_lost_mid_sweep_training_goes_on_and_sync_restores_exact_counts(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `ipt-ray report --sync NAME` finds runs/sweeps/NAME from here
    root = tmp_path / "mlflow"
    epochs, seeds, configs = 3, (0, 1), 2
    started = time.monotonic()
    with mlflow_server(root=root) as server:
        # The kill happens inside the driver's callback, so every later write meets a dead server whatever
        # the epoch length: the plain CB training set is enough here.
        path = outage_yaml(tmp_path, tiny_bert, server.uri, num_samples=configs, epochs=epochs, seeds=seeds,
                           copies=1)
        killer = KillServerAfterFirstEpoch(str(root), server.port)
        out = run_sweep(load_config(path), path, callbacks=[killer])
    sweep_s = time.monotonic() - started
    assert killer.killed, "the MLflow server was never killed"
    # Training went on: every trial finished and the results are kept locally.
    assert [c.status for c in out["summary"].configs] == ["completed"] * configs
    local = report.read_csv(Path(out["sweep_dir"]) / "report" / "results.csv")
    assert len(local.configs) == configs and all(c.n_seeds == len(seeds) for c in local.configs)
    journal = Path(out["sweep_dir"]) / JOURNAL_FILE
    journaled = Counter(r["op"] for r in read_journal(journal))
    assert out["journaled"] == sum(journaled.values()) > 0
    assert journaled["log_aggregate"] == 1 and journaled["finish"] == 1

    # The server comes back on the same sqlite store (a new port); `report --sync` replays the journal.
    with mlflow_server(root=root) as server:
        assert main(["report", "--sync", out["name"], "--tracking-uri", server.uri]) == 0
        counts = mlflow_counts(server.uri, epochs)
        assert main(["report", "--sync", out["name"], "--tracking-uri", server.uri]) == 0  # idempotent
        again = mlflow_counts(server.uri, epochs)
    assert counts["kinds"] == {"parent": 1, "trial": configs * len(seeds), "aggregate": 1}
    assert counts["duplicate_runs"] == 0 and counts["duplicate_epochs"] == 0 and counts["exact_histories"]
    assert counts["statuses"] == {("parent", "FINISHED"): 1, ("trial", "FINISHED"): configs * len(seeds),
                                  ("aggregate", "FINISHED"): 1}
    assert counts["child_tags"] == {"completed": configs * len(seeds)}
    assert again["kinds"] == counts["kinds"] and again["exact_histories"]
    assert read_journal(journal) == []
    figures("mlflow-lost", trials_finished=len(out["summary"].configs), journaled=dict(journaled),
            runs_in_mlflow=counts["kinds"], duplicate_runs=counts["duplicate_runs"],
            duplicate_epochs=counts["duplicate_epochs"], sweep_s=round(sweep_s, 1))


# ---------------------------------------------------------------- a trial worker killed mid-trial


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def trial_workers() -> list[int]:
    """This process's Ray trial actors (``ray::ImplicitFunc``, the function trainable ``ipt_trial``)."""
    return [p for p in _descendants(os.getpid())
            if _cmdline(p).startswith("ray::ImplicitFunc") or "ipt_trial" in _cmdline(p)]


class KillWorkerAfterFirstEpoch(tune.Callback):
    """SIGKILL the trial's worker once its first epoch is reported and that epoch's checkpoint is handed to
    Tune (``on_checkpoint``: Tune registers it right after this hook returns; killing on the result alone
    can beat the registration, and the retry then rightly starts from scratch)."""

    def __init__(self) -> None:
        self.killed: list[int] = []
        self.epoch_at_kill = 0

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        if self.killed:
            return
        self.killed = trial_workers()
        self.epoch_at_kill = int((trial.last_result or {}).get("epoch", 0))
        for pid in self.killed:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_trial_worker_killed_with_sigkill_resumes_from_its_checkpoint(tiny_bert, tmp_path):
    epochs, seeds = 3, (0, 1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = outage_yaml(tmp_path, tiny_bert, uri, num_samples=1, epochs=epochs, seeds=seeds)
    killer = KillWorkerAfterFirstEpoch()
    started = time.monotonic()
    out = run_sweep(load_config(path), path, callbacks=[killer])
    sweep_s = time.monotonic() - started
    assert len(killer.killed) == 1, f"expected one trial worker to kill, found {killer.killed}"
    assert not Path(f"/proc/{killer.killed[0]}").exists() or "Z" in Path(f"/proc/{killer.killed[0]}/stat").read_text()
    (config,) = out["summary"].configs
    assert config.status == "completed" and config.n_seeds == len(seeds)
    counts = mlflow_counts(uri, epochs)
    assert counts["kinds"] == {"parent": 1, "trial": len(seeds), "aggregate": 1}
    assert counts["duplicate_runs"] == 0 and counts["duplicate_epochs"] == 0 and counts["exact_histories"]
    assert counts["child_tags"] == {"completed": len(seeds)}
    client = counts["client"]
    resumed = []
    for run in counts["runs"]:
        if run.data.tags.get("ipt.kind") == "trial":
            history = sorted(client.get_metric_history(run.info.run_id, "resumed_from_epoch"), key=lambda m: m.step)
            resumed.append(history[-1].value)
    assert min(resumed) >= 1, f"training restarted from scratch instead of the checkpoint: {resumed}"
    figures("worker-killed", killed_pid=killer.killed[0], killed_after_epoch=killer.epoch_at_kill,
            resumed_from_epoch=max(resumed), trials_finished=len(out["summary"].configs),
            runs_in_mlflow=counts["kinds"], duplicate_runs=counts["duplicate_runs"],
            duplicate_epochs=counts["duplicate_epochs"], sweep_s=round(sweep_s, 1))
