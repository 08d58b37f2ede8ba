"""The one MLflow client setup the sweeps and the pretraining share.

Only ``MlflowClient`` is used (no fluent ``mlflow.start_run``): the driver may track several things and
fluent state is process-global. :func:`open_experiment` checks the server, applies the project's short
HTTP retries (:data:`HTTP_DEFAULTS`) and finds or creates the experiment; :func:`is_outage` tells a lost
server from a refused request; the rest are the search and logging helpers every tracker uses.
"""

from __future__ import annotations

import os
import re
import socket
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Iterator, Mapping

import requests
import urllib3
from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ipt_ray.results import flatten_params, param_str
from ipt_ray.system import environment
from ipt_ray.tracking.uri import is_http, sqlite_path

#: HTTP settings for the tracker's calls unless the user set them: MLflow's defaults (7 retries with
#: backoff, 120 s per request) would stall the sweep for minutes per call once the server is gone; a
#: failed write is not lost (it goes to the journal), so a short retry is enough.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
                 # set_terminated otherwise prints "View run ... at" for every run, with a get_run each
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
MAX_PARAM_VALUE = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit for params

#: Exceptions that mean "the server cannot be reached now", wherever they sit in an exception chain.
_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError, TimeoutError, socket.timeout,
    requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError, urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.TimeoutError,
)


class TrackingError(RuntimeError):
    """MLflow is unusable for this sweep (unreachable server, deleted experiment, missing parent run)."""


# ---------------------------------------------------------------- HTTP settings and reachability


def http_defaults(uri: str) -> AbstractContextManager[None]:
    """Short HTTP retries and timeouts (:data:`HTTP_DEFAULTS`) for calls to ``uri``, unless the user set them."""
    if not is_http(uri):
        return nullcontext()
    return environment(**{k: v for k, v in HTTP_DEFAULTS.items() if k not in os.environ})


@contextmanager
def server_calls(uri: str) -> Iterator[None]:
    """A block of calls that need the server: :func:`http_defaults`, and a lost server raised as
    :class:`TrackingError` (a refused request is raised as it is)."""
    try:
        with http_defaults(uri):
            yield
    except MlflowException as err:
        if not is_outage(err):
            raise
        raise TrackingError(f"MLflow tracking server {uri} stopped answering: {err}") from err


def check_reachable(uri: str, timeout_s: int = 5, busy_timeout_s: int = 30) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer.

    MLflow's own defaults retry for minutes (7 retries with backoff, 120 s timeout per request), which
    would hang a sweep at its first log call. One probe with no retries and a short timeout answers at
    once. A server that took the connection but did not answer in ``timeout_s`` is busy, not gone (an
    mlflow server on a loaded head took 5+ s): it gets one more probe of ``busy_timeout_s``. Other stores
    (sqlite, file) are opened lazily and report their own errors.
    """
    if not is_http(uri):
        return
    try:
        try:
            _probe(uri, timeout_s)
        except Exception as err:  # noqa: BLE001 - any failure means the server may be unusable
            if not _read_timed_out(err):
                raise
            _probe(uri, busy_timeout_s)
    except Exception as e:  # noqa: BLE001 - any failure means the server is unusable
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable: {e}. Start it (e.g. `mlflow server --host 127.0.0.1 "
            f"--port 5000` on the head node, reached through a tunnel) or point tracking.uri / MLFLOW_TRACKING_URI elsewhere."
        ) from e


def _probe(uri: str, timeout_s: int) -> None:
    with environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(max(1, timeout_s)))):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def _exception_chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _read_timed_out(err: BaseException) -> bool:
    """Whether ``err`` (or its chain) is a read timeout: the server accepted the connection, then was slow."""
    return any(isinstance(e, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError))
               or "Read timed out" in str(e)  # MLflow re-raises the requests error as text
               for e in _exception_chain(err))


def is_outage(err: BaseException) -> bool:
    """Whether ``err`` means "the tracking server cannot be reached now" (worth journaling and retrying),
    as opposed to a refused request (bad value, deleted run) that a retry would not fix.

    Connection refused/reset, timeouts and 5xx answers after MLflow's retries, found anywhere in the
    exception chain (MLflow wraps them in ``MlflowException("API request to ... failed ...")``).
    """
    return any(isinstance(e, _OUTAGE_TYPES)
               or (isinstance(e, MlflowException) and e.error_code == "TEMPORARILY_UNAVAILABLE")
               for e in _exception_chain(err))


# ---------------------------------------------------------------- experiments and searches


def get_or_create_experiment(client: MlflowClient, uri: str, experiment: str) -> str:
    """The id of the active experiment of that name, created if missing; a deleted one is refused.

    Artifacts of a local sqlite store go beside the database, not into the cwd's ``./mlruns`` (MLflow's
    default, which depends on where the process happens to start).
    """
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        db = sqlite_path(uri)
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


def open_experiment(uri: str, experiment: str) -> tuple[MlflowClient, str]:
    """A client of ``uri`` and the id of ``experiment`` (created if missing), for a sweep or a pretraining.

    Raises :class:`TrackingError` when an HTTP server does not answer (:func:`check_reachable`) or stops
    answering meanwhile.
    """
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    with server_calls(uri):
        return client, get_or_create_experiment(client, uri, experiment)


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


def quote(value: str) -> str:
    """Quote a value for an MLflow search filter."""
    value = str(value)
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise TrackingError(f"cannot search for a value containing both quote kinds: {value!r}")


def tag_filter(tags: dict[str, str]) -> str:
    """An MLflow search filter matching all ``tags`` (backticks: the keys contain dots)."""
    return " and ".join(f"tags.`{k}` = {quote(v)}" for k, v in tags.items())


# ---------------------------------------------------------------- writing


def param_key(key: str) -> str:
    """MLflow keys allow alphanumerics, ``_ - . / space``; anything else becomes ``_``."""
    return re.sub(r"[^\w\-./ ]", "_", str(key))


def mlflow_params(values: dict[str, Any]) -> dict[str, str]:
    """Params as MLflow takes them: dotted valid keys, text values (JSON for lists/dicts), cut to MLflow's limit."""
    return {param_key(k): param_str(v)[:MAX_PARAM_VALUE] for k, v in flatten_params(values).items()}


def now_ms() -> int:
    return int(time.time() * 1000)


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    """Log text params in as few ``log_batch`` calls as MLflow allows."""
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[i:i + MAX_PARAMS_PER_BATCH])


def log_batch_with_params(client: MlflowClient, run_id: str, metrics: list[Metric], params: Mapping[str, str],
                          tags: list[RunTag]) -> None:
    """One ``log_batch`` of ``metrics``, ``tags`` and a new run's ``params`` (params beyond what one call
    takes go first, in calls of their own)."""
    if len(params) > MAX_PARAMS_PER_BATCH:
        log_params(client, run_id, params)
        params = {}
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()], tags=tags)


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int,
                tags: Mapping[str, str] | None = None) -> None:
    """One ``log_batch``: ``metrics`` at ``step`` (one timestamp) and ``tags`` (one HTTP call per report,
    where a call per metric costs ~2.5x as much)."""
    ts = now_ms()
    client.log_batch(run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()],
                     tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])
