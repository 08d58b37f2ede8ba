"""What a sweep trained, in MLflow: each (config, seed) child run's adapter, the best config's pyfunc model.

- Each child run gets its seed's adapter folder (``adapter_model.safetensors`` + ``adapter_config.json``)
  under artifact path ``adapter`` and tag ``ipt.adapter_sha256`` (the files' digest). An adapter whose
  digest the run already holds is not uploaded again (a replay or a resumed driver); a retrained one
  replaces the same two files. Checkpoints never go to MLflow.
- The aggregate run gets the best config's seed adapters as one pyfunc model (:mod:`ipt_ray.tracking.pyfunc`)
  under ``model``, keyed by ``ipt.model_key`` (a digest of the config id and its adapters' digests), and
  with ``tracking.register_model: NAME`` a version of registered model NAME tagged ``ipt.sweep_id``,
  ``ipt.config_id``, ``ipt.metric``, ``<metric>_mean`` / ``<metric>_std`` and ``ipt.model_key``. A key
  already logged (or already registered) is not logged (registered) again.

:class:`ModelLogging` is a part of :class:`~ipt_ray.tracking.SweepTracker`: its writes go through the
tracker's journal like every other write.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from ipt_ray.backbone import ADAPTER
from ipt_ray.results import SweepSummary
from ipt_ray.tracking.pyfunc import MODEL_ARTIFACT, save_model_folder

log = logging.getLogger(__name__)

ADAPTER_ARTIFACT = "adapter"  # a child run's artifact folder that holds its seed's adapter
ADAPTER_TAG = "ipt.adapter_sha256"
MODEL_KEY_TAG = "ipt.model_key"
MODEL_OPS = ("log_adapters", "log_best_model")  # the journal records this module replays


def adapter_digest(folder: str | Path) -> str:
    """sha256 over the adapter's weights and config files."""
    digest = hashlib.sha256()
    for name in (ADAPTER.weights, ADAPTER.config):
        digest.update((Path(folder) / name).read_bytes())
    return digest.hexdigest()


def model_key(config_id: str, digests: Mapping[int, str]) -> str:
    text = config_id + "".join(f"|{s}:{d}" for s, d in sorted(digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def best_model_payload(summary: SweepSummary, register_as: str | None) -> dict[str, Any] | None:
    """What logging the best config's model needs (JSON, for the journal); None without a best config."""
    best = summary.best
    if best is None:
        return None
    return {"config_id": best.config_id, "metric": summary.metric, "mean": best.mean, "std": best.std,
            "register_as": register_as}


class ModelLogging:
    """Adapters and models of a :class:`~ipt_ray.tracking.SweepTracker` (mixed into it)."""

    client: MlflowClient
    sweep_id: str
    uri: str
    _run_info: dict[str, tuple[str, str | None]]  # run id -> (artifact URI, adapter digest tag)
    _trial_runs: Callable[[str], dict[int, str]]  # trial id -> seed -> run id

    # Adapters go up with their trial's end (``SweepTracker.end_trial``); a ``log_adapters`` record is
    # still replayed for journals written before that.
    def _log_adapters_now(self, trial_id: str, folders: Mapping[str, str]) -> None:
        runs = self._trial_runs(trial_id)
        self._warn_unmatched_adapters(trial_id, runs, folders)
        for seed, run_id in sorted(runs.items()):
            digest = self._upload_adapter(run_id, folders.get(str(seed)))
            if digest:
                self.client.set_tag(run_id, ADAPTER_TAG, digest)
                self._adapter_tagged(run_id, digest)

    @staticmethod
    def _warn_unmatched_adapters(trial_id: str, runs: Mapping[int, str], folders: Mapping[str, str]) -> None:
        for seed, folder in folders.items():
            if int(seed) not in runs:
                log.warning("MLflow: trial %s has no run for seed %s; its adapter %s is not uploaded",
                            trial_id, seed, folder)

    def _upload_adapter(self, run_id: str, folder: str | None) -> str | None:
        """Upload one seed's adapter files into its child run; returns the digest whose tag
        (:data:`ADAPTER_TAG`, which marks the upload as landed) the caller must now set, or None when
        there is nothing to upload or the run already holds it."""
        if folder is None:
            return None
        if not (Path(folder) / ADAPTER.weights).is_file():
            log.warning("MLflow: no adapter in %s for run %s; not uploaded", folder, run_id)
            return None
        digest = adapter_digest(folder)
        # The run's artifact URI and digest tag as the tracker last read or wrote them: no get_run per
        # upload (a run found or created by this tracker is always in its cache).
        artifact_uri, held = self._run_info.get(run_id) or (None, None)
        if artifact_uri is None:
            run = self.client.get_run(run_id)
            artifact_uri, held = run.info.artifact_uri, run.data.tags.get(ADAPTER_TAG)
            self._run_info[run_id] = (artifact_uri, held)
        if held == digest:
            return None  # landed before (a replay, a resumed driver)
        repository = get_artifact_repository(artifact_uri, tracking_uri=self.uri)
        for name in (ADAPTER.weights, ADAPTER.config):  # the two files only: nothing else in the folder
            repository.log_artifact(str(Path(folder) / name), ADAPTER_ARTIFACT)
        return digest

    def _adapter_tagged(self, run_id: str, digest: str) -> None:
        artifact_uri, _ = self._run_info.get(run_id) or (None, None)
        self._run_info[run_id] = (artifact_uri, digest)

    def replay_model_write(self, op: str, args: Mapping[str, Any]) -> None:
        """Replay one journaled write of :data:`MODEL_OPS`."""
        if op == "log_adapters":
            self._log_adapters_now(args["trial_id"], args["folders"])
        else:
            self._log_best_model_now(args)

    def log_best_model(self, summary: SweepSummary, register_as: str | None = None) -> None:
        """Log the best config's seed adapters as a pyfunc model into the aggregate run; register it as
        ``register_as`` when given. Call after :meth:`log_aggregate`."""
        payload = best_model_payload(summary, register_as)
        if payload is not None:
            self._write("log_best_model", payload, lambda: self._log_best_model_now(payload))

    def _log_best_model_now(self, best: Mapping[str, Any]) -> str | None:
        """The model's key, or None when the best config has no adapter in MLflow."""
        seeds = self._adapter_runs(best["config_id"])
        if not seeds:
            log.warning("MLflow: config %s has no adapters in MLflow; no model logged", best["config_id"])
            return None
        key = model_key(best["config_id"], {s: run.data.tags[ADAPTER_TAG] for s, run in seeds.items()})
        aggregate = self._search({"ipt.sweep_id": self.sweep_id, "ipt.kind": "aggregate"})[0]
        run_id = aggregate.info.run_id
        if aggregate.data.tags.get(MODEL_KEY_TAG) != key:
            self._upload_model(run_id, seeds)
            self.client.set_tag(run_id, MODEL_KEY_TAG, key)
            self.client.set_tag(run_id, "ipt.model_config_id", best["config_id"])
        if best.get("register_as"):
            register_version(self.client, best["register_as"], run_id, key, self._version_tags(best, key))
        return key

    def _adapter_runs(self, config_id: str) -> dict[int, Run]:
        """Seed -> the oldest child run of ``config_id`` that holds an adapter."""
        runs = self._search({"ipt.sweep_id": self.sweep_id, "ipt.kind": "trial", "ipt.config_id": config_id})
        found: dict[int, Run] = {}
        for run in runs:
            seed = int(run.data.tags["ipt.seed"])
            if ADAPTER_TAG in run.data.tags and seed not in found:
                found[seed] = run
        return found

    def _upload_model(self, run_id: str, seeds: Mapping[int, Run]) -> None:
        with tempfile.TemporaryDirectory(prefix="ipt-model-") as tmp:
            folders = {s: self.client.download_artifacts(run.info.run_id, ADAPTER_ARTIFACT, tmp + f"/seed_{s}")
                       for s, run in seeds.items()}
            model = save_model_folder(Path(tmp) / MODEL_ARTIFACT, folders)
            self.client.log_artifacts(run_id, str(model), MODEL_ARTIFACT)

    def _version_tags(self, best: Mapping[str, Any], key: str) -> dict[str, str]:
        m = best["metric"]
        return {"ipt.sweep_id": self.sweep_id, "ipt.config_id": best["config_id"], "ipt.metric": m,
                f"{m}_mean": f"{best['mean']:.6g}", f"{m}_std": f"{best['std']:.6g}",
                "metric": f"{m} {best['mean']:.4f} ± {best['std']:.4f}", MODEL_KEY_TAG: key}


def register_version(client: MlflowClient, name: str, run_id: str, key: str, tags: Mapping[str, str]) -> str:
    """The version of registered model ``name`` whose ``ipt.model_key`` is ``key``: found, or created
    from the run's ``model`` folder. Returns the version."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="ipt-ray: a sweep's best config, its seeds' adapters")
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(MODEL_KEY_TAG) == key:
            return str(version.version)
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    return str(client.create_model_version(name, source, run_id=run_id, tags=dict(tags)).version)
