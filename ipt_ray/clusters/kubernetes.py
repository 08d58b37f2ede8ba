"""KubeRay ``RayJob`` manifests: the hand-written RayJob schema subset, then ipt-ray's rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ipt_ray.clusters.rules import LOCAL_HOSTS, declares_trial_slot, shell_args
from ipt_ray.clusters.schema import schema_problems
from ipt_ray.config import TRIAL_SLOT

RAYJOB_SCHEMA = Path(__file__).parent / "schemas" / "rayjob-v1.subset.yaml"
MIN_TOKEN_AUTH_RAY = (2, 52)


def validate_kubernetes(doc: dict[str, Any]) -> list[str]:
    """All problems of a Kubernetes manifest; only a RayJob passes."""
    kind = doc.get("kind")
    if kind == "Secret":
        return ["kind: a Kubernetes Secret is committed here; create it with `kubectl create secret` instead"]
    if kind != "RayJob":
        return [f"kind: {kind!r} is not checked here; expected a RayJob (apiVersion ray.io/v1) or a Ray cluster config"]
    problems = schema_problems(doc, yaml.safe_load(RAYJOB_SCHEMA.read_text()))
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
    problems += _auth_problems(base, cluster)
    head = cluster["headGroupSpec"]
    problems += _head_exposure_problems(f"{base}.headGroupSpec", head)
    groups = [(f"{base}.headGroupSpec", head)]
    groups += [(f"{base}.workerGroupSpecs[{i}]", g) for i, g in enumerate(cluster.get("workerGroupSpecs") or [])]
    for where, group in groups:
        problems += _group_trial_slot_problems(where, group)
    return problems


def _auth_problems(base: str, cluster: dict[str, Any]) -> list[str]:
    auth = cluster.get("authOptions") or {}
    if auth.get("mode") != "token":
        return [f"{base}.authOptions.mode: token auth is off; set authOptions: {{mode: token}} (KubeRay >= 1.5.1). "
                "RAY_AUTH_MODE in the pod env alone leaves the operator's job submission and status "
                "polling without the token"]
    if _version(cluster.get("rayVersion")) < MIN_TOKEN_AUTH_RAY:
        return [f"{base}.rayVersion: {cluster.get('rayVersion')!r}; token auth needs Ray >= 2.52.0 and KubeRay "
                "reads the version from here"]
    return []


def _head_exposure_problems(where: str, head: dict[str, Any]) -> list[str]:
    """The dashboard (Jobs API) reachable inside the Kubernetes cluster only, but by the operator."""
    problems: list[str] = []
    if head.get("serviceType") not in (None, "ClusterIP"):
        problems.append(f"{where}.serviceType: {head['serviceType']} exposes the dashboard (Jobs API) outside "
                        "the Kubernetes cluster; use ClusterIP and `kubectl port-forward`")
    if head.get("enableIngress"):
        problems.append(f"{where}.enableIngress: true exposes the dashboard (Jobs API); leave it false")
    host = (head.get("rayStartParams") or {}).get("dashboard-host")
    if host in LOCAL_HOSTS:
        problems.append(f"{where}.rayStartParams.dashboard-host: {host} hides the dashboard from the KubeRay "
                        "operator and the submitter, which call it through the head Service; use 0.0.0.0 (token auth guards it)")
    return problems


def _group_trial_slot_problems(where: str, group: dict[str, Any]) -> list[str]:
    """``rayStartParams.resources`` is pasted into the ``ray start`` command line, so it must be
    shell-quoted JSON, e.g. ``'"{\\"trial_slot\\": 1}"'``."""
    effective: dict[str, Any] = {}
    raw = (group.get("rayStartParams") or {}).get("resources")
    if raw is not None:
        args = shell_args(raw)
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
    if not declares_trial_slot(effective):
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
