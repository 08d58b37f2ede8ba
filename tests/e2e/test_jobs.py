"""`ray job submit` against a real (local, token-auth) Ray head, with an MLflow tracking server.

What a user does on a cluster (docs/jobs-and-mlflow-ui.md), on 127.0.0.1: a head started with
``ray start --head`` and ``RAY_AUTH_MODE=token``, an ``mlflow server``, and ``ipt-ray sweep`` submitted
as a job with the repository as its working dir. The servers come from tests/servers.py, which stops
exactly the processes it started (never ``ray stop``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py
from servers import BIN, RayHead, mlflow_server, ray_head  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = "experiments/quickstart-tiny.yaml"
EXPERIMENT = "ipt-ray-quickstart-tiny"
# The upload honours .gitignore (.venv, runs/, mlflow.db, mlruns/, ...) and Ray 2.60 skips .git and .venv;
# mlartifacts/ (a local store's artifacts, beside ./mlflow.db) is in neither, hence the explicit list.
EXCLUDES = [".git", ".venv", "runs", "mlruns", "mlflow.db", "mlartifacts", "*.egg-info", ".pytest_cache",
            "outputs"]

pytestmark = [pytest.mark.slow, pytest.mark.no_shared_ray]  # the jobs run on the head started here


@pytest.fixture(scope="module")
def head() -> RayHead:
    with ray_head(num_cpus=2, resources={"trial_slot": 2}) as h:
        yield h


def ray_job(head: RayHead, *args: str, with_token: bool = True, cwd: Path = REPO, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``ray job <args> --address <dashboard>`` as a client process would run it."""
    cmd = [str(BIN / "ray"), "job", args[0], "--address", head.dashboard_url, "--log-style", "record", *args[1:]]
    return subprocess.run(cmd, cwd=cwd, env={**head.client_env(with_token=with_token), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def output(proc: subprocess.CompletedProcess) -> str:
    return f"$ {' '.join(proc.args)}\nrc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_sweep_job_on_a_token_auth_cluster_logs_exact_runs_to_the_mlflow_server(head, tmp_path):
    from mlflow import MlflowClient

    with mlflow_server(tmp_path / "mlflow") as ml:
        # Not TOKENIZERS_PARALLELISM: the driver's ray.init sets it itself, and Ray refuses to merge a job's
        # and a driver's runtime env that name the same variable.
        runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": ml.uri, "HF_HUB_OFFLINE": "1"}, "excludes": EXCLUDES}
        submission_id = f"ipt-tiny-{uuid.uuid4().hex[:8]}"
        proc = ray_job(head, "submit", "--submission-id", submission_id, "--working-dir", ".",
                       "--runtime-env-json", json.dumps(runtime_env), "--", "ipt-ray", "sweep", TINY)
        text = output(proc)
        assert proc.returncode == 0, text + head.logs()
        assert f"Job '{submission_id}' succeeded" in text, text
        # the job ran in the uploaded copy: its results landed under the head's temp dir, not the checkout
        results = re.search(r"results: (\S+)", text)
        assert results and results[1].startswith(str(head.temp_dir)), text
        # that copy is small: .venv, .git, runs/, mlflow.db, mlartifacts/ were not shipped
        pkg = Path(results[1].split("/runs/sweeps/")[0])
        assert pkg.name.startswith("_ray_pkg_") and (pkg / TINY).is_file() and (pkg / "ipt_ray").is_dir(), pkg
        shipped = [p for p in pkg.rglob("*") if p.is_file() and p.relative_to(pkg).parts[0] != "runs"]
        unwanted = (".venv", ".git", "mlruns", "mlflow.db", "mlartifacts")
        assert not [p for p in shipped if p.relative_to(pkg).parts[0] in unwanted]
        assert sum(p.stat().st_size for p in shipped) < 20 * 2**20
        # `ray job status` / `ray job logs` (what the docs tell users to watch) see the same job
        status = ray_job(head, "status", submission_id)
        assert status.returncode == 0 and f"Job '{submission_id}' succeeded" in status.stdout, output(status)
        logs = ray_job(head, "logs", submission_id)
        assert logs.returncode == 0 and "configs x 2 seeds" in logs.stdout, output(logs)

        client = MlflowClient(ml.uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        assert exp is not None, f"no experiment {EXPERIMENT!r} on {ml.uri}"
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        kinds = Counter(r.data.tags.get("ipt.kind") for r in runs)
        assert kinds == {"parent": 1, "trial": 4, "aggregate": 1}, kinds
        parent = next(r for r in runs if r.data.tags["ipt.kind"] == "parent")
        trials = [r for r in runs if r.data.tags["ipt.kind"] == "trial"]
        assert all(r.info.status == "FINISHED" and r.data.tags["ipt.status"] == "completed" for r in trials)
        assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
        # 2 configs x 2 seeds, each run named <config_id>-seed<k>, 2 epochs of dev_accuracy each
        by_config = Counter(r.data.tags["ipt.config_id"] for r in trials)
        assert len(by_config) == 2 and set(by_config.values()) == {2}, by_config
        assert Counter(r.data.tags["ipt.seed"] for r in trials) == {"0": 2, "1": 2}
        assert {r.data.tags["ipt.strategy"] for r in trials} == {"prompt_tuning", "random_ipt"}
        for r in trials:
            assert r.info.run_name == f"{r.data.tags['ipt.config_id']}-seed{r.data.tags['ipt.seed']}"
            steps = [m.step for m in client.get_metric_history(r.info.run_id, "dev_accuracy")]
            assert steps == [1, 2], (r.info.run_name, steps)
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert "experiment.yaml" in artifacts  # artifacts went through the server's proxy


def test_token_auth_rejects_clients_without_the_token_and_ships_the_working_dir(head, tmp_path):
    jobs = f"{head.dashboard_url}/api/jobs/"
    assert http_status(jobs) == 401  # no token
    assert http_status(jobs, {"Authorization": "Bearer " + "0" * 64}) == 403  # wrong token
    assert http_status(jobs, {"Authorization": f"Bearer {head.token}"}) == 200

    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "hello_ipt_job.py").write_text("MESSAGE = 'hello from the uploaded working dir'\n")
    (workdir / "data.txt").write_text("x\n")
    entry = ["--", "python", "-c",
             "import os, hello_ipt_job; print(hello_ipt_job.MESSAGE); print(sorted(os.listdir('.')))"]

    # without the token (no RAY_AUTH_* variables, an empty HOME): refused before anything is uploaded
    refused = ray_job(head, "submit", "--working-dir", ".", *entry, with_token=False, cwd=workdir, timeout=120)
    text = output(refused)
    assert refused.returncode != 0, text
    # HTTP 401 from the dashboard, raised by the client as ray.exceptions.AuthenticationError
    assert "AuthenticationError" in text and "Missing authentication token" in text, text

    # with RAY_AUTH_MODE=token + RAY_AUTH_TOKEN_PATH: accepted, runs in the uploaded dir
    ok = ray_job(head, "submit", "--working-dir", ".", *entry, cwd=workdir, timeout=120)
    text = output(ok)
    assert ok.returncode == 0, text + head.logs()
    assert "hello from the uploaded working dir" in text and "'data.txt'" in text, text
    assert re.search(r"Job 'raysubmit_\w+' succeeded", text), text

    # the token as an explicit header works too (a client without RAY_AUTH_MODE, e.g. a CI runner)
    header = json.dumps({"Authorization": f"Bearer {head.token}"})
    listed = ray_job(head, "list", "--headers", header, with_token=False, timeout=60)
    assert listed.returncode == 0 and "hello_ipt_job" in listed.stdout, output(listed)


def test_a_job_trains_on_a_dataset_shipped_in_the_working_dir(head, tmp_path):
    """examples/newsgroups: the YAML and its CSVs travel with the code; its paths resolve in the uploaded copy."""
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    one_config = json.dumps({"method.strategy": {"type": "choice", "values": ["prompt_tuning"]}})
    overrides = ["task.max_train_samples=32", "task.max_eval_samples=16", "train.epochs=1", "train.seeds=[0]",
                 "train.progress=false", "sweep.num_samples=1", f"sweep.search_space={one_config}", f"tracking.uri={store}"]
    runtime_env = {"env_vars": {"HF_HUB_OFFLINE": "1"}, "excludes": EXCLUDES}
    proc = ray_job(head, "submit", "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env), "--",
                   "ipt-ray", "sweep", "examples/newsgroups/experiment.yaml",
                   *(arg for item in overrides for arg in ("--set", item)))
    text = output(proc)
    assert proc.returncode == 0 and re.search(r"Job 'raysubmit_\w+' succeeded", text), text + head.logs()
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("ipt-ray-newsgroups").experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("ipt.kind") == "trial"]
    assert len(trials) == 1 and trials[0].data.tags["ipt.status"] == "completed", text
    assert {"dev_accuracy", "test_accuracy"} <= set(trials[0].data.metrics), trials[0].data.metrics
