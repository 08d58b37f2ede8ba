"""Where adapters come from: a folder on disk, an MLflow run, or a registered model (``models:/NAME/VERSION``).

Every source resolves to local adapter folders (``adapter_model.safetensors`` + ``adapter_config.json``),
name -> folder; MLflow sources are downloaded once into a cache folder.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import mlflow.artifacts
from mlflow.tracking import MlflowClient

from ipt_ray.model import ADAPTER_FILE
from ipt_ray.tracking import resolve_tracking_uri, search_all, tag_filter
from ipt_ray.tracking.models import ADAPTER_ARTIFACT, ADAPTER_TAG
from ipt_ray.tracking.pyfunc import MODEL_ARTIFACT

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def adapter_folders_under(root: Path) -> list[Path]:
    """Every adapter folder at or below ``root``, in path order."""
    if (root / ADAPTER_FILE).is_file():
        return [root]
    return sorted(p.parent for p in root.rglob(ADAPTER_FILE))


def resolve_source(source: str, ensemble: bool = False, tracking_uri: str | None = None,
                   cache: str | Path | None = None) -> dict[str, Path]:
    """name -> adapter folder for ``source``: a folder, an MLflow run id or ``models:/NAME/VERSION``.

    A seed's adapter (folder or child run) alone, or with ``ensemble`` every seed of its config (the
    folder's ``seed_*`` siblings, the config's other child runs). A registered model, an aggregate run
    and a folder of seeds are the config's seeds already. Names are ``seed_<s>``.
    """
    if source.startswith("models:/"):
        return seed_names(download(registered_source(source, tracking_uri), None, tracking_uri, cache))
    path = Path(source)
    if path.exists():
        return local_folders(path, ensemble)
    if RUN_ID.match(source):
        return run_folders(source, ensemble, tracking_uri, cache)
    raise FileNotFoundError(f"{source}: not an adapter folder, an MLflow run id or models:/NAME/VERSION")


def registered_source(uri: str, tracking_uri: str | None) -> str:
    """The artifact URI of ``models:/NAME/VERSION`` (or ``models:/NAME@ALIAS``) in the registry at
    ``tracking_uri`` (MLflow itself would read the registry of the process-wide tracking URI)."""
    match = re.match(r"^models:/([^/@]+)(?:/(\d+)|@([\w-]+))/?$", uri)
    if match is None:
        raise ValueError(f"{uri}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    store = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    name, number, alias = match.groups()
    version = number or client.get_model_version_by_alias(name, alias).version
    return client.get_model_version_download_uri(name, str(version))


def local_folders(path: Path, ensemble: bool) -> dict[str, Path]:
    folder = path.parent if path.is_file() else path
    if (folder / ADAPTER_FILE).is_file():
        return seed_names(adapter_folders_under(folder.parent) if ensemble else [folder])
    found = adapter_folders_under(folder)
    if not found:
        raise FileNotFoundError(f"{path}: no {ADAPTER_FILE} in it or below it")
    return seed_names(found)


def seed_names(folders: list[Path]) -> dict[str, Path]:
    """``seed_<s>`` (the folder's name where it says so, else its position) -> folder."""
    out: dict[str, Path] = {}
    for i, folder in enumerate(folders):
        name = folder.name if re.match(r"^seed_\d+$", folder.name) else f"seed_{i}"
        out[name if name not in out else f"{name}_{i}"] = folder
    return out


def run_folders(run_id: str, ensemble: bool, tracking_uri: str | None, cache: str | Path | None) -> dict[str, Path]:
    """The adapters of an MLflow run: a child run's (its config's seeds with ``ensemble``) or an aggregate
    run's model."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    run = client.get_run(run_id)
    tags = run.data.tags
    if tags.get("ipt.kind") == "aggregate":
        return seed_names(download(f"runs:/{run_id}/{MODEL_ARTIFACT}", client, tracking_uri, cache))
    if ADAPTER_TAG not in tags:
        raise FileNotFoundError(f"MLflow run {run_id} holds no adapter (no tag {ADAPTER_TAG})")
    runs = [run]
    if ensemble:
        filters = {"ipt.sweep_id": tags["ipt.sweep_id"], "ipt.kind": "trial", "ipt.config_id": tags["ipt.config_id"]}
        seeds: dict[str, object] = {}
        for other in search_all(client, run.info.experiment_id, tag_filter(filters), ["attributes.start_time ASC"]):
            if ADAPTER_TAG in other.data.tags:
                seeds.setdefault(other.data.tags["ipt.seed"], other)
        runs = [seeds[s] for s in sorted(seeds, key=int)]
    return {f"seed_{r.data.tags['ipt.seed']}": download(f"runs:/{r.info.run_id}/{ADAPTER_ARTIFACT}", client,
                                                        tracking_uri, cache)[0] for r in runs}


def download(uri: str, client: MlflowClient | None, tracking_uri: str | None, cache: str | Path | None) -> list[Path]:
    """The adapter folders under an MLflow artifact URI, downloaded to ``cache`` (default: a temp folder)."""
    target = Path(cache or tempfile.mkdtemp(prefix="ipt-adapters-")) / re.sub(r"[^\w.-]", "_", uri)
    target.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target),
                                                tracking_uri=resolve_tracking_uri(tracking_uri))
    found = adapter_folders_under(Path(local))
    if not found:
        raise FileNotFoundError(f"{uri}: no {ADAPTER_FILE} in it")
    return found
