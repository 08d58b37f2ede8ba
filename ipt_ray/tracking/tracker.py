"""MLflow tracking from the Tune driver: one sweep parent run, one child run per (trial, seed), one aggregate run.

Why the project owns its runs instead of using Ray's ``MLflowLoggerCallback``: that callback keys runs
by in-memory state, so ``Tuner.restore`` creates duplicates and leaves runs stuck in RUNNING. Here every
run is found again by its tags (``ipt.sweep_id`` + ``ipt.trial_id`` + ``ipt.seed``), and the last logged
epoch is kept in a tag (``ipt.last_epoch``), so a restarted driver reuses its runs, never logs an epoch
twice and loses nothing. Workers never talk to MLflow; the driver sends one ``log_batch`` per seed and
reported epoch (one call per metric over HTTP costs ~2.5x as much).

Outages: with a ``journal`` (:mod:`ipt_ray.tracking.journal`) a lost server never stops the sweep: failed
and later writes are journaled and replayed idempotently (:meth:`SweepTracker.sync`) when it is back.
A write's per-seed requests go side by side over HTTP (:mod:`ipt_ray.tracking.fanout`).

Run layout (tags)::

    parent     ipt.kind=parent, ipt.sweep_id, ipt.code_version; artifacts experiment.yaml, search_space.json
      child    ipt.kind=trial, ipt.trial_id, ipt.config_id, ipt.seed, ipt.strategy, ipt.status, ipt.last_epoch; adapter/
               (few-shot sweeps add ipt.phase select|final, ipt.data_seed, ipt.cv_fold, and for final runs the
               metrics selected/<name> read at the dev-selected epoch: :meth:`SweepTracker.log_selected`)
      aggregate ipt.kind=aggregate; <config_id>/<metric>_mean|_std, best/<metric>_mean|_std, results.*, model/
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mlflow.entities import Metric, Run, RunTag
from mlflow.tracking import MlflowClient

from ipt_ray.results import SweepSummary, jsonable, param_str, result_epoch, summary_from_json, summary_to_json
from ipt_ray.tracking.aggregate import aggregate_version, log_aggregate_values, upload_aggregate_files
from ipt_ray.tracking.client import (
    MAX_PARAM_VALUE,
    TrackingError,
    http_defaults,
    is_outage,
    log_batch_with_params,
    log_params,
    mlflow_params,
    now_ms,
    open_experiment,
    param_key,
    search_all,
    server_calls,
    tag_filter,
)
from ipt_ray.tracking.fanout import RequestFanout
from ipt_ray.tracking.journal import RETRY_INTERVAL_S, Journal
from ipt_ray.tracking.models import ADAPTER_TAG, MODEL_OPS, ModelLogging
from ipt_ray.tracking.orphans import ORPHAN_OPS, OrphanRuns
from ipt_ray.tracking.trial_metrics import per_seed_metrics, shared_metrics, slim_result
from ipt_ray.tracking.writer import BACKGROUND_OPS, BackgroundWriter, JournalReplay

log = logging.getLogger(__name__)

TRIAL_END_STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "failed": "FAILED"}  #: -> MLflow status


class SweepTracker(ModelLogging, OrphanRuns, JournalReplay):
    """The MLflow runs of one sweep, found again by tags so that a resumed sweep reuses them.

    Calls are synchronous, except the trial writes after :meth:`start_background` (journaled, then applied
    by a writer thread: :mod:`ipt_ray.tracking.writer`). What is kept in memory (run ids, last epochs,
    artifact URIs) caches the tags: a fresh tracker (driver restart, unpickled ``Tuner``) reads them back.
    With ``journal``, writes an unreachable server could not take are kept there and replayed later
    (:meth:`sync`); the server must answer when the tracker is created and in :meth:`start_parent`.
    """

    def __init__(self, uri: str, experiment: str, sweep_id: str, sweep_name: str,
                 journal: str | Path | None = None, retry_interval_s: float = RETRY_INTERVAL_S) -> None:
        self.uri = uri
        self.experiment = experiment
        self.sweep_id = sweep_id
        self.sweep_name = sweep_name
        self.journal = Path(journal) if journal is not None else None
        self.retry_interval_s = retry_interval_s
        self.client, self.experiment_id = open_experiment(uri, experiment)
        self.parent_id: str | None = None
        self._reset_cache()
        self._outage = self._open_journal()
        self._writer: BackgroundWriter | None = None
        self._fanout = RequestFanout(uri)  # a write's per-seed requests side by side (over HTTP)

    # -- pickling: Tune pickles RunConfig callbacks into its experiment state. Cached epochs from pickle
    #    time would be stale after a restore (and could let an epoch be logged twice), so drop them.
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("uri", "experiment", "sweep_id", "sweep_name", "experiment_id",
                                              "parent_id", "journal", "retry_interval_s")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"journal": None, "retry_interval_s": RETRY_INTERVAL_S, **state})
        self.client = MlflowClient(tracking_uri=self.uri)
        self._reset_cache()
        self._outage = self._open_journal()
        self._writer = None
        self._fanout = RequestFanout(self.uri)

    def _reset_cache(self) -> None:
        self._runs: dict[str, dict[int, str]] = {}  # trial id -> seed -> run id
        self._last_epoch: dict[str, int] = {}
        self._ended: set[str] = set()  # runs terminated earlier, e.g. before Tune retried a failed trial
        self._needs_params: set[str] = set()  # runs whose params go with their next log_batch
        self._run_info: dict[str, tuple[str, str | None]] = {}  # run id -> (artifact URI, adapter digest tag)

    def _open_journal(self) -> Journal | None:
        return None if self.journal is None else Journal(
            self.journal, self.sync, uri=self.uri, sweep_id=self.sweep_id, sweep_name=self.sweep_name,
            experiment=self.experiment, retry_interval_s=self.retry_interval_s)

    def _search(self, tags: dict[str, str], order_by: list[str] | None = None) -> list[Run]:
        """Runs of this experiment with all ``tags``, oldest first unless ``order_by`` says otherwise."""
        return search_all(self.client, self.experiment_id, tag_filter(tags), order_by or ["attributes.start_time ASC"])

    # -- parent

    def start_parent(self, config_yaml: str, search_space: dict[str, Any], code_version: str,
                     params: dict[str, Any]) -> str:
        """The sweep's parent run id: the existing one for this sweep id (resume), else a new one.

        A new parent gets the YAML (``experiment.yaml``), the search space (``search_space.json`` and
        params ``search.<key>``), ``params`` and tag ``ipt.code_version``. An existing one is only set
        back to RUNNING: params are immutable in MLflow, and the sweep's definition does not change on resume.
        Writes journaled by an earlier run of this sweep are replayed first. Raises :class:`TrackingError`
        when the server does not answer: a sweep does not start without its parent run.
        """
        with server_calls(self.uri):
            if self._outage is not None and self._outage.pending():
                replayed = self.sync()
                log.warning("MLflow: replayed %d tracking writes journaled in %s", replayed, self.journal)
            return self._start_parent_now(config_yaml, search_space, code_version, params)

    def _start_parent_now(self, config_yaml: str, search_space: dict[str, Any], code_version: str,
                          params: dict[str, Any]) -> str:
        found = self._find_parent()
        if found is not None:
            self.parent_id = found.info.run_id
            if found.info.status != "RUNNING":
                self.client.update_run(self.parent_id, status="RUNNING")
            return self.parent_id
        run = self.client.create_run(self.experiment_id, run_name=self.sweep_name, tags={
            "ipt.sweep_id": self.sweep_id, "ipt.kind": "parent", "ipt.code_version": code_version})
        self.parent_id = run.info.run_id
        # One param per search key, its spec as JSON (``{"choice": [8, 16]}``), not flattened further.
        space = {param_key(f"search.{k}"): param_str(v)[:MAX_PARAM_VALUE] for k, v in search_space.items()}
        log_params(self.client, self.parent_id, {**mlflow_params(params), **space})
        self.client.log_text(self.parent_id, config_yaml, "experiment.yaml")
        self.client.log_text(self.parent_id, json.dumps(search_space, indent=2, sort_keys=True, default=str),
                             "search_space.json")
        return self.parent_id

    def _find_parent(self) -> Run | None:
        return next(iter(self._search({"ipt.sweep_id": self.sweep_id, "ipt.kind": "parent"})), None)

    def _parent_or_none(self) -> str | None:
        if self.parent_id is None:
            found = self._find_parent()
            self.parent_id = found.info.run_id if found is not None else None
        return self.parent_id

    def _require_parent(self) -> str:
        parent = self._parent_or_none()
        if parent is None:
            raise TrackingError(f"sweep {self.sweep_id!r} has no parent run in {self.experiment!r}: "
                                f"call start_parent() first")
        return parent

    # -- children

    def _trial_runs(self, trial_id: str) -> dict[int, str]:
        """Seed -> run id of a trial's runs; MLflow is searched once per trial and tracker instance, and again
        for a trial that logs after it ended (:meth:`_forget_trial`: Tune's retry, a resumed sweep)."""
        if trial_id not in self._runs:
            runs = self._search({"ipt.sweep_id": self.sweep_id, "ipt.kind": "trial", "ipt.trial_id": trial_id})
            found: dict[int, str] = {}
            for run in runs:  # oldest first: should duplicates exist, keep using the first one
                seed = int(run.data.tags["ipt.seed"])
                if seed not in found:
                    found[seed] = run.info.run_id
                    self._last_epoch[run.info.run_id] = self._adopted_last_epoch(run)
                    self._run_info[run.info.run_id] = (run.info.artifact_uri, run.data.tags.get(ADAPTER_TAG))
                    if run.info.status != "RUNNING":
                        self._ended.add(run.info.run_id)
                    if "seed" not in run.data.params:  # created, then the server went away
                        self._needs_params.add(run.info.run_id)
            self._runs[trial_id] = found
        return self._runs[trial_id]

    def _adopted_last_epoch(self, run: Run) -> int:
        """The last epoch a run found in MLflow holds: its ``ipt.last_epoch`` tag, or for a run still RUNNING
        the highest step of its metrics, if higher. Why: MLflow's SQL store commits a ``log_batch``'s metrics
        and its tags in separate transactions, so a driver killed between them (on a local store it writes
        itself) leaves an epoch's metrics without the tag, and the restored trial's replay of that epoch would
        log it twice. One request per adopted running run, on resume or retry only."""
        last = int(run.data.tags.get("ipt.last_epoch", 0))
        if run.info.status != "RUNNING" or not run.data.metrics:
            return last
        history = self.client.get_metric_history(run.info.run_id, min(run.data.metrics))
        return max([last, *(int(m.step) for m in history)])

    def _child(self, trial_id: str, cid: str, params: dict[str, Any], seed: int, strategy: str,
               tags: dict[str, str] | None = None) -> str:
        """The run id of (trial, seed): cached, found by tags, or created with its tags and ``tags`` (its
        params go with its first ``log_batch``: one call fewer per run)."""
        existing = self._trial_runs(trial_id).get(seed)
        if existing is not None:
            return existing
        parent = self._require_parent()
        run = self.client.create_run(self.experiment_id, run_name=f"{cid}-seed{seed}", tags={
            "mlflow.parentRunId": parent, "ipt.sweep_id": self.sweep_id, "ipt.kind": "trial",
            "ipt.trial_id": trial_id, "ipt.config_id": cid, "ipt.seed": str(seed), "ipt.strategy": strategy,
            "ipt.status": "running", **(tags or {})})
        run_id = run.info.run_id
        self._runs[trial_id][seed] = run_id
        self._last_epoch[run_id] = 0
        self._needs_params.add(run_id)
        self._run_info[run_id] = (run.info.artifact_uri, None)
        return run_id

    def log_result(self, trial_id: str, config_id: str, params: dict[str, Any], result: dict[str, Any],
                   seeds: Sequence[int], strategy: str, tags: dict[str, str] | None = None) -> int:
        """Log one epoch's result of a trial: one ``log_batch`` per seed, into that seed's child run.

        Per-seed keys ``name/seed_<s>`` become metric ``name`` of seed ``s``'s run at step ``epoch``,
        plus the shared metrics (``trial_metrics.SHARED_METRICS``). Epochs at or below the run's last
        logged epoch are skipped (a restored trial replays them). ``tags`` go on runs this call creates.
        Returns the number of runs written to (0 when journaled).
        """
        payload = {"trial_id": trial_id, "config_id": config_id, "params": jsonable(params),
                   "result": slim_result(result), "seeds": [int(s) for s in seeds], "strategy": strategy,
                   "tags": dict(tags or {})}
        return self._write("log_result", payload, lambda: self._log_result_now(
            trial_id, config_id, params, result, seeds, strategy, tags), default=0)

    def _log_result_now(self, trial_id: str, config_id: str, params: dict[str, Any], result: dict[str, Any],
                        seeds: Sequence[int], strategy: str, run_tags: dict[str, str] | None = None) -> int:
        epoch = result_epoch(result)
        per_seed, shared = per_seed_metrics(result), shared_metrics(result)
        ts = now_ms()
        # A seed that reported nothing here is skipped: its epoch must not be marked as logged.
        reported = [seed for seed in list(seeds) or sorted(per_seed) if per_seed.get(seed)]
        if any(seed not in self._trial_runs(trial_id) for seed in reported):
            self._require_parent()  # once, before the seeds' runs are created side by side

        def log_seed(seed: int) -> int:
            run_id = self._child(trial_id, config_id, params, seed, strategy, run_tags)
            if epoch <= self._last_epoch.get(run_id, 0):
                return 0
            metrics = [Metric(k, v, ts, epoch) for k, v in {**per_seed[seed], **shared}.items()]
            tags = [RunTag("ipt.last_epoch", str(epoch))]
            if run_id in self._ended:  # a retried or resumed trial trains on: its run is running again
                tags.append(RunTag("ipt.status", "running"))
                self.client.update_run(run_id, status="RUNNING")
                self._ended.discard(run_id)
            run_params = {**mlflow_params(params), "seed": str(seed)} if run_id in self._needs_params else {}
            log_batch_with_params(self.client, run_id, metrics, run_params, tags)
            self._needs_params.discard(run_id)
            self._last_epoch[run_id] = epoch
            return 1

        return sum(self._fanout.each(log_seed, reported))

    def end_trial(self, trial_id: str, status: str, adapters: Mapping[int, str | Path] | None = None) -> None:
        """Mark every seed run of a trial ``completed``/``early_stopped`` (FINISHED) or ``failed`` (FAILED),
        first uploading ``adapters`` (seed -> adapter folder) into the seeds' runs: the status and the
        adapter digest go in one ``log_batch`` per run (a request fewer per run than two tags)."""
        if status not in TRIAL_END_STATUS:
            raise ValueError(f"status must be one of {sorted(TRIAL_END_STATUS)}, not {status!r}")
        folders = {str(s): str(f) for s, f in (adapters or {}).items()}
        self._write("end_trial", {"trial_id": trial_id, "status": status, "folders": folders},
                    lambda: self._end_trial_now(trial_id, status, folders))

    def _end_trial_now(self, trial_id: str, status: str, folders: Mapping[str, str] | None = None) -> None:
        runs, folders = self._trial_runs(trial_id), folders or {}
        self._warn_unmatched_adapters(trial_id, runs, folders)

        def end_run(seed_run: tuple[int, str]) -> None:
            seed, run_id = seed_run
            digest = self._upload_adapter(run_id, folders.get(str(seed)))
            tags = [RunTag("ipt.status", status)] + ([RunTag(ADAPTER_TAG, digest)] if digest else [])
            self.client.log_batch(run_id, tags=tags)
            if digest:
                self._adapter_tagged(run_id, digest)
            self.client.set_terminated(run_id, TRIAL_END_STATUS[status])

        self._fanout.each(end_run, sorted(runs.items()))
        self._forget_trial(trial_id)

    def _forget_trial(self, trial_id: str) -> None:
        """Drop a trial's cached runs: read back from their tags at its next write (~2 KiB per ended trial)."""
        for run_id in self._runs.pop(trial_id, {}).values():
            self._last_epoch.pop(run_id, None)
            self._run_info.pop(run_id, None)
            self._ended.discard(run_id)
            self._needs_params.discard(run_id)

    def log_selected(self, trial_id: str, seed: int, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """Values of a finished run read at its dev-selected epoch (``selected/<name>``, step 0) and tags
        (e.g. the chosen hyper-parameters) into the (trial, seed) child run; idempotent on replay."""
        payload = {"trial_id": trial_id, "seed": int(seed), "metrics": jsonable(metrics), "tags": dict(tags)}
        self._write("log_selected", payload, lambda: self._log_selected_now(trial_id, int(seed), metrics, tags))

    def _log_selected_now(self, trial_id: str, seed: int, metrics: dict[str, float], tags: dict[str, str]) -> None:
        if (run_id := self._trial_runs(trial_id).get(seed)) is not None:
            ts = now_ms()
            self.client.log_batch(run_id, metrics=[Metric(f"selected/{k}", float(v), ts, 0) for k, v in metrics.items()],
                                  tags=[RunTag(k, str(v)) for k, v in tags.items()])

    # -- aggregate and the end of the sweep

    def log_aggregate(self, summary: SweepSummary, artifacts: dict[str, Path], key: str | None = None) -> str | None:
        """Log the seed aggregation into the sweep's single aggregate run (created once, updated later;
        see :mod:`ipt_ray.tracking.aggregate`). ``artifacts`` (results.csv/.md/.png) are uploaded under
        their file names. ``key`` (default: a fresh one) identifies this aggregation: replaying it again
        from the journal does not count as a new version. Returns the run id, or None when journaled.
        """
        key = key or uuid.uuid4().hex
        payload = {"summary": summary_to_json(summary), "artifacts": {k: str(v) for k, v in artifacts.items()},
                   "key": key}
        return self._write("log_aggregate", payload, lambda: self._log_aggregate_now(summary, artifacts, key))

    def _log_aggregate_now(self, summary: SweepSummary, artifacts: dict[str, Path], key: str) -> str:
        parent = self._require_parent()
        runs = self._search({"ipt.sweep_id": self.sweep_id, "ipt.kind": "aggregate"})
        existing = runs[0] if runs else None
        if existing is not None and existing.data.tags.get("ipt.aggregate_key") == key:  # a replay that landed
            return upload_aggregate_files(self.client, existing.info.run_id, summary, artifacts)
        if existing is not None:
            run_id = existing.info.run_id
        else:
            run_id = self.client.create_run(self.experiment_id, run_name=f"{self.sweep_name}-aggregate", tags={
                "mlflow.parentRunId": parent, "ipt.sweep_id": self.sweep_id, "ipt.kind": "aggregate"}).info.run_id
        log_aggregate_values(self.client, run_id, summary, aggregate_version(existing), key, existing)
        return upload_aggregate_files(self.client, run_id, summary, artifacts)

    def tag_parent(self, tags: dict[str, str]) -> None:
        """Sweep-level facts known only at the end (e.g. how Optuna classed the trials)."""
        tags = {k: str(v) for k, v in tags.items()}
        self._write("tag_parent", {"tags": tags}, lambda: self._tag_parent_now(tags))

    def _tag_parent_now(self, tags: dict[str, str]) -> None:
        if (parent := self._parent_or_none()) is not None:
            self.client.log_batch(parent, tags=[RunTag(k, v) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED") -> None:
        """Terminate the parent run (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        self._write("finish", {"status": status}, lambda: self._finish_now(status))

    def _finish_now(self, status: str) -> None:
        if (parent := self._parent_or_none()) is not None:
            self.client.set_terminated(parent, status)

    # -- outages: the journal

    def _write(self, op: str, payload: dict[str, Any], now: Callable[[], Any], default: Any = None) -> Any:
        """Do a write now, or journal it: when earlier writes still wait there (order matters) and the
        server is not back yet, or when it fails because the server is unreachable."""
        if self._writer is not None and op in BACKGROUND_OPS:
            self._writer.submit(op, payload)
            return default
        outage = self._outage
        if outage is not None and outage.pending() and not outage.try_sync():
            outage.append(op, payload)
            return default
        try:
            with http_defaults(self.uri):
                return now()
        except Exception as err:  # noqa: BLE001 - sorted below: outages are journaled, the rest raised
            if outage is None or not is_outage(err):
                raise
            self._reset_cache()  # a write may have half-landed: read the truth back from the tags later
            outage.went_offline(err)
            outage.append(op, payload)
            return default

    def _replay(self, record: dict[str, Any]) -> None:
        op, a = record.get("op"), record.get("args") or {}
        if op == "log_result":
            self._log_result_now(a["trial_id"], a["config_id"], a["params"], a["result"], a["seeds"], a["strategy"],
                                 a.get("tags"))
        elif op == "log_selected":
            self._log_selected_now(a["trial_id"], a["seed"], a["metrics"], a["tags"])
        elif op == "end_trial":
            self._end_trial_now(a["trial_id"], a["status"], a.get("folders"))
        elif op in ORPHAN_OPS:
            self.replay_orphan_write(op, a)
        elif op == "log_aggregate":
            self._log_aggregate_now(summary_from_json(a["summary"]),
                                    {k: Path(v) for k, v in a["artifacts"].items()}, a["key"])
        elif op == "tag_parent":
            self._tag_parent_now(a["tags"])
        elif op == "finish":
            self._finish_now(a["status"])
        elif op in MODEL_OPS:
            self.replay_model_write(op, a)
        else:
            raise TrackingError(f"{self.journal}: unknown journal record {op!r} (written by a newer ipt-ray?)")
