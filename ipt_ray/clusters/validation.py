"""Offline checks for the cluster configs in ``clusters/``: ``ipt-ray validate-cluster FILE``.

Two kinds of file:

- Ray cluster launcher YAMLs (``ray up``): filled in with the provider's defaults by Ray's own
  ``prepare_config`` (what ``ray up`` does before it talks to the cloud), then checked against
  ``ray/autoscaler/ray-schema.json`` shipped inside the installed ray package, then Ray's semantic
  checks (``validate_config``). The provider bootstrap that follows in ``ray up`` needs boto3 /
  Google SDKs and credentials, so it is not run.
- KubeRay ``RayJob`` manifests: checked against ``ipt_ray/schemas/rayjob-v1.subset.yaml``, a
  hand-written subset of the RayJob CRD's openAPIV3Schema (see that file).

Both then get ipt-ray's own rules: every Ray node declares the ``trial_slot`` resource that trials
with ``cluster.num_workers >= 1`` reserve, token auth is on, the dashboard is not exposed, and no
secret is written in the file. Each problem starts with the key path it is about.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import shlex
from pathlib import Path
from typing import Any, Iterator

import yaml

from ipt_ray.config import TRIAL_SLOT

RAYJOB_SCHEMA = Path(__file__).parent / "schemas" / "rayjob-v1.subset.yaml"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
MIN_TOKEN_AUTH_RAY = (2, 52)


class ClusterValidationError(ValueError):
    """A cluster config with problems; ``problems`` holds one line per problem, key path first."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{self.path}: {len(self.problems)} problem(s)\n{lines}")


def check_cluster_file(path: str | Path) -> None:
    """Raise :class:`ClusterValidationError` unless ``validate_cluster_file`` finds nothing."""
    problems = validate_cluster_file(path)
    if problems:
        raise ClusterValidationError(path, problems)


def validate_cluster_file(path: str | Path) -> list[str]:
    """All problems of a launcher YAML or a RayJob manifest; an empty list means valid."""
    path = Path(path)
    if not path.is_file():
        return [f"{path}: no such file"]
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as err:
        return [f"{path}: not valid YAML: {' '.join(str(err).split())}"]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        kinds = ", ".join(str(d.get("kind")) if isinstance(d, dict) else type(d).__name__ for d in docs) or "nothing"
        return [f"<root>: expected one mapping (a Ray cluster config or a RayJob), found {len(docs)} document(s): {kinds}"]
    doc = docs[0]
    if "kind" in doc or "apiVersion" in doc:
        problems = _validate_kubernetes(doc)
    else:
        problems = _validate_launcher(doc)
    # Several node types share one start command: report each problem once.
    return list(dict.fromkeys(problems + _find_secrets(doc)))


# ---------------------------------------------------------------- Ray cluster launcher


def _validate_launcher(raw: dict[str, Any]) -> list[str]:
    provider = raw.get("provider")
    if not isinstance(provider, dict) or not isinstance(provider.get("type"), str):
        return ["provider.type: required (aws, gcp, azure, ...): the launcher picks its defaults by it "
                "(an experiment YAML is checked by `ipt-ray validate`)"]
    config, problems = _prepare_launcher(raw)
    problems += _schema_problems(config, _ray_schema())
    if not problems:
        problems += _ray_semantic_problems(config)
    return problems + _launcher_rules(config)


def _prepare_launcher(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config as ``ray up`` sees it before the cloud bootstrap: provider defaults merged in."""
    from ray.autoscaler._private.util import fillout_defaults, prepare_config

    util_logger = logging.getLogger("ray.autoscaler._private.util")
    level = util_logger.level
    util_logger.setLevel(logging.WARNING)  # its INFO lines ("setting max workers ...") are noise here
    try:
        try:
            return prepare_config(copy.deepcopy(raw)), []
        except NotImplementedError:
            return raw, [f"provider.type: unsupported node provider {raw['provider']['type']!r}"]
        except Exception:  # noqa: BLE001 - a malformed config can break any step; the schema names the field
            pass
        try:
            return fillout_defaults(copy.deepcopy(raw)), []
        except Exception:  # noqa: BLE001
            return raw, []
    finally:
        util_logger.setLevel(level)


def _ray_schema() -> dict[str, Any]:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _ray_semantic_problems(config: dict[str, Any]) -> list[str]:
    """Ray's ``validate_config`` beyond the schema: head type known, min_workers within max_workers."""
    from ray.autoscaler._private.util import validate_config

    try:
        validate_config(config)
    except Exception as err:  # noqa: BLE001 - Ray raises ValueError / RuntimeError with the reason
        text = str(err).splitlines()[0]
        key = next((k for k in ("head_node_type", "max_workers", "cluster_synced_files") if k in text), "<root>")
        return [f"{key}: {text}"]
    return []


def _launcher_rules(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    starts: dict[str, list[tuple[str, str]]] = {}
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        cmds = config.get(key)
        cmds = cmds if isinstance(cmds, list) else []
        starts[key] = [(f"{key}[{i}]", c) for i, c in enumerate(cmds) if isinstance(c, str) and "ray start" in c]
    if not any("--head" in c for _, c in starts["head_start_ray_commands"]):
        problems.append("head_start_ray_commands: no `ray start --head` command")

    for key, found in starts.items():
        for where, cmd in found:
            if not re.search(r"\bRAY_AUTH_MODE=token\b", cmd):
                problems.append(f"{where}: `ray start` without RAY_AUTH_MODE=token in the same command "
                                "(each command runs in its own shell): token auth would be off")
            if key == "head_start_ray_commands":
                problems += _dashboard_problems(where, cmd)
    if starts["head_start_ray_commands"] and not _token_reaches_nodes(config):
        problems.append("file_mounts: RAY_AUTH_MODE=token but no token reaches the nodes; mount it "
                        "(\"~/.ray/auth_token\": \"~/.ray/auth_token\") or set RAY_AUTH_TOKEN_PATH in the start commands")

    node_types = config.get("available_node_types")
    head_type = config.get("head_node_type")
    if isinstance(node_types, dict):
        for name, node in node_types.items():
            key = "head_start_ray_commands" if name == head_type else "worker_start_ray_commands"
            problems += _trial_slot_problems(f"available_node_types.{name}", node, starts[key])
    return problems


def _dashboard_problems(where: str, cmd: str) -> list[str]:
    args = _shell_args(cmd)
    if any(a.lower() in ("--include-dashboard=false", "--include-dashboard=0") for a in args):
        return [f"{where}: --include-dashboard=false: without the dashboard there is no Jobs API for `ray job submit`"]
    host = _option(args, "--dashboard-host")
    if host is None:
        return [f"{where}: no --dashboard-host; pass --dashboard-host=127.0.0.1 and reach the dashboard "
                "with `ray dashboard CLUSTER.yaml`"]
    if host not in LOCAL_HOSTS:
        return [f"{where}: --dashboard-host={host} exposes the dashboard (Jobs API: remote code execution) "
                "on the network; use 127.0.0.1 and `ray dashboard CLUSTER.yaml`"]
    return []


def _token_reaches_nodes(config: dict[str, Any]) -> bool:
    mounts = config.get("file_mounts")
    if isinstance(mounts, dict) and any(str(remote).rstrip("/").endswith(".ray/auth_token") for remote in mounts):
        return True
    commands = [c for k in ("head_start_ray_commands", "worker_start_ray_commands", "setup_commands",
                            "head_setup_commands", "worker_setup_commands") for c in (config.get(k) or [])]
    return any(isinstance(c, str) and re.search(r"\bRAY_AUTH_TOKEN(_PATH)?=", c) for c in commands)


def _trial_slot_problems(where: str, node: Any, starts: list[tuple[str, str]]) -> list[str]:
    """The node's resources as Ray ends up with them: ``--resources`` overridden by the node type's
    ``resources`` (the launcher exports those as RAY_OVERRIDE_RESOURCES for ``ray start``)."""
    problems: list[str] = []
    effective: dict[str, Any] = {}
    for cmd_where, cmd in starts:
        value = _option(_shell_args(cmd), "--resources")
        if value is None:
            continue
        try:
            parsed = json.loads(value)
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            effective.update(parsed)
        except ValueError as err:
            problems.append(f"{cmd_where}: --resources is not a JSON object ({err}): {value!r}")
    declared = node.get("resources") if isinstance(node, dict) else None
    if isinstance(declared, dict):
        effective.update(declared)
    slots = effective.get(TRIAL_SLOT)
    if not isinstance(slots, (int, float)) or isinstance(slots, bool) or slots <= 0:
        problems.append(f"{where}.resources.{TRIAL_SLOT}: the node declares no '{TRIAL_SLOT}' resource, so trials with "
                        f"cluster.num_workers >= 1 never run there; add \"{TRIAL_SLOT}\": N to its resources "
                        f"or --resources='{{\"{TRIAL_SLOT}\": N}}' to its ray start")
    return problems


def _shell_args(cmd: str) -> list[str]:
    try:
        return shlex.split(cmd)
    except ValueError:
        return cmd.split()


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


# ---------------------------------------------------------------- KubeRay RayJob


def _validate_kubernetes(doc: dict[str, Any]) -> list[str]:
    kind = doc.get("kind")
    if kind == "Secret":
        return ["kind: a Kubernetes Secret is committed here; create it with `kubectl create secret` instead"]
    if kind != "RayJob":
        return [f"kind: {kind!r} is not checked here; expected a RayJob (apiVersion ray.io/v1) or a Ray cluster config"]
    problems = _schema_problems(doc, yaml.safe_load(RAYJOB_SCHEMA.read_text()))
    if problems:
        return problems
    return _rayjob_rules(doc)


def _rayjob_rules(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    spec = doc["spec"]
    if not spec.get("entrypoint"):
        problems.append("spec.entrypoint: empty; e.g. `ipt-ray sweep experiments/quickstart.yaml`")
    cluster = spec.get("rayClusterSpec")
    if not isinstance(cluster, dict):
        return problems + ["spec.rayClusterSpec: required (ipt-ray's RayJob brings its own Ray cluster)"]
    base = "spec.rayClusterSpec"
    auth = cluster.get("authOptions") or {}
    if auth.get("mode") != "token":
        problems.append(f"{base}.authOptions.mode: token auth is off; set authOptions: {{mode: token}} (KubeRay >= 1.5.1). "
                        "RAY_AUTH_MODE in the pod env alone leaves the operator's job submission and status "
                        "polling without the token")
    elif _version(cluster.get("rayVersion")) < MIN_TOKEN_AUTH_RAY:
        problems.append(f"{base}.rayVersion: {cluster.get('rayVersion')!r}; token auth needs Ray >= 2.52.0 and KubeRay "
                        "reads the version from here")

    head = cluster["headGroupSpec"]
    if head.get("serviceType") not in (None, "ClusterIP"):
        problems.append(f"{base}.headGroupSpec.serviceType: {head['serviceType']} exposes the dashboard (Jobs API) outside "
                        "the Kubernetes cluster; use ClusterIP and `kubectl port-forward`")
    if head.get("enableIngress"):
        problems.append(f"{base}.headGroupSpec.enableIngress: true exposes the dashboard (Jobs API); leave it false")
    host = (head.get("rayStartParams") or {}).get("dashboard-host")
    if host in LOCAL_HOSTS:
        problems.append(f"{base}.headGroupSpec.rayStartParams.dashboard-host: {host} hides the dashboard from the KubeRay "
                        "operator and the submitter, which call it through the head Service; use 0.0.0.0 (token auth guards it)")

    groups = [(f"{base}.headGroupSpec", head)]
    groups += [(f"{base}.workerGroupSpecs[{i}]", g) for i, g in enumerate(cluster.get("workerGroupSpecs") or [])]
    for where, group in groups:
        problems += _group_trial_slot_problems(where, group)
    return problems


def _group_trial_slot_problems(where: str, group: dict[str, Any]) -> list[str]:
    """``rayStartParams.resources`` is pasted into the ``ray start`` command line, so it must be
    shell-quoted JSON, e.g. ``'"{\\"trial_slot\\": 1}"'``."""
    effective: dict[str, Any] = {}
    raw = (group.get("rayStartParams") or {}).get("resources")
    if raw is not None:
        args = _shell_args(raw)
        try:
            if len(args) != 1:
                raise ValueError("the shell splits it into several words")
            parsed = json.loads(args[0])
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            effective.update(parsed)
        except ValueError as err:
            return [f"{where}.rayStartParams.resources: {raw!r} is not shell-quoted JSON ({err}); "
                    f"write it as '\"{{\\\"{TRIAL_SLOT}\\\": 1}}\"'"]
    for key, value in (group.get("resources") or {}).items():
        effective[key] = _number(value)
    slots = effective.get(TRIAL_SLOT)
    if not isinstance(slots, (int, float)) or isinstance(slots, bool) or slots <= 0:
        return [f"{where}.rayStartParams.resources: declares no '{TRIAL_SLOT}' resource, so trials with "
                f"cluster.num_workers >= 1 never run there; add '\"{{\\\"{TRIAL_SLOT}\\\": N}}\"'"]
    return []


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _version(text: Any) -> tuple[int, ...]:
    parts = re.findall(r"\d+", str(text or ""))[:2]
    return tuple(int(p) for p in parts) if parts else (0,)


# ---------------------------------------------------------------- schema


def _schema_problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every schema violation, key path first; an unknown key is named in the path, with the allowed ones."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    problems: list[str] = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]):
        where = _key_path(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            patterns = list(err.schema.get("patternProperties", {}))
            for key in sorted(err.instance):
                if key not in allowed and not any(re.search(p, key) for p in patterns):
                    prefix = f"{where}.{key}" if where != "<root>" else str(key)
                    problems.append(f"{prefix}: unknown key (allowed: {', '.join(allowed)})")
        else:
            problems.append(f"{where}: {err.message}")
    return problems


def _key_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


# ---------------------------------------------------------------- secrets

# Credentials with a recognisable shape, wherever they appear.
_SECRET_SHAPES = {
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "a Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "a URL with a password": re.compile(r"://[^/\s:@$]+:[^/\s@$]+@"),
}
_SECRET_WORD = r"(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|credentials?)"
_SECRET_NAME = re.compile(rf"(?i){_SECRET_WORD}$")
# NAME=value / NAME: value / --name=value inside a string (shell commands, runtimeEnvYAML).
_ASSIGNMENT = re.compile(r"(?<![\w.-])(-{0,2}[\w.-]+)[ \t]*[=:][ \t]*([\"']?)([^\s\"';&|)]+)")


def _find_secrets(doc: Any) -> list[str]:
    problems: list[str] = []
    for where, key, value in _walk(doc):
        if key is not None and isinstance(value, str) and _secret_name(key) and _literal(value):
            problems.append(f"{where}: looks like a committed secret; take it from the environment or a secret store")
            continue
        if not isinstance(value, str):
            continue
        for what, pattern in _SECRET_SHAPES.items():
            if pattern.search(value):
                problems.append(f"{where}: contains {what}; take it from the environment or a secret store")
        for match in _ASSIGNMENT.finditer(value):
            if _secret_name(match.group(1)) and _literal(match.group(3)):
                problems.append(f"{where}: {match.group(1)} is set to a literal value; read it from the environment "
                                "or a file that is not committed")
    return problems


def _walk(node: Any, where: str = "", key: str | None = None) -> Iterator[tuple[str, str | None, Any]]:
    """(key path, the name the value goes by, value) for every scalar; an env entry
    ``{name: X, value: V}`` gives V the name X."""
    if isinstance(node, dict):
        env_name = node.get("name") if isinstance(node.get("name"), str) and "value" in node else None
        for k, v in node.items():
            path = f"{where}.{k}" if where else str(k)
            yield from _walk(v, path, env_name if (k == "value" and env_name) else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}[{i}]", None)
    else:
        yield where or "<root>", key, node


def _secret_name(name: str) -> bool:
    """``MLFLOW_TRACKING_PASSWORD``, ``adminPassword``, ``--api-key``; not ``RAY_AUTH_TOKEN_PATH``,
    ``secretName`` or ``HttpTokens``, which name where a secret is or something else."""
    return bool(_SECRET_NAME.search(name.lstrip("-")))


def _literal(value: str) -> bool:
    """A value written out, not a reference to one (``$VAR``, ``$(cat f)``, ``%s``, ``<fill-in>``, a path)."""
    value = value.strip()
    return len(value) >= 4 and not value.startswith(("$", "%", "<", "{", "~", "/", "./", "*")) and value.lower() not in (
        "null", "none", "true", "false", "changeme", "change-me")
