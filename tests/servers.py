"""Start and stop real servers for the end-to-end tests: a Ray head with token auth and an MLflow server.

Both listen on 127.0.0.1 only, on free ports, keep every file under a private temporary folder, and
stop exactly what they started:

- Never ``ray stop``: it kills every Ray process of the user, other sessions' clusters included.
  Every process started here carries a marker variable in its environment (``IPT_TEST_SERVER=<its
  folder>``), which Ray passes on to the GCS, raylet, dashboard, agents, workers and job drivers.
  Teardown finds them by that marker (plus the process group and the ``--temp-dir`` in their command
  line), sends SIGTERM, then SIGKILL, and asserts that none is left.
- Token auth: the head gets ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH=<folder>/auth_token``
  (a fresh token), so the user's ``~/.ray/auth_token`` is neither read nor written. Clients pass the
  token with ``RAY_AUTH_MODE=token`` plus ``RAY_AUTH_TOKEN_PATH`` (or ``RAY_AUTH_TOKEN``); the job
  client then sends ``Authorization: Bearer <token>`` (see :meth:`RayHead.client_env`).
- The Ray temp dir is a short path under /tmp (unix socket paths are limited to 107 bytes), and its
  ``ray_current_cluster`` file stays there, so no other ``ray.init()`` on the machine finds this head.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

MARKER = "IPT_TEST_SERVER"
BIN = Path(sys.executable).parent  # the venv's bin: ray, mlflow, ipt-ray
_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


# ---------------------------------------------------------------- ports and processes


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (all sockets held until all are chosen)."""
    with ExitStack() as stack:
        socks = []
        for _ in range(n):
            s = stack.enter_context(closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)))
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # gone meanwhile, or not ours
        return b""


def find_processes(marker_value: str, pgid: int | None = None) -> list[int]:
    """PIDs of this user's live processes that belong to one server: the marker in their environment,
    ``marker_value`` (a folder) in their command line, or the server's process group."""
    me, uid = os.getpid(), os.getuid()
    needle_env = f"{MARKER}={marker_value}".encode()
    needle_cmd = marker_value.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
            # "pid (comm) state ppid pgrp ...": comm may contain spaces, so split after the last ')'
            fields = stat[stat.rindex(")") + 2:].split()
            state, pgrp = fields[0], int(fields[2])
        except (OSError, ValueError, IndexError):
            continue
        if state in ("Z", "X"):  # zombies hold no resources; their parent reaps them
            continue
        environ = _read(f"/proc/{pid}/environ").split(b"\0")
        if (needle_env in environ or needle_cmd in _read(f"/proc/{pid}/cmdline")
                or (pgid is not None and pgrp == pgid)):
            found.append(pid)
    return found


def stop_processes(marker_value: str, pgid: int | None = None, grace_s: float = 3.0, kill_s: float = 5.0) -> list[int]:
    """SIGTERM every process of the server, SIGKILL what is left after ``grace_s``; returns survivors.

    Scans again every round: a dying raylet may still have started a worker. The raylet and the GCS
    may ignore SIGTERM for a long time (graceful drain), hence the short grace period.
    """
    start = time.time()
    while True:
        pids = find_processes(marker_value, pgid)
        elapsed = time.time() - start
        if not pids or elapsed > grace_s + kill_s:
            return pids
        sig = signal.SIGTERM if elapsed < grace_s else signal.SIGKILL
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", *_AUTH_VARS)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None,
               ok=lambda status, body: status == 200) -> None:
    deadline = time.time() + timeout_s
    last: object = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body = r.read().decode(errors="replace")
                if ok(r.status, body):
                    return
                last = (r.status, body[:200])
        except urllib.error.HTTPError as e:
            last = (e.code, e.reason)
            if ok(e.code, ""):
                return
        except OSError as e:
            last = e
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{url} did not come up within {timeout_s:.0f}s (last: {last!r})\n{tail}")


# ---------------------------------------------------------------- MLflow


@dataclass
class MlflowServer:
    uri: str  # http://127.0.0.1:PORT
    port: int
    backend_store_uri: str
    root: Path
    log: Path
    workers: int = 1  # uvicorn worker processes (`mlflow server --workers`)


@contextmanager
def mlflow_server(root: Path | None = None, backend_store_uri: str | None = None,
                  timeout_s: float = 180.0, workers: int = 1) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1:<free port>, a sqlite store and proxied artifacts under ``root``,
    with ``workers`` uvicorn worker processes (1 in tests: the least memory; MLflow's default is 4).

    ``backend_store_uri`` serves an existing store instead (e.g. a finished sweep's ``sqlite:///...``).
    """
    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="iptml-")) if own_root else Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    store = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    log = root / "mlflow-server.log"
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--backend-store-uri", store, "--artifacts-destination", str(root / "artifacts")]
    marker = str(root)
    with open(log, "wb") as out:
        env = _base_env(**{MARKER: marker, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", timeout_s, proc, log)
        yield MlflowServer(f"http://127.0.0.1:{port}", port, store, root, log, workers)
    finally:
        left = stop_processes(marker, pgid=proc.pid)
        proc.wait(timeout=10)
        if own_root and not left:
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"mlflow server processes survived teardown: {left}"


# ---------------------------------------------------------------- Ray head


@dataclass
class RayHead:
    gcs_address: str  # 127.0.0.1:PORT, for ray.init / RAY_ADDRESS
    dashboard_url: str  # http://127.0.0.1:PORT, for ray job submit / JobSubmissionClient
    temp_dir: Path  # Ray's --temp-dir (sessions, logs, uploaded working dirs)
    token: str
    token_path: Path
    ports: dict[str, int] = field(default_factory=dict)

    def client_env(self, with_token: bool = True, **extra: str) -> dict[str, str]:
        """Environment for a ``ray job ...`` client process.

        With the token: ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` (the client then sends
        ``Authorization: Bearer <token>``). Without: no auth variables and an empty ``HOME``, so no
        ``~/.ray/auth_token`` can be picked up either.
        """
        env = _base_env(**extra)
        if with_token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path))
        else:
            home = self.temp_dir.parent / "no-token-home"
            home.mkdir(exist_ok=True)
            env["HOME"] = str(home)
        return env

    def logs(self, limit: int = 4000) -> str:
        """The tails of the head's log files (for failure messages)."""
        out = []
        for name in ("dashboard.log", "raylet.out", "gcs_server.out", "job-driver-*.log"):
            for path in sorted(self.temp_dir.glob(f"session_latest/logs/{name}")):
                out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-limit:]}")
        return "\n".join(out)


@contextmanager
def ray_head(num_cpus: int = 2, resources: dict[str, float] | None = None,
             timeout_s: float = 180.0) -> Iterator[RayHead]:
    """``ray start --head`` on 127.0.0.1 with token auth, free ports and a private temp dir."""
    base = Path(tempfile.mkdtemp(prefix="iptray-", dir="/tmp" if os.path.isdir("/tmp") else None))
    temp_dir = base / "r"  # /tmp/iptray-XXXXXXXX/r/session_<date>_<pid>/sockets/plasma_store: ~85 bytes
    temp_dir.mkdir()
    token = secrets.token_hex(32)  # what `ray get-auth-token --generate` writes
    token_path = base / "auth_token"
    token_path.write_text(token)
    token_path.chmod(0o600)
    names = ["gcs", "dashboard", "client", "agent_http", "agent_grpc", "runtime_env", "metrics", "node_manager",
             "object_manager"]
    ports = dict(zip(names, free_ports(len(names))))
    cmd = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={ports['gcs']}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={ports['dashboard']}", "--include-dashboard=true",
           f"--ray-client-server-port={ports['client']}", f"--dashboard-agent-listen-port={ports['agent_http']}",
           f"--dashboard-agent-grpc-port={ports['agent_grpc']}", f"--runtime-env-agent-port={ports['runtime_env']}",
           f"--metrics-export-port={ports['metrics']}", f"--node-manager-port={ports['node_manager']}",
           f"--object-manager-port={ports['object_manager']}", f"--num-cpus={num_cpus}",
           f"--resources={json.dumps(resources if resources is not None else {'trial_slot': 2})}",
           f"--temp-dir={temp_dir}", "--disable-usage-stats", "--log-style=record"]
    marker = str(base)
    env = _base_env(**{MARKER: marker, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)})
    log = base / "ray-start.log"
    head = RayHead(f"127.0.0.1:{ports['gcs']}", f"http://127.0.0.1:{ports['dashboard']}", temp_dir, token,
                   token_path, ports)
    proc = None
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        if rc != 0:
            raise RuntimeError(f"`ray start --head` failed (rc={rc}):\n{log.read_text(errors='replace')[-4000:]}")
        # The job API answers once the dashboard's job module is up (401 without the token is fine).
        _wait_http(f"{head.dashboard_url}/api/version", timeout_s, log=log,
                   ok=lambda status, body: status in (200, 401))
        yield head
    finally:
        left = stop_processes(marker, pgid=proc.pid if proc is not None else None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if not left:
            shutil.rmtree(base, ignore_errors=True)
        assert not left, f"Ray processes of {base} survived teardown: {left}"
