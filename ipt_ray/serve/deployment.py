"""``ipt-ray serve``: one Ray Serve deployment, one frozen backbone, any number of adapters.

Routes: ``GET /adapters`` (what is loaded), ``POST /predict`` (see :mod:`ipt_ray.serve.service`),
``GET /stats`` (batching counters). Requests that arrive together are batched by ``@serve.batch`` across
adapters. The HTTP proxy listens on 127.0.0.1 unless told otherwise. Ray is a private local one
(``address="local"``) unless ``RAY_ADDRESS`` names a cluster; stopping the server shuts down exactly the
Serve application and the Ray it started (never ``ray stop``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import ray
import torch
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from ipt_ray.serve.service import AdapterService, Limits, PredictItem, RequestError

APP_NAME = "ipt-ray"


@serve.deployment(max_ongoing_requests=512)
class AdapterDeployment:
    """The Serve replica: an :class:`AdapterService` behind HTTP, its predictions batched."""

    def __init__(self, folders: Mapping[str, str], limits: Limits, max_batch_size: int, batch_wait_s: float,
                 threads: int) -> None:
        torch.set_num_threads(max(1, threads))
        self.service = AdapterService.load(folders, limits)
        self.predict_batched.set_max_batch_size(max_batch_size)
        self.predict_batched.set_batch_wait_timeout_s(batch_wait_s)

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/") or "/"
        try:
            if path == "/adapters" and request.method == "GET":
                return JSONResponse(self.service.listing())
            if path == "/stats" and request.method == "GET":
                return JSONResponse(self.service.stats.as_json())
            if path == "/predict" and request.method == "POST":
                return JSONResponse(await self.predict_batched(self.service.parse(await request.body())))
            raise RequestError(404, f"no route {request.method} {path}: GET /adapters, POST /predict, GET /stats")
        except RequestError as err:
            return JSONResponse({"error": err.message}, status_code=err.status)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def predict_batched(self, items: list[PredictItem]) -> list[dict[str, Any]]:
        # off the event loop: requests keep arriving (into the next batch) while this one runs
        return await asyncio.to_thread(self.service.predict_batch, items)


def start_ray() -> bool:
    """Join ``RAY_ADDRESS`` or start a private local Ray; returns whether this process started it."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    ray.init(address="local", runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
             configure_logging=True, logging_level="WARNING")
    return True


def start_server(folders: Mapping[str, str | Path], host: str = "127.0.0.1", port: int = 8000,
                 limits: Limits = Limits(), max_batch_size: int = 32, batch_wait_s: float = 0.005,
                 num_cpus: float = 1.0) -> bool:
    """Deploy the adapters and open the HTTP proxy; returns whether Ray was started here."""
    started = start_ray()
    serve.start(http_options={"host": host, "port": port})
    app = AdapterDeployment.options(ray_actor_options={"num_cpus": num_cpus}).bind(
        {k: str(Path(v).resolve()) for k, v in folders.items()}, limits, max_batch_size, batch_wait_s,
        max(1, int(num_cpus)))
    serve.run(app, name=APP_NAME, route_prefix="/")
    return started


def stop_server(started_ray: bool) -> None:
    """Shut down the Serve instance and, when this process started it, the local Ray."""
    serve.shutdown()
    if started_ray:
        ray.shutdown()


def serve_until_stopped(folders: Mapping[str, str | Path], out: Callable[[str], None] = print, **options: Any) -> None:
    """Serve until SIGINT / SIGTERM, then stop what was started."""
    stop = threading.Event()
    started = start_server(folders, **options)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init: Ray's own SIGTERM handler aborts the process
            signal.signal(sig, lambda *_: stop.set())
        out(f"serving {len(folders)} adapter(s) on http://{options.get('host', '127.0.0.1')}:"
            f"{options.get('port', 8000)} (GET /adapters, POST /predict); stop with Ctrl-C")
        stop.wait()
    finally:
        stop_server(started)
