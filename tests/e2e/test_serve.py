"""A tiny sweep -> a registered model -> `ipt-ray serve` on Ray Serve -> real HTTP.

Both seeds of the registered model are served as two adapters; requests for both arrive together and are
batched into one backbone pass; the answers equal load_adapter + a forward pass; 200 concurrent requests
get no error; bad requests get 4xx JSON while the server keeps serving; the processes started here are
stopped by pid (the server's, then anything left with the test's marker).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from ipt_ray.config import load_config
from ipt_ray.serve import named_adapters
from ipt_ray.sweep import run_sweep
from ipt_ray.train.inference import encode_records, load_adapters, probabilities
from servers import BIN, MARKER, find_processes, free_ports, stop_processes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = "tiny-cb"
PAIRS = [["a cat sat on the mat", "a cat sat"], ["it rained all day", "the street is dry"],
         ["the film was long", "the film was short"]]


def tiny_sweep(tmp_path: Path, backbone: Path) -> Path:
    data = {
        "task": {"name": "cb", "max_train_samples": 16, "max_eval_samples": 8, "max_length": 64},
        "backbone": {"name": str(backbone)},
        "method": {"strategy": "prompt_tuning", "prompt_length": 4},
        "train": {"epochs": 1, "batch_size": 8, "seeds": [0, 1], "output_dir": str(tmp_path / "runs")},
        "sweep": {"num_samples": 1, "max_concurrent_trials": 1,
                  "search_space": {"train.lr": {"type": "choice", "values": [0.01]}}},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "tiny", "register_model": MODEL},
        "cluster": {"num_workers": 0},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def http(url: str, body: bytes | None = None, timeout: float = 30.0) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_until_serving(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 300.0) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ipt-ray serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            status, listing = http(url + "/adapters", timeout=5)
            if status == 200:
                return listing
        except (OSError, ValueError):
            pass
        time.sleep(1.0)
    pytest.fail(f"ipt-ray serve did not answer in {timeout_s:.0f}s:\n{log.read_text()[-4000:]}")


def predict(url: str, adapter: str, texts: list) -> tuple[int, dict]:
    return http(url + "/predict", json.dumps({"adapter": adapter, "texts": texts}).encode())


def test_registered_model_served_over_http(tiny_bert, tmp_path):
    path = tiny_sweep(tmp_path, tiny_bert)
    run_sweep(load_config(path), path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (version,) = MlflowClient(uri).search_model_versions(f"name = '{MODEL}'")
    assert int(version.version) == 1 and version.tags["ipt.metric"] == "accuracy"

    port = free_ports(1)[0]
    marker = str(tmp_path / "serve-marker")
    env = {**os.environ, MARKER: marker, "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "ipt-ray"), "serve", f"{MODEL}=models:/{MODEL}/1", "--port", str(port),
                                 "--max-texts", "8", "--batch-wait-ms", "50"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        listing = wait_until_serving(url, proc, log)
        names = sorted(a["name"] for a in listing["adapters"])
        assert names == [f"{MODEL}/seed_0", f"{MODEL}/seed_1"]
        check_batched_answers_equal_load_adapter(url, names, tmp_path)
        check_concurrent_load(url, names)
        check_bad_requests(url, names[0])
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts down its Serve app and the Ray it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        left = stop_processes(marker)
    assert proc.returncode == 0, log.read_text()[-4000:]
    assert left == [] and find_processes(marker) == []


def check_batched_answers_equal_load_adapter(url: str, names: list[str], tmp_path: Path) -> None:
    before = http(url + "/stats")[1]["mixed_adapter_batches"]
    with ThreadPoolExecutor(8) as pool:  # both adapters at once: batched together
        answers = list(pool.map(lambda i: predict(url, names[i % 2], PAIRS), range(8)))
    assert all(status == 200 for status, _ in answers)
    assert http(url + "/stats")[1]["mixed_adapter_batches"] > before
    folders = named_adapters([f"{MODEL}=models:/{MODEL}/1"], tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                             cache=tmp_path / "cache")
    backbone, loaded = load_adapters(folders)
    for i, (_, got) in enumerate(answers[:2]):
        adapter = loaded[names[i]]
        records = [dict(zip(adapter.text_fields, pair)) for pair in PAIRS]
        expected = probabilities(backbone, [(adapter, encode_records(adapter, backbone, records))])[0]
        probs = np.array([[p["probs"][c] for c in adapter.label_names] for p in got["predictions"]])
        np.testing.assert_allclose(probs, expected, atol=1e-5)
        assert [p["label"] for p in got["predictions"]] == [adapter.label_names[k] for k in expected.argmax(-1)]


def check_concurrent_load(url: str, names: list[str]) -> None:
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda i: predict(url, names[i % 2], [PAIRS[i % 3]])[0], range(200)))
    assert statuses.count(200) == 200


def check_bad_requests(url: str, name: str) -> None:
    bad = [(b"{oops", 400), (json.dumps({"adapter": "nope", "texts": [PAIRS[0]]}).encode(), 404),
           (json.dumps({"adapter": name, "texts": [["", "x"]]}).encode(), 422),
           (json.dumps({"adapter": name, "texts": [PAIRS[0]] * 9}).encode(), 413),
           (json.dumps({"adapter": name, "text": [PAIRS[0]]}).encode(), 422)]
    for body, status in bad:
        got, answer = http(url + "/predict", body)
        assert got == status and "error" in answer, (body, got, answer)
    assert predict(url, name, [PAIRS[0]])[0] == 200  # still serving
