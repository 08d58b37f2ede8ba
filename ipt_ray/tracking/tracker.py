"""MLflow tracking from the Tune driver: one sweep parent run, one child run per (trial, seed), one aggregate run.

Why the project owns its runs instead of using Ray's ``MLflowLoggerCallback``: that callback keys runs
by in-memory state, so ``Tuner.restore`` creates duplicates and leaves runs stuck in RUNNING. Here every
run is found again by its tags (``ipt.sweep_id`` + ``ipt.trial_id`` + ``ipt.seed``), and the last logged
epoch is kept in a tag (``ipt.last_epoch``), so a restarted driver reuses its runs, never logs an epoch
twice and loses nothing. Workers never talk to MLflow; the driver sends one ``log_batch`` per seed and
reported epoch (one call per metric over HTTP costs ~2.5x as much).

Only ``MlflowClient`` is used (no fluent ``mlflow.start_run``): the driver may track several things and
fluent state is process-global.

Outages: a tracker given a ``journal`` path (``run_sweep`` passes ``<sweep_dir>/mlflow_journal.jsonl``) never
lets a lost server stop the sweep. A write that fails with a connection error (refused, reset, timed out, 5xx
after retries) is appended to the journal as one JSON line, a warning is printed once, and every later write
goes to the journal too (order matters: an epoch must not land after its run was terminated) until a probe,
at most every ``retry_interval_s``, finds the server back and :meth:`SweepTracker.sync` replays the journal.
Replay is idempotent (runs found by tags, epochs at or below ``ipt.last_epoch`` skipped, the aggregate keyed),
so it may be interrupted and run again; ``ipt-ray report --sync SWEEP`` does it after the sweep.

Run layout (tags)::

    parent     ipt.kind=parent, ipt.sweep_id, ipt.code_version; artifacts experiment.yaml, search_space.json
      child    ipt.kind=trial, ipt.trial_id, ipt.config_id, ipt.seed, ipt.strategy, ipt.status, ipt.last_epoch
      aggregate ipt.kind=aggregate; <config_id>/<metric>_mean|_std, best/<metric>_mean|_std, results.*
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from ipt_ray.results import config_id, flatten_params, param_str, result_epoch

if TYPE_CHECKING:
    from ipt_ray.results import SweepSummary

__all__ = [
    "TrackingError", "resolve_tracking_uri", "check_reachable", "SweepTracker", "MlflowTrackingCallback",
    "config_id", "find_sweep_runs", "is_outage", "read_journal", "find_sweep_dir", "sync_sweep", "JOURNAL_FILE",
]

log = logging.getLogger(__name__)

#: The offline journal's file name in a sweep's folder.
JOURNAL_FILE = "mlflow_journal.jsonl"
JOURNAL_VERSION = 1
#: The sweep's metadata file (``ipt_ray.sweep.SWEEP_FILE``; not imported: sweep imports this module).
SWEEP_META_FILE = "ipt_sweep.json"
#: HTTP settings for the tracker's calls unless the user set them: MLflow's defaults (7 retries with
#: backoff, 120 s per request) would stall the sweep for minutes per call once the server is gone; a
#: failed write is not lost (it goes to the journal), so a short retry is enough.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: Seconds between probes of a lost server while writes go to the journal.
RETRY_INTERVAL_S = 30.0

#: Trial end states and the MLflow run status each maps to.
TRIAL_END_STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "failed": "FAILED"}
#: Result keys shared by all seeds of a trial that every child run also gets.
SHARED_METRICS = ("epoch_time_s", "trainable_params", "trainable_pct", "resumed_from_epoch", "world_size")

_SEED_KEY = re.compile(r"^(?P<name>.+)/seed_(?P<seed>-?\d+)$")
_BARE_SERVER_URIS = ("databricks", "databricks-uc", "uc")  # scheme-less URIs MLflow treats as servers
_MAX_PARAM_VALUE = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
_MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH


class TrackingError(RuntimeError):
    """MLflow is unusable for this sweep (unreachable server, deleted experiment, missing parent run)."""


# ---------------------------------------------------------------- URIs


def resolve_tracking_uri(uri: str | None, base_dir: Path | None = None) -> str:
    """The tracking URI to use, always absolute.

    ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<base_dir or cwd>/mlflow.db``. Relative
    sqlite paths and plain/``file:`` paths are made absolute against ``base_dir`` (default: cwd), because
    Tune trials and ``ray job`` entrypoints run in other working directories and would otherwise open
    a different store. Server URIs (``http(s)://``, ``databricks``, other databases) pass unchanged.
    """
    base = Path(os.path.abspath(os.path.expanduser(base_dir))) if base_dir is not None else Path.cwd()
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        return f"sqlite:///{base / 'mlflow.db'}"
    if uri.startswith("sqlite:"):
        return _absolute_sqlite(uri, base)
    scheme = urlparse(uri).scheme
    if uri in _BARE_SERVER_URIS:
        return uri
    if scheme == "file":
        return _absolute_file(uri, base)
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # a plain path (or a Windows drive letter)
        return _as_file_uri(uri, base)
    return uri


def _absolute_sqlite(uri: str, base: Path) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////base/rel.db``; absolute and in-memory stores unchanged."""
    if not uri.startswith("sqlite:///"):
        return uri  # sqlite:// (in memory)
    rest = uri[len("sqlite:///"):]
    path, sep, query = rest.partition("?")
    if path in ("", ":memory:") or path.startswith("/"):
        return uri
    absolute = os.path.normpath(base / os.path.expanduser(path))
    return f"sqlite:///{absolute}{sep}{query}"


def _absolute_file(uri: str, base: Path) -> str:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        return uri  # file://host/share: leave it to MLflow
    if uri.startswith("file://"):
        return uri if parsed.path.startswith("/") else _as_file_uri(parsed.path, base)
    return _as_file_uri(uri[len("file:"):], base)  # file:relative/path or file:/abs/path


def _as_file_uri(path: str, base: Path) -> str:
    return Path(os.path.normpath(base / os.path.expanduser(path))).as_uri()


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].partition("?")[0]
        if path.startswith("/"):
            return Path(path)
    return None


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for a block (MLflow reads its HTTP settings per request)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_reachable(uri: str, timeout_s: int = 5) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer.

    MLflow's own defaults retry for minutes (7 retries with backoff, 120 s timeout per request), which
    would hang a sweep at its first log call. One probe with no retries and a short timeout answers at
    once. Other stores (sqlite, file) are opened lazily and report their own errors.
    """
    if urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        with _env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(max(1, timeout_s)))):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure means the server is unusable
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable: {e}. Start it (e.g. `mlflow server --host 127.0.0.1 "
            f"--port 5000` on the head node, reached through a tunnel) or point tracking.uri / MLFLOW_TRACKING_URI elsewhere."
        ) from e


def is_outage(err: BaseException) -> bool:
    """Whether ``err`` means "the tracking server cannot be reached now" (worth journaling and retrying),
    as opposed to a refused request (bad value, deleted run) that a retry would not fix.

    Connection refused/reset, timeouts and 5xx answers after MLflow's retries, found anywhere in the
    exception chain (MLflow wraps them in ``MlflowException("API request to ... failed ...")``).
    """
    import requests
    import urllib3

    outage_types: tuple[type[BaseException], ...] = (
        ConnectionError, TimeoutError, socket.timeout,
        requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError, urllib3.exceptions.NewConnectionError,
        urllib3.exceptions.TimeoutError,
    )
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, outage_types):
            return True
        if isinstance(current, MlflowException) and current.error_code == "TEMPORARILY_UNAVAILABLE":
            return True
        current = current.__cause__ or current.__context__
    return False


# ---------------------------------------------------------------- helpers


def _q(value: str) -> str:
    """Quote a value for an MLflow search filter."""
    value = str(value)
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise TrackingError(f"cannot search for a value containing both quote kinds: {value!r}")


def _tag_filter(tags: dict[str, str]) -> str:
    """An MLflow search filter matching all ``tags`` (backticks: the keys contain dots)."""
    return " and ".join(f"tags.`{k}` = {_q(v)}" for k, v in tags.items())


def _param_key(key: str) -> str:
    """MLflow keys allow alphanumerics, ``_ - . / space``; anything else becomes ``_``."""
    return re.sub(r"[^\w\-./ ]", "_", str(key))


def _params(values: dict[str, Any]) -> dict[str, str]:
    return {_param_key(k): param_str(v)[:_MAX_PARAM_VALUE] for k, v in flatten_params(values).items()}


def _number(value: Any) -> float | None:
    """A metric value as float (ints, floats, numpy scalars, 0-d tensors); None for anything else."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- tracker


def get_or_create_experiment(client: MlflowClient, uri: str, experiment: str) -> str:
    """The id of the active experiment of that name, created if missing; a deleted one is refused.

    Artifacts of a local sqlite store go beside the database, not into the cwd's ``./mlruns`` (MLflow's
    default, which depends on where the process happens to start).
    """
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        db = _sqlite_path(uri)
        location = (db.parent / "mlartifacts").as_uri() if db is not None else None
        try:
            return client.create_experiment(experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by another process
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {experiment!r} at {uri} is deleted; restore it "
                            f"(`mlflow experiments restore --experiment-id {exp.experiment_id}`) or use another name")
    return exp.experiment_id


def search_all(client: MlflowClient, experiment_id: str, filter_string: str,
               order_by: list[str] | None = None) -> list[Run]:
    """Every active run of the experiment that matches, over all result pages."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, ViewType.ACTIVE_ONLY, max_results=1000,
                                  order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


class SweepTracker:
    """The MLflow runs of one sweep, found again by tags so that a resumed sweep reuses them.

    All calls are synchronous. State kept in memory (run ids, last logged epoch per run) is a cache of
    what the tags say: a fresh tracker (driver restart, unpickled ``Tuner`` state) reads it back.

    With ``journal`` (a JSON-lines file), writes that fail because the server is unreachable are kept
    there and replayed later (:meth:`sync`) instead of raising; see the module docstring. The server must
    answer when the tracker is created and in :meth:`start_parent`.
    """

    def __init__(self, uri: str, experiment: str, sweep_id: str, sweep_name: str,
                 journal: str | Path | None = None, retry_interval_s: float = RETRY_INTERVAL_S) -> None:
        self.uri = uri
        self.experiment = experiment
        self.sweep_id = sweep_id
        self.sweep_name = sweep_name
        self.journal = Path(journal) if journal is not None else None
        self.retry_interval_s = retry_interval_s
        check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        try:
            with self._http():
                self.experiment_id = self._get_or_create_experiment()
        except MlflowException as err:
            if not is_outage(err):
                raise
            raise TrackingError(f"MLflow tracking server {uri} stopped answering: {err}") from err
        self.parent_id: str | None = None
        self._reset_cache()
        self._reset_outage()

    # -- pickling: Tune pickles RunConfig callbacks into its experiment state. Cached epochs from pickle
    #    time would be stale after a restore (and could let an epoch be logged twice), so drop them.
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("uri", "experiment", "sweep_id", "sweep_name", "experiment_id",
                                              "parent_id", "journal", "retry_interval_s")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"journal": None, "retry_interval_s": RETRY_INTERVAL_S, **state})
        self.client = MlflowClient(tracking_uri=self.uri)
        self._reset_cache()
        self._reset_outage()

    def _reset_cache(self) -> None:
        self._runs: dict[str, dict[int, str]] = {}  # trial id -> seed -> run id
        self._last_epoch: dict[str, int] = {}
        self._ended: set[str] = set()  # runs terminated earlier, e.g. before Tune retried a failed trial
        self._needs_params: set[str] = set()  # runs created just before an outage cut their params off

    def _reset_outage(self) -> None:
        self._warned = self._warned_replay = False
        self._next_probe = 0.0  # time.monotonic() before which a lost server is not probed again

    def _http(self):
        """Short HTTP retries and timeouts for this tracker's calls (unless the user set them)."""
        if urlparse(self.uri).scheme not in ("http", "https"):
            return nullcontext()
        return _env(**{k: v for k, v in HTTP_DEFAULTS.items() if k not in os.environ})

    def _get_or_create_experiment(self) -> str:
        return get_or_create_experiment(self.client, self.uri, self.experiment)

    def _search(self, filter_string: str, order_by: list[str] | None = None) -> list[Run]:
        return search_all(self.client, self.experiment_id, filter_string, order_by)

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
        try:
            with self._http():
                if self.journal is not None and self._journal_pending():
                    replayed = self.sync()
                    log.warning("MLflow: replayed %d tracking writes journaled in %s", replayed, self.journal)
                return self._start_parent_now(config_yaml, search_space, code_version, params)
        except MlflowException as err:
            if not is_outage(err):
                raise
            raise TrackingError(f"MLflow tracking server {self.uri} stopped answering: {err}") from err

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
        space = {_param_key(f"search.{k}"): param_str(v)[:_MAX_PARAM_VALUE] for k, v in search_space.items()}
        all_params = {**_params(params), **space}
        self.client.log_batch(self.parent_id, params=[Param(k, v) for k, v in all_params.items()])
        self.client.log_text(self.parent_id, config_yaml, "experiment.yaml")
        self.client.log_text(self.parent_id, json.dumps(search_space, indent=2, sort_keys=True, default=str),
                             "search_space.json")
        return self.parent_id

    def _find_parent(self) -> Run | None:
        runs = self._search(_tag_filter({"ipt.sweep_id": self.sweep_id, "ipt.kind": "parent"}),
                            order_by=["attributes.start_time ASC"])
        return runs[0] if runs else None

    def _require_parent(self) -> str:
        parent = self._parent_or_none()
        if parent is None:
            raise TrackingError(f"sweep {self.sweep_id!r} has no parent run in {self.experiment!r}: "
                                f"call start_parent() first")
        return parent

    # -- children

    def _trial_runs(self, trial_id: str) -> dict[int, str]:
        """Seed -> run id of a trial's runs; MLflow is searched once per trial and tracker instance."""
        if trial_id not in self._runs:
            runs = self._search(_tag_filter({"ipt.sweep_id": self.sweep_id, "ipt.kind": "trial",
                                             "ipt.trial_id": trial_id}),
                                order_by=["attributes.start_time ASC"])
            found: dict[int, str] = {}
            for run in runs:  # oldest first: should duplicates exist, keep using the first one
                seed = int(run.data.tags["ipt.seed"])
                if seed not in found:
                    found[seed] = run.info.run_id
                    self._last_epoch[run.info.run_id] = int(run.data.tags.get("ipt.last_epoch", 0))
                    if run.info.status != "RUNNING":
                        self._ended.add(run.info.run_id)
                    if "seed" not in run.data.params:  # created, then the server went away
                        self._needs_params.add(run.info.run_id)
            self._runs[trial_id] = found
        return self._runs[trial_id]

    def _child(self, trial_id: str, cid: str, params: dict[str, Any], seed: int, strategy: str) -> str:
        """The run id of (trial, seed): cached, found by tags, or created with its tags and params."""
        existing = self._trial_runs(trial_id).get(seed)
        if existing is not None:
            if existing in self._needs_params:
                run_params = {**_params(params), "seed": str(seed)}
                self.client.log_batch(existing, params=[Param(k, v) for k, v in run_params.items()])
                self._needs_params.discard(existing)
            return existing
        parent = self._require_parent()
        run = self.client.create_run(self.experiment_id, run_name=f"{cid}-seed{seed}", tags={
            "mlflow.parentRunId": parent, "ipt.sweep_id": self.sweep_id, "ipt.kind": "trial",
            "ipt.trial_id": trial_id, "ipt.config_id": cid, "ipt.seed": str(seed), "ipt.strategy": strategy,
            "ipt.status": "running"})
        run_id = run.info.run_id
        run_params = {**_params(params), "seed": str(seed)}
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in run_params.items()])
        self._runs[trial_id][seed] = run_id
        self._last_epoch[run_id] = 0
        return run_id

    def adopt_orphans(self, trial_id: str, config_id: str, known_trial_ids: Iterable[str]) -> None:
        """Give a trial the child runs of its config that belong to a trial Tune no longer knows.

        A driver killed between a trial's first MLflow write and Tune's next experiment snapshot leaves
        runs of a trial that the resumed Tune never restores; the searcher, restored too, proposes the
        same config again under a new trial id. Re-tagging those runs keeps one run per (config, seed),
        and the epochs they hold already are not logged again. Runs of trials Tune knows (a config that
        was really proposed twice) are left alone.
        """
        payload = {"trial_id": trial_id, "config_id": config_id, "known": sorted(known_trial_ids)}
        self._write("adopt_orphans", payload, lambda: self._adopt_orphans_now(trial_id, config_id, payload["known"]))

    def _adopt_orphans_now(self, trial_id: str, config_id: str, known: Sequence[str]) -> None:
        runs = self._search(_tag_filter({"ipt.sweep_id": self.sweep_id, "ipt.kind": "trial", "ipt.config_id": config_id}),
                            order_by=["attributes.start_time ASC"])
        seeds_held = {run.data.tags["ipt.seed"] for run in runs if run.data.tags.get("ipt.trial_id") == trial_id}
        for run in runs:  # oldest first, as _trial_runs keeps them
            seed = run.data.tags["ipt.seed"]
            if run.data.tags.get("ipt.trial_id") not in {trial_id, *known} and seed not in seeds_held:
                self.client.set_tag(run.info.run_id, "ipt.trial_id", trial_id)
                seeds_held.add(seed)
        self._runs.pop(trial_id, None)  # read back from the tags at the trial's next write

    def log_result(self, trial_id: str, config_id: str, params: dict[str, Any], result: dict[str, Any],
                   seeds: Sequence[int], strategy: str) -> int:
        """Log one epoch's result of a trial: one ``log_batch`` per seed, into that seed's child run.

        Per-seed keys ``name/seed_<s>`` become metric ``name`` of seed ``s``'s run at step ``epoch``,
        plus :data:`SHARED_METRICS`. Epochs at or below the run's last logged epoch are skipped (a
        restored trial replays them). Returns the number of runs written to (0 when journaled).
        """
        payload = {"trial_id": trial_id, "config_id": config_id, "params": _jsonable(params),
                   "result": _slim_result(result), "seeds": [int(s) for s in seeds], "strategy": strategy}
        return self._write("log_result", payload, lambda: self._log_result_now(
            trial_id, config_id, params, result, seeds, strategy), default=0)

    def _log_result_now(self, trial_id: str, config_id: str, params: dict[str, Any], result: dict[str, Any],
                        seeds: Sequence[int], strategy: str) -> int:
        epoch = result_epoch(result)
        per_seed: dict[int, dict[str, float]] = {}
        for key, value in result.items():
            match = _SEED_KEY.match(str(key))
            number = _number(value) if match else None
            if match and number is not None:
                per_seed.setdefault(int(match["seed"]), {})[match["name"]] = number
        shared = {k: n for k in SHARED_METRICS if k in result and (n := _number(result[k])) is not None}
        seeds = list(seeds) or sorted(per_seed)
        ts = _now_ms()
        written = 0
        for seed in seeds:
            if not per_seed.get(seed):
                continue  # this seed reported nothing here: do not mark the epoch as logged
            run_id = self._child(trial_id, config_id, params, seed, strategy)
            if epoch <= self._last_epoch.get(run_id, 0):
                continue
            metrics = [Metric(k, v, ts, epoch) for k, v in {**per_seed[seed], **shared}.items()]
            tags = [RunTag("ipt.last_epoch", str(epoch))]
            if run_id in self._ended:  # a retried or resumed trial trains on: its run is running again
                tags.append(RunTag("ipt.status", "running"))
                self.client.update_run(run_id, status="RUNNING")
                self._ended.discard(run_id)
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
            self._last_epoch[run_id] = epoch
            written += 1
        return written

    def end_trial(self, trial_id: str, status: str) -> None:
        """Mark every seed run of a trial ``completed``/``early_stopped`` (FINISHED) or ``failed`` (FAILED)."""
        if status not in TRIAL_END_STATUS:
            raise ValueError(f"status must be one of {sorted(TRIAL_END_STATUS)}, not {status!r}")
        self._write("end_trial", {"trial_id": trial_id, "status": status},
                    lambda: self._end_trial_now(trial_id, status))

    def _end_trial_now(self, trial_id: str, status: str) -> None:
        for run_id in self._trial_runs(trial_id).values():
            self.client.set_tag(run_id, "ipt.status", status)
            self.client.set_terminated(run_id, TRIAL_END_STATUS[status])
            self._ended.add(run_id)

    # -- aggregate

    def log_aggregate(self, summary: SweepSummary, artifacts: dict[str, Path], key: str | None = None) -> str | None:
        """Log the seed aggregation into the sweep's single aggregate run (created once, updated later).

        Metrics ``<config_id>/<metric>_mean|_std`` and ``best/<metric>_mean|_std`` at step = the
        aggregation's version (1, 2, ... on re-aggregation after a resume), so the latest value is
        current. The best config's params go into tags ``best.<key>`` (tags, not params: MLflow params
        are immutable and the best config may change when a resumed sweep re-aggregates), with
        ``ipt.best_config_id``. ``artifacts`` (results.csv/.md/.png) are uploaded under their file names.
        ``key`` (default: a fresh one) identifies this aggregation: replaying it again from the journal
        does not count as a new version. Returns the run id, or None when the write was journaled.
        """
        key = key or uuid.uuid4().hex
        payload = {"summary": _summary_to_json(summary), "artifacts": {k: str(v) for k, v in artifacts.items()},
                   "key": key}
        return self._write("log_aggregate", payload, lambda: self._log_aggregate_now(summary, artifacts, key))

    def _log_aggregate_now(self, summary: SweepSummary, artifacts: dict[str, Path], key: str) -> str:
        parent = self._require_parent()
        runs = self._search(_tag_filter({"ipt.sweep_id": self.sweep_id, "ipt.kind": "aggregate"}),
                            order_by=["attributes.start_time ASC"])
        if runs and runs[0].data.tags.get("ipt.aggregate_key") == key:  # a replay of what already landed
            return self._aggregate_artifacts(runs[0].info.run_id, summary, artifacts)
        if runs:
            run_id = runs[0].info.run_id
            version = int(runs[0].data.tags.get("ipt.aggregate_version", 0)) + 1
            stale_best = [k for k in runs[0].data.tags if k.startswith("best.")]
        else:
            run_id = self.client.create_run(self.experiment_id, run_name=f"{self.sweep_name}-aggregate", tags={
                "mlflow.parentRunId": parent, "ipt.sweep_id": self.sweep_id, "ipt.kind": "aggregate"}).info.run_id
            version, stale_best = 1, []
        ts, m = _now_ms(), summary.metric
        metrics: list[Metric] = []
        for c in summary.configs:
            if c.n_seeds:
                metrics += [Metric(f"{c.config_id}/{m}_mean", c.mean, ts, version),
                            Metric(f"{c.config_id}/{m}_std", c.std, ts, version)]
        tags = {"ipt.aggregate_version": str(version), "ipt.metric": m, "ipt.mode": summary.mode,
                "ipt.n_configs": str(len(summary.configs)), "ipt.aggregate_key": key}
        best = summary.best
        if best is not None:
            metrics += [Metric(f"best/{m}_mean", best.mean, ts, version), Metric(f"best/{m}_std", best.std, ts, version),
                        Metric("best/n_seeds", float(best.n_seeds), ts, version)]
            tags["ipt.best_config_id"] = best.config_id
            tags.update({f"best.{k}": v[:_MAX_TAG_VALUE] for k, v in _params(best.params).items()})
        for tag in stale_best:  # keys of an earlier best config that the current one lacks
            if tag not in tags:
                self.client.delete_tag(run_id, tag)
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        return self._aggregate_artifacts(run_id, summary, artifacts)

    def _aggregate_artifacts(self, run_id: str, summary: SweepSummary, artifacts: dict[str, Path]) -> str:
        for path in artifacts.values():
            if Path(path).is_file():
                self.client.log_artifact(run_id, str(path))
            else:  # a replay after the sweep folder was cleaned: the metrics and summary.json still land
                log.warning("MLflow: artifact %s is gone; not uploaded to the aggregate run", path)
        self.client.log_dict(run_id, _summary_dict(summary), "summary.json")
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def tag_parent(self, tags: dict[str, str]) -> None:
        """Sweep-level facts known only at the end (e.g. how Optuna classed the trials)."""
        tags = {k: str(v) for k, v in tags.items()}
        self._write("tag_parent", {"tags": tags}, lambda: self._tag_parent_now(tags))

    def _tag_parent_now(self, tags: dict[str, str]) -> None:
        parent = self._parent_or_none()
        if parent is not None:
            self.client.log_batch(parent, tags=[RunTag(k, v) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED") -> None:
        """Terminate the parent run (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        self._write("finish", {"status": status}, lambda: self._finish_now(status))

    def _finish_now(self, status: str) -> None:
        parent = self._parent_or_none()
        if parent is not None:
            self.client.set_terminated(parent, status)

    def _parent_or_none(self) -> str | None:
        if self.parent_id is None:
            found = self._find_parent()
            self.parent_id = found.info.run_id if found is not None else None
        return self.parent_id

    def flush(self) -> int:
        """Calls are synchronous; what waits in the journal gets one more replay attempt now (whatever the
        probe interval). Returns the writes still journaled."""
        if self._journal_pending():
            self._next_probe = 0.0
            self._try_sync()
        return self.pending()

    # -- outages: the journal

    def _write(self, op: str, payload: dict[str, Any], now: Callable[[], Any], default: Any = None) -> Any:
        """Do a write now, or journal it: when earlier writes still wait there (order matters) and the
        server is not back yet, or when it fails because the server is unreachable."""
        if self.journal is not None and self._journal_pending() and not self._try_sync():
            self._append(op, payload)
            return default
        try:
            with self._http():
                return now()
        except Exception as err:  # noqa: BLE001 - sorted below: outages are journaled, the rest raised
            if self.journal is None or not is_outage(err):
                raise
            self._went_offline(err)
            self._append(op, payload)
            return default

    def _went_offline(self, err: BaseException) -> None:
        self._reset_cache()  # a write may have half-landed: read the truth back from the tags later
        self._next_probe = time.monotonic() + self.retry_interval_s
        if not self._warned:
            self._warned = True
            log.warning("MLflow at %s is unreachable (%s). The sweep goes on; tracking writes are kept in %s "
                        "and replayed when the server is back (or run: ipt-ray report --sync %s)",
                        self.uri, _short(err), self.journal, self.sweep_name)

    def _try_sync(self) -> bool:
        """Probe a lost server (at most every ``retry_interval_s``); when it answers, replay the journal."""
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + self.retry_interval_s
        try:
            replayed = self.sync()
        except Exception as err:  # noqa: BLE001 - still down, or a replay problem: keep journaling, say so once
            if not isinstance(err, TrackingError) and not self._warned_replay:
                self._warned_replay = True
                log.warning("MLflow: replaying %s failed (%s); writes stay journaled; see `ipt-ray report --sync %s`",
                            self.journal, _short(err), self.sweep_name)
            return False
        log.warning("MLflow at %s is back: %d journaled tracking writes replayed", self.uri, replayed)
        self._reset_outage()
        return True

    def _journal_pending(self) -> bool:
        return self.journal is not None and self.journal.is_file() and self.journal.stat().st_size > 0

    def pending(self) -> int:
        """How many writes wait in the journal."""
        return len(read_journal(self.journal)) if self.journal is not None else 0

    def _append(self, op: str, payload: dict[str, Any]) -> None:
        assert self.journal is not None
        record = {"v": JOURNAL_VERSION, "op": op, "sweep_id": self.sweep_id, "sweep_name": self.sweep_name,
                  "experiment": self.experiment, "time": time.time(), "args": payload}
        line = json.dumps(record, default=str) + "\n"
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with open(self.journal, "a+b") as f:
            if f.seek(0, os.SEEK_END) > 0:  # a line cut short by a killed driver stays alone on its line
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def _rewrite_journal(self, records: list[dict[str, Any]]) -> None:
        assert self.journal is not None
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
        tmp.replace(self.journal)

    def sync(self) -> int:
        """Replay the journal into MLflow, in order, and truncate it; returns the writes replayed.

        Idempotent: runs are found by tags, epochs at or below ``ipt.last_epoch`` are skipped and the
        aggregate is keyed, so an interrupted sync can simply run again. Raises :class:`TrackingError`
        (the journal keeps what was not replayed) when the server does not answer.
        """
        records = read_journal(self.journal) if self.journal is not None else []
        if not records:
            return 0
        foreign = {r.get("sweep_id") for r in records} - {self.sweep_id}
        if foreign:
            raise TrackingError(f"{self.journal} holds writes of sweep(s) {sorted(map(str, foreign))}, "
                                f"not {self.sweep_id!r}")
        check_reachable(self.uri)
        self._reset_cache()
        done = 0
        try:
            with self._http():
                for record in records:
                    self._replay(record)
                    done += 1
        except Exception as err:
            self._rewrite_journal(records[done:])
            self._reset_cache()
            if is_outage(err):
                raise TrackingError(f"MLflow at {self.uri} went away during the replay: {done} of {len(records)} "
                                    f"journaled writes replayed, the rest kept in {self.journal}") from err
            raise
        self._rewrite_journal([])
        return done

    def _replay(self, record: dict[str, Any]) -> None:
        op, a = record.get("op"), record.get("args") or {}
        if op == "log_result":
            self._log_result_now(a["trial_id"], a["config_id"], a["params"], a["result"], a["seeds"], a["strategy"])
        elif op == "end_trial":
            self._end_trial_now(a["trial_id"], a["status"])
        elif op == "adopt_orphans":
            self._adopt_orphans_now(a["trial_id"], a["config_id"], a["known"])
        elif op == "log_aggregate":
            self._log_aggregate_now(_summary_from_json(a["summary"]),
                                    {k: Path(v) for k, v in a["artifacts"].items()}, a["key"])
        elif op == "tag_parent":
            self._tag_parent_now(a["tags"])
        elif op == "finish":
            self._finish_now(a["status"])
        else:
            raise TrackingError(f"{self.journal}: unknown journal record {op!r} (written by a newer ipt-ray?)")


def read_journal(path: str | Path | None) -> list[dict[str, Any]]:
    """The records of a tracker journal (none when the file is missing or empty).

    A line that does not parse is skipped with a warning when it is the last one (the driver was killed
    while appending it) and is an error anywhere else.
    """
    if path is None or not Path(path).is_file():
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    records = []
    for n, (lineno, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if n == len(numbered) - 1:
                log.warning("%s line %d: an incomplete record (cut off while being written) is skipped", path, lineno)
                continue
            raise TrackingError(f"{path} line {lineno}: not a journal record ({err.msg})") from None
        if not isinstance(record, dict) or record.get("v") != JOURNAL_VERSION or "op" not in record:
            raise TrackingError(f"{path} line {lineno}: not a version-{JOURNAL_VERSION} journal record")
        records.append(record)
    return records


def _short(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    """Params as JSON can carry them (numpy scalars to Python numbers, the rest as text)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _slim_result(result: dict[str, Any]) -> dict[str, Any]:
    """What :meth:`SweepTracker.log_result` reads from a Tune result: the epoch, per-seed and shared metrics."""
    keep: dict[str, Any] = {}
    for key, value in result.items():
        if key in ("epoch", "training_iteration") or key in SHARED_METRICS or _SEED_KEY.match(str(key)):
            number = _number(value)
            if number is not None:
                keep[key] = number
    return keep


def _summary_to_json(summary: SweepSummary) -> dict[str, Any]:
    configs = []
    for c in summary.configs:
        d = dataclasses.asdict(c)
        d["values"] = {str(k): v for k, v in c.values.items()}
        configs.append(d)
    return _jsonable({"metric": summary.metric, "mode": summary.mode, "configs": configs})


def _summary_from_json(data: dict[str, Any]) -> SweepSummary:
    from ipt_ray.results import ConfigSummary, SweepSummary

    configs = [ConfigSummary(**{**c, "values": {int(k): float(v) for k, v in c["values"].items()}})
               for c in data["configs"]]
    return SweepSummary(metric=data["metric"], mode=data["mode"], configs=configs)


def _summary_dict(summary: SweepSummary) -> dict[str, Any]:
    nan = lambda x: None if not math.isfinite(x) else x  # noqa: E731 - JSON has no NaN
    return json.loads(json.dumps({"metric": summary.metric, "mode": summary.mode,
            "best": summary.best.config_id if summary.best else None,
            "configs": [{"config_id": c.config_id, "trial_ids": c.trial_ids, "params": c.params,
                         "values": {str(s): v for s, v in c.values.items()}, "mean": nan(c.mean), "std": nan(c.std),
                         "n_seeds": c.n_seeds, "status": c.status, "best": c.best} for c in summary.configs]},
                                 default=str))


# ---------------------------------------------------------------- Tune callback


class MlflowTrackingCallback(Callback):
    """Forward Tune's trial events to a :class:`SweepTracker` on the driver.

    ``max_epochs`` tells a trial that ran to the end (``completed``) from one a scheduler stopped
    (``early_stopped``). ``metric`` is the sweep's metric, kept for callers that read it back.
    """

    def __init__(self, tracker: SweepTracker, seeds: Sequence[int], metric: str, max_epochs: int,
                 config_id: Callable[[dict[str, Any]], str] = config_id, default_strategy: str = "",
                 resuming: bool = False) -> None:
        self.tracker = tracker
        self.resuming = resuming
        self.seeds = list(seeds)
        self.metric = metric
        self.max_epochs = max_epochs
        self.config_id = config_id
        self.default_strategy = default_strategy

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.resuming:  # see SweepTracker.adopt_orphans
            self.tracker.adopt_orphans(trial.trial_id, self.config_id(dict(trial.config)), [t.trial_id for t in trials])

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        config = dict(trial.config)
        self.tracker.log_result(trial.trial_id, self.config_id(config), config, result, self.seeds,
                                strategy=self.strategy_of(config))

    def strategy_of(self, config: dict[str, Any]) -> str:
        """The trial's strategy: a ``method.strategy`` dimension, or inside a whole-``method`` dimension."""
        if "method.strategy" in config:
            return str(config["method.strategy"])
        method = config.get("method")
        if isinstance(method, str) and method.startswith("{"):
            try:
                method = json.loads(method)
            except json.JSONDecodeError:
                method = None
        if isinstance(method, dict) and "strategy" in method:
            return str(method["strategy"])
        return self.default_strategy

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = getattr(trial, "last_result", None) or {}
        epoch = result_epoch(last)
        self.tracker.end_trial(trial.trial_id, "completed" if epoch >= self.max_epochs else "early_stopped")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.tracker.end_trial(trial.trial_id, "failed")


# ---------------------------------------------------------------- reading back


def find_sweep_runs(uri: str, experiment: str, sweep: str) -> list[Run]:
    """The child trial runs of sweep ``sweep`` (its id, or its parent run's name; the most recent sweep
    of that name wins). This is all ``ipt-ray report SWEEP`` needs to rebuild the table."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"no MLflow experiment {experiment!r} at {uri}")

    def search(filter_string: str, order_by: list[str] | None = None) -> list[Run]:
        return search_all(client, exp.experiment_id, filter_string, order_by)

    newest = ["attributes.start_time DESC"]
    parents = (search(_tag_filter({"ipt.kind": "parent", "ipt.sweep_id": sweep}), newest)
               or search(f"{_tag_filter({'ipt.kind': 'parent'})} and attributes.run_name = {_q(sweep)}", newest))
    if not parents:
        raise TrackingError(f"no sweep {sweep!r} (sweep id or name) in experiment {experiment!r} at {uri}")
    sweep_id = parents[0].data.tags["ipt.sweep_id"]
    return search(_tag_filter({"ipt.sweep_id": sweep_id, "ipt.kind": "trial"}), ["attributes.start_time ASC"])


# ---------------------------------------------------------------- replaying a sweep's journal


def find_sweep_dir(sweep: str, base: Path | None = None) -> Path:
    """A sweep's folder (the one holding ``ipt_sweep.json``): ``sweep`` itself when it is that folder,
    else ``runs/sweeps/<sweep>`` or ``*/sweeps/<sweep>``, ``*/*/sweeps/<sweep>`` under ``base`` (cwd)."""
    base = Path.cwd() if base is None else Path(base)
    given = Path(sweep).expanduser()
    candidates = [given if given.is_absolute() else base / given, base / "runs" / "sweeps" / sweep]
    for pattern in (f"*/sweeps/{sweep}", f"*/*/sweeps/{sweep}"):
        candidates += sorted(base.glob(pattern))
    for candidate in candidates:
        if (candidate / SWEEP_META_FILE).is_file():
            return candidate.resolve()
    raise TrackingError(f"no folder of sweep {sweep!r} (with {SWEEP_META_FILE}) under {base} (looked in runs/sweeps, "
                        f"*/sweeps, */*/sweeps); give the sweep's folder instead, e.g. <train.output_dir>/sweeps/{sweep}")


def sync_sweep(sweep: str, tracking_uri: str | None = None, experiment: str | None = None,
               base: Path | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """``ipt-ray report --sync SWEEP``: replay the writes a sweep journaled while MLflow was unreachable.

    ``tracking_uri`` defaults to the sweep's own (from ``ipt_sweep.json``); give it when the server moved.
    The experiment is the one the journal was written for. Returns the sweep's ``name``, ``uri``,
    ``experiment``, ``sweep_dir`` and the number of writes ``replayed``.
    """
    directory = find_sweep_dir(sweep, base)
    meta = json.loads((directory / SWEEP_META_FILE).read_text())
    journal = directory / JOURNAL_FILE
    records = read_journal(journal)
    experiment = (records[0]["experiment"] if records else None) or meta.get("experiment") or experiment
    uri = resolve_tracking_uri(tracking_uri or meta.get("tracking_uri"))
    result = {"name": meta["name"], "sweep_id": meta["sweep_id"], "uri": uri, "experiment": experiment,
              "sweep_dir": str(directory), "replayed": 0}
    if not records:
        out(f"sweep {meta['name']}: nothing to sync ({journal.name} is empty or absent)")
        return result
    if experiment is None:
        raise TrackingError(f"{journal}: no experiment recorded; pass --experiment")
    tracker = SweepTracker(uri, experiment, meta["sweep_id"], meta["name"], journal=journal)
    result["replayed"] = tracker.sync()
    out(f"sweep {meta['name']}: {result['replayed']} journaled tracking writes replayed to {uri} "
        f"(experiment {experiment!r})")
    return result
