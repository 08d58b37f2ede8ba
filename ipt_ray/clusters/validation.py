"""Offline checks for the cluster configs in ``clusters/``: ``ipt-ray validate-cluster FILE``.

Two kinds of file:

- Ray cluster launcher YAMLs (``ray up``): filled in with the provider's defaults by Ray's own
  ``prepare_config`` (what ``ray up`` does before it talks to the cloud), then checked against
  ``ray/autoscaler/ray-schema.json`` shipped inside the installed ray package, then Ray's semantic
  checks (``validate_config``). The provider bootstrap that follows in ``ray up`` needs boto3 /
  Google SDKs and credentials, so it is not run. See :mod:`ipt_ray.clusters.launcher`.
- KubeRay ``RayJob`` manifests: checked against ``ipt_ray/clusters/schemas/rayjob-v1.subset.yaml``, a
  hand-written subset of the RayJob CRD's openAPIV3Schema (see that file and
  :mod:`ipt_ray.clusters.kubernetes`).

Both then get ipt-ray's own rules: every Ray node declares the ``trial_slot`` resource that trials
with ``cluster.num_workers >= 1`` reserve, token auth is on, the dashboard is not exposed, and no
secret is written in the file (:mod:`ipt_ray.clusters.secrets`). Each problem starts with the key
path it is about.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ipt_ray.clusters.kubernetes import validate_kubernetes
from ipt_ray.clusters.launcher import validate_launcher
from ipt_ray.clusters.secrets import find_secrets


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
        problems = validate_kubernetes(doc)
    else:
        problems = validate_launcher(doc)
    # Several node types share one start command: report each problem once.
    return list(dict.fromkeys(problems + find_secrets(doc)))
