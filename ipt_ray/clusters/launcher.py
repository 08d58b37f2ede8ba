"""Ray cluster launcher YAMLs (``ray up``): Ray's own defaults, schema and checks, then ipt-ray's rules."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any

from ipt_ray.clusters.rules import LOCAL_HOSTS, declares_trial_slot, option_value, shell_args
from ipt_ray.clusters.schema import schema_problems
from ipt_ray.config import TRIAL_SLOT

START_KEYS = ("head_start_ray_commands", "worker_start_ray_commands")


def validate_launcher(raw: dict[str, Any]) -> list[str]:
    """All problems of a launcher config, as ``ray up`` would fill it in before the cloud bootstrap."""
    provider = raw.get("provider")
    if not isinstance(provider, dict) or not isinstance(provider.get("type"), str):
        return ["provider.type: required (aws, gcp, azure, ...): the launcher picks its defaults by it "
                "(an experiment YAML is checked by `ipt-ray validate`)"]
    config, problems = _prepare_launcher(raw)
    problems += schema_problems(config, _ray_schema())
    if not problems:
        problems += _ray_semantic_problems(config)
    return problems + _launcher_rules(config)


def _prepare_launcher(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config as ``ray up`` sees it before the cloud bootstrap: provider defaults merged in."""
    from ray.autoscaler._private.util import fillout_defaults, prepare_config  # heavy: ray, launcher files only

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
    import ray.autoscaler  # heavy: ray, launcher files only; the schema ships inside it

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _ray_semantic_problems(config: dict[str, Any]) -> list[str]:
    """Ray's ``validate_config`` beyond the schema: head type known, min_workers within max_workers."""
    from ray.autoscaler._private.util import validate_config  # heavy: ray, launcher files only

    try:
        validate_config(config)
    except Exception as err:  # noqa: BLE001 - Ray raises ValueError / RuntimeError with the reason
        text = str(err).splitlines()[0]
        key = next((k for k in ("head_node_type", "max_workers", "cluster_synced_files") if k in text), "<root>")
        return [f"{key}: {text}"]
    return []


def _launcher_rules(config: dict[str, Any]) -> list[str]:
    starts = _start_commands(config)
    problems: list[str] = []
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


def _start_commands(config: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The ``ray start`` commands of the head and of the workers, each with its key path."""
    starts: dict[str, list[tuple[str, str]]] = {}
    for key in START_KEYS:
        cmds = config.get(key)
        cmds = cmds if isinstance(cmds, list) else []
        starts[key] = [(f"{key}[{i}]", c) for i, c in enumerate(cmds) if isinstance(c, str) and "ray start" in c]
    return starts


def _dashboard_problems(where: str, cmd: str) -> list[str]:
    args = shell_args(cmd)
    if any(a.lower() in ("--include-dashboard=false", "--include-dashboard=0") for a in args):
        return [f"{where}: --include-dashboard=false: without the dashboard there is no Jobs API for `ray job submit`"]
    host = option_value(args, "--dashboard-host")
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
    commands = [c for k in (*START_KEYS, "setup_commands", "head_setup_commands", "worker_setup_commands")
                for c in (config.get(k) or [])]
    return any(isinstance(c, str) and re.search(r"\bRAY_AUTH_TOKEN(_PATH)?=", c) for c in commands)


def _trial_slot_problems(where: str, node: Any, starts: list[tuple[str, str]]) -> list[str]:
    """The node's resources as Ray ends up with them: ``--resources`` overridden by the node type's
    ``resources`` (the launcher exports those as RAY_OVERRIDE_RESOURCES for ``ray start``)."""
    problems: list[str] = []
    effective: dict[str, Any] = {}
    for cmd_where, cmd in starts:
        value = option_value(shell_args(cmd), "--resources")
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
    if not declares_trial_slot(effective):
        problems.append(f"{where}.resources.{TRIAL_SLOT}: the node declares no '{TRIAL_SLOT}' resource, so trials with "
                        f"cluster.num_workers >= 1 never run there; add \"{TRIAL_SLOT}\": N to its resources "
                        f"or --resources='{{\"{TRIAL_SLOT}\": N}}' to its ray start")
    return problems
