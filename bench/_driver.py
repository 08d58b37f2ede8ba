"""The sweep driver of ``bench.scale`` as its own process, measured: RSS sampled twice a second against the
trials Tune has ended (its console), CPU and peak RSS from ``wait4``. An ``ipt-ray sweep`` that goes on in a
fresh process after each Tune run (``os.execv``) keeps its pid: the samples follow it, and ``wait4``'s CPU and
peak RSS cover every process image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

CLI = Path(sys.executable).parent / "ipt-ray"
TRIAL_ENDED = b" completed after "  # Tune's console line for an ended trial ("Trial X completed after N iterations")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Driver:
    """``ipt-ray sweep`` in its own process group; RSS sampled twice a second with the count of trials Tune has
    ended by then (its console, read as it grows), CPU from ``wait4``."""

    def __init__(self, args: list[str], log: Path) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0"}
        self.log = log
        self.started = time.perf_counter()
        command = [str(CLI), *args]
        profile = os.environ.get("IPT_SCALE_PROFILE")  # a py-spy flame graph of the driver, to find its costs
        if profile:
            command = [str(CLI.parent / "py-spy"), "record", "--format", "raw", "-o", f"{profile}.{log.stem}.txt",
                       "--", *command]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.samples: list[tuple[float, float, int]] = []  # (seconds since start, RSS MB, trials ended)
        self.ended = 0  # trials Tune has ended so far (its console, as of the last sample)
        self.done = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        offset, carry = 0, b""
        while not self.done.wait(0.5):
            with open(self.log, "rb") as console:  # only what was written since the last read
                console.seek(offset)
                new = console.read()
            offset += len(new)
            # a marker split across two reads is counted once: keep the bytes that could start one
            self.ended += (carry + new).count(TRIAL_ENDED)
            carry = (carry + new)[-(len(TRIAL_ENDED) - 1):]
            value = rss_mb(self.proc.pid)
            if value is not None:
                self.samples.append((time.perf_counter() - self.started, value, self.ended))

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended first: the caller sees that in the trial count
            pass

    def wait(self) -> dict[str, Any]:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.done.set()
        wall = time.perf_counter() - self.started
        return {"returncode": self.proc.returncode, "process_wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                "rss_quarters_mb": quarters(self.samples, wall), **growth_per_trial(self.samples),
                "samples": self.samples}  # run_size keeps what it reports of them


def rss_by_run(samples: list[tuple[float, float, int]], trials: int, per_run: int | None) -> dict[str, list | None]:
    """A split sweep's driver RSS run by run: does it level off?

    ``at_ends``: the first sample once each Tune run's last trial had ended (before the run's teardown, or the
    driver's exec into a fresh process); ``peaks``: the most RSS after the previous run's end up to this one's
    (what the sweep's end adds after its last trial is apart, as in :func:`growth_per_trial`).
    None for a sweep of one run; a run whose end was never seen (a killed driver) has None.
    """
    if not per_run or per_run >= trials:
        return {"at_ends": None, "peaks": None}
    ends, peaks, start = [], [], 0
    for end in [*range(per_run, trials, per_run), trials]:
        at = next((i for i, (_, _, ended) in enumerate(samples) if ended >= end), None)
        ends.append(None if at is None else round(samples[at][1], 1))
        peaks.append(None if at is None else round(max(rss for _, rss, _ in samples[start:at + 1]), 1))
        start = at + 1 if at is not None else start
    return {"at_ends": ends, "peaks": peaks}


def quarters(samples: list[tuple[float, float, int]], wall: float) -> list[float]:
    """RSS at 25, 50, 75 and 100% of the run (the last sample at or before each point)."""
    out = []
    for q in (0.25, 0.5, 0.75, 1.0):
        before = [rss for t, rss, _ in samples if t <= q * wall]
        out.append(round(before[-1], 1) if before else float("nan"))
    return out


def growth_per_trial(samples: list[tuple[float, float, int]]) -> dict[str, float | None]:
    """The driver's RSS against the trials ended, apart from the end of the run.

    ``rss_kib_per_trial``: the least-squares slope of RSS (the last sample at each count of ended trials) over
    the second half of the trials, up to the last one; None below 3 counts there (a small sweep whose trials
    end in batches). ``rss_end_of_run_mb``: the run's last sample less the last one before the last trial
    ended (Tune's ``ResultGrid``, the sweep's aggregate run and report).
    """
    last_at: dict[int, float] = {}
    for _, rss, ended in samples:
        last_at[ended] = rss
    counts = sorted(n for n in last_at if n > 0)
    if not counts:
        return {"rss_kib_per_trial": None, "rss_end_of_run_mb": None, "rss_at_trial_quarters_mb": None}
    half = [n for n in counts if counts[-1] / 2 <= n < counts[-1]]  # the last count's samples hold the end of run
    slope = float(np.polyfit(half, [last_at[n] for n in half], 1)[0]) if len(half) >= 3 else None
    before_last = [rss for _, rss, ended in samples if ended < counts[-1]]
    # RSS once a quarter, half, ... of the trials had ended (a split sweep of 4 runs: at each run's end)
    at_quarters = [round(last_at[max(n for n in counts if n <= q * counts[-1])], 1)
                   if any(n <= q * counts[-1] for n in counts) else None for q in (0.25, 0.5, 0.75)]
    return {"rss_kib_per_trial": None if slope is None else round(1024 * slope, 1),
            "rss_end_of_run_mb": round(samples[-1][1] - before_last[-1], 1) if before_last else None,
            "rss_at_trial_quarters_mb": [*at_quarters, round(before_last[-1], 1) if before_last else None]}
