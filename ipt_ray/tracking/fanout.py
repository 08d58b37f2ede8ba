"""Independent MLflow requests of one write (one per seed run) sent side by side.

A trial's epoch or end is one request (or three, with an adapter upload) per seed run. On a loaded machine
a request mostly waits, for the server and for a core: in ``bench/scale.py`` one writer thread sending them
one after the other managed ~22 requests/s and fell ~86 s behind a 500-trial sweep (wall / ideal 1.225);
side by side, with a 4-worker server, it kept up (1.112). Only over HTTP: a local store (sqlite, files)
does its work in this process, where threads only add lock contention (sqlite's single writer) and
nothing waits on a network.

Every request has ended when :meth:`RequestFanout.each` returns or raises, so a caller that resets its
cache after an error (a write may have half-landed) never races a request still in flight.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterable, TypeVar

from ipt_ray.tracking.uri import is_http

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Requests in flight at once: a trial's 5 seed runs, with room for a sweep of more seeds. MLflow's HTTP
#: session keeps 10 connections per host (``MLFLOW_HTTP_POOL_MAXSIZE``), so this never waits for one.
PARALLEL_REQUESTS = 8


class RequestFanout:
    """Runs ``fn`` over items on up to ``max_parallel`` threads (created on first use) for an HTTP
    tracking URI, in the calling thread otherwise."""

    def __init__(self, uri: str, max_parallel: int = PARALLEL_REQUESTS,
                 thread_name: str = "ipt-mlflow-request") -> None:
        self.max_parallel = max_parallel if is_http(uri) else 1
        self.thread_name = thread_name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # the writer applies several trials' writes at once (writer.trial_waves)

    def each(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
        """``[fn(item) for item in items]``, side by side; after all have ended, the first error (in
        item order) is raised."""
        items = list(items)
        if len(items) <= 1 or self.max_parallel <= 1:
            return [fn(item) for item in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_parallel, thread_name_prefix=self.thread_name)
            pool = self._pool
        futures = [pool.submit(fn, item) for item in items]
        wait(futures)
        return [future.result() for future in futures]

    def close(self) -> None:
        """End the threads (a later :meth:`each` starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
