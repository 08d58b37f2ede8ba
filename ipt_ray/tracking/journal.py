"""The outage journal: tracking writes a lost server could not take, one JSON line each, replayed later.

A tracker given a ``journal`` path (``run_sweep`` passes ``<sweep_dir>/mlflow_journal.jsonl``) appends
here what fails with a connection error and everything after it (order matters: an epoch must not land
after its run was terminated) until the server is back; :meth:`~ipt_ray.tracking.SweepTracker.sync` then
replays the records in order and truncates the file. Lines are fsync'ed: a killed driver loses at most
the line it was writing, which :func:`read_journal` skips.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from ipt_ray.system import replace_whole
from ipt_ray.tracking.client import TrackingError

log = logging.getLogger(__name__)

#: The offline journal's file name in a sweep's folder.
JOURNAL_FILE = "mlflow_journal.jsonl"
JOURNAL_VERSION = 1
#: Seconds between probes of a lost server while writes go to the journal.
RETRY_INTERVAL_S = 30.0


def journal_record(op: str, args: dict[str, Any], *, sweep_id: str, sweep_name: str, experiment: str) -> dict[str, Any]:
    """One journaled write: the tracker call ``op`` and its ``args``, with the sweep it belongs to."""
    return {"v": JOURNAL_VERSION, "op": op, "sweep_id": sweep_id, "sweep_name": sweep_name,
            "experiment": experiment, "time": time.time(), "args": args}


def journal_pending(path: Path | None) -> bool:
    """Whether writes wait in the journal at ``path``."""
    return path is not None and path.is_file() and path.stat().st_size > 0


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line, on disk before returning (fsync)."""
    line = json.dumps(record, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if f.seek(0, os.SEEK_END) > 0:  # a line cut short by a killed driver stays alone on its line
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def rewrite_journal(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace the journal with ``records`` (those not replayed yet), atomically."""
    replace_whole(path, "".join(json.dumps(r, default=str) + "\n" for r in records).encode())


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


def short_error(err: BaseException, limit: int = 200) -> str:
    """An exception's text on one line, cut to ``limit`` characters (for warnings)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Journal:
    """One sweep's journal file and the state of an outage: when the lost server may be probed next, and
    which warnings were printed (each once per outage).

    ``sync`` (the tracker's replay) is called when a probe is due; it raises while the server is away.
    """

    def __init__(self, path: Path, sync: Callable[[], int], *, uri: str, sweep_id: str, sweep_name: str,
                 experiment: str, retry_interval_s: float = RETRY_INTERVAL_S) -> None:
        self.path, self.sync, self.uri = path, sync, uri
        self.sweep = {"sweep_id": sweep_id, "sweep_name": sweep_name, "experiment": experiment}
        self.retry_interval_s = retry_interval_s
        self.reset()

    def reset(self) -> None:
        self.warned = self.warned_replay = False
        self.next_probe = 0.0  # time.monotonic() before which a lost server is not probed again

    def pending(self) -> bool:
        return journal_pending(self.path)

    def append(self, op: str, args: dict[str, Any]) -> None:
        append_record(self.path, journal_record(op, args, **self.sweep))

    def records(self) -> list[dict[str, Any]]:
        """The journaled writes, all of this sweep (else :class:`TrackingError`)."""
        records = read_journal(self.path)
        foreign = {r.get("sweep_id") for r in records} - {self.sweep["sweep_id"]}
        if foreign:
            raise TrackingError(f"{self.path} holds writes of sweep(s) {sorted(map(str, foreign))}, "
                                f"not {self.sweep['sweep_id']!r}")
        return records

    def went_offline(self, err: BaseException) -> None:
        """A write failed for an outage: probe again after ``retry_interval_s``; warn once."""
        self.next_probe = time.monotonic() + self.retry_interval_s
        if not self.warned:
            self.warned = True
            log.warning("MLflow at %s is unreachable (%s). The sweep goes on; tracking writes are kept in %s "
                        "and replayed when the server is back (or run: ipt-ray report --sync %s)",
                        self.uri, short_error(err), self.path, self.sweep["sweep_name"])

    def try_sync(self) -> bool:
        """Probe a lost server (at most every ``retry_interval_s``); when it answers, replay the journal."""
        now = time.monotonic()
        if now < self.next_probe:
            return False
        self.next_probe = now + self.retry_interval_s
        try:
            replayed = self.sync()
        except Exception as err:  # noqa: BLE001 - still down, or a replay problem: keep journaling, say so once
            if not isinstance(err, TrackingError) and not self.warned_replay:
                self.warned_replay = True
                log.warning("MLflow: replaying %s failed (%s); writes stay journaled; see `ipt-ray report --sync %s`",
                            self.path, short_error(err), self.sweep["sweep_name"])
            return False
        log.warning("MLflow at %s is back: %d journaled tracking writes replayed", self.uri, replayed)
        self.reset()
        return True
