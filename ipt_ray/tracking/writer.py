"""Trial writes off Tune's loop: journaled first, applied by one writer thread (each trial's in order).

Tune calls its callbacks on the thread that runs the sweep, so a synchronous MLflow write per result
holds every other trial up: in ``bench/scale.py`` (50 trials of ~1 s on a 4-node cluster) 85% of the
driver's main thread went to MLflow calls and the sweep ran at 0.71 trials/s (0.85 with the writer). With a
:class:`BackgroundWriter` the Tune thread only appends the write to the sweep's journal (one fsync'd
line, the same record an outage writes) and returns; the writer thread replays the journal and drops
what it applied: over HTTP, different trials' writes side by side (:func:`trial_waves`), a trial's own in
the order Tune reported them. A driver killed at any point leaves every write Tune was told about in the
journal, and the resumed sweep replays it (replay is idempotent: runs found by tags, epochs at or
below ``ipt.last_epoch`` skipped), so MLflow stays exact. A lost server is handled as before: the
writer stops, probes it every ``retry_interval_s`` and goes on when it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ipt_ray.tracking.client import TrackingError, check_reachable, http_defaults, is_outage
from ipt_ray.tracking.fanout import RequestFanout
from ipt_ray.tracking.journal import Journal, read_journal, rewrite_journal

log = logging.getLogger(__name__)

#: The writes a writer takes: those of running trials. The parent, the aggregate and the model are
#: written on the caller's thread, after :meth:`BackgroundWriter.stop`.
BACKGROUND_OPS = ("log_result", "end_trial", "adopt_orphans", "log_adapters")
#: Writes that touch one trial's own runs only: a trial's stay in order, different trials' go side by side.
TRIAL_OPS = ("log_result", "end_trial", "log_adapters")
#: Trials whose writes are applied at once (over HTTP; their per-seed requests share the tracker's
#: ``RequestFanout``). One trial at a time fell behind a 160-trial ``bench.scale`` sweep: 181 writes waited
#: at its end and took 11.6 s to apply, 0.29 of its 0.75 slot-s of overhead per trial.
PARALLEL_TRIALS = 4


def trial_waves(records: list[dict[str, Any]]) -> list[list[list[int]]]:
    """The order in which the writer applies ``records`` (indices): waves, one after the other; a wave's
    chains side by side, each chain's records in order. A run of :data:`TRIAL_OPS` records is one wave with a
    chain per trial (in the order each trial first appears); any other record is a wave of its own."""
    waves: list[list[list[int]]] = []
    chains: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        trial = (record.get("args") or {}).get("trial_id") if record.get("op") in TRIAL_OPS else None
        if trial is None:
            if chains:
                waves.append(list(chains.values()))
                chains = {}
            waves.append([[i]])
        else:
            chains.setdefault(str(trial), []).append(i)
    if chains:
        waves.append(list(chains.values()))
    return waves


class Replayer(Protocol):
    uri: str
    _outage: Journal | None

    def _replay(self, record: dict[str, Any]) -> None: ...

    def _reset_cache(self) -> None: ...


class JournalReplay:
    """The journal side of :class:`~ipt_ray.tracking.SweepTracker`: replay, flush, background writing."""

    uri: str
    journal: Path | None
    _outage: Journal | None
    _writer: BackgroundWriter | None

    def start_background(self) -> None:
        """From now on the writes of running trials (:data:`BACKGROUND_OPS`) are journaled and applied by
        a writer thread; call :meth:`stop_background` before the sweep's closing writes."""
        if self._writer is None:
            self._writer = BackgroundWriter(self)

    def stop_background(self) -> None:
        """Apply what the writer holds (what a lost server does not take stays journaled), end it."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()

    def flush(self) -> int:
        """What waits in the journal gets one more replay attempt now (whatever the
        probe interval). Returns the writes still journaled."""
        if self._outage is not None and self._outage.pending():
            self._outage.next_probe = 0.0
            self._outage.try_sync()
        return self.pending()

    def pending(self) -> int:
        """How many writes wait in the journal."""
        return len(read_journal(self.journal)) if self.journal is not None else 0

    def sync(self) -> int:
        """Replay the journal into MLflow, in order, and truncate it; returns the writes replayed.

        Idempotent: runs are found by tags, epochs at or below ``ipt.last_epoch`` are skipped and the
        aggregate is keyed, so an interrupted sync can simply run again. Raises :class:`TrackingError`
        (the journal keeps what was not replayed) when the server does not answer.
        """
        records = self._outage.records() if self._outage is not None else []
        if not records or self.journal is None:
            return 0
        check_reachable(self.uri)
        self._reset_cache()
        done = 0
        try:
            with http_defaults(self.uri):
                for record in records:
                    self._replay(record)
                    done += 1
        except Exception as err:
            rewrite_journal(self.journal, records[done:])
            self._reset_cache()
            if is_outage(err):
                raise TrackingError(f"MLflow at {self.uri} went away during the replay: {done} of {len(records)} "
                                    f"journaled writes replayed, the rest kept in {self.journal}") from err
            raise
        rewrite_journal(self.journal, [])
        return done


class BackgroundWriter:
    """One writer thread over ``tracker``'s journal (the tracker must have one)."""

    def __init__(self, tracker: Replayer) -> None:
        if tracker._outage is None:
            raise ValueError("a background writer needs the tracker's journal")
        self.tracker, self.journal = tracker, tracker._outage
        self.lock = threading.Condition()  # appends, reads and compaction of the journal file
        self.stopping = False
        self.error: BaseException | None = None  # a write MLflow refused: raised to the sweep
        # Side by side over HTTP only: a local store works in this process, one writer at a time (sqlite).
        self.trials = RequestFanout(tracker.uri, PARALLEL_TRIALS, thread_name="ipt-mlflow-trial")
        self.thread = threading.Thread(target=self._run, name="ipt-mlflow-writer", daemon=True)
        self.thread.start()

    def submit(self, op: str, payload: dict[str, Any]) -> None:
        """Journal one write (on disk when this returns) for the writer thread."""
        if self.error is not None:
            raise self.error
        with self.lock:
            self.journal.append(op, payload)
            self.lock.notify()

    def stop(self, timeout_s: float | None = None) -> None:
        """Apply what is journaled (one more attempt on a lost server, whatever its probe interval), then
        end the thread. What a lost server did not take stays in the journal."""
        with self.lock:
            self.stopping = True
            self.journal.next_probe = 0.0
            self.lock.notify()
        self.thread.join(timeout_s)
        if not self.thread.is_alive():
            self.trials.close()
        if self.error is not None:
            raise self.error

    def _pending(self) -> list[dict[str, Any]]:
        with self.lock:
            return read_journal(self.journal.path)

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.stopping and not self.journal.pending():
                    self.lock.wait()
                stopping = self.stopping
            records = self._pending()
            if records and time.monotonic() >= self.journal.next_probe:
                self._apply(records)
                if self.journal.warned and self.error is None and not self.journal.pending():
                    log.warning("MLflow at %s is back: the journaled tracking writes are replayed", self.tracker.uri)
                    self.journal.reset()
            elif records and not stopping:  # the server is away: wait for its next probe (or the end)
                with self.lock:
                    self.lock.wait(max(0.0, self.journal.next_probe - time.monotonic()))
                continue
            if stopping and (not self.journal.pending() or self.error is not None
                             or time.monotonic() < self.journal.next_probe):
                return
            if self.error is not None:
                return

    def _apply(self, records: list[dict[str, Any]]) -> None:
        """Replay ``records`` (different trials' side by side: :func:`trial_waves`); drop from the journal's
        head those that landed. After a failure, writes that landed behind one that did not stay in the
        journal and are replayed again (replay is idempotent)."""
        landed = [False] * len(records)
        try:
            with http_defaults(self.tracker.uri):
                for wave in trial_waves(records):
                    self._apply_wave(records, wave, landed)
        except Exception as err:  # noqa: BLE001 - an outage waits for the server; anything else ends the sweep
            self.tracker._reset_cache()  # a write may have half-landed: read the truth back from the tags
            if is_outage(err):
                self.journal.went_offline(err)
            else:
                log.error("MLflow refused a tracking write (%s); it stays in %s", err, self.journal.path)
                self.error = err
        finally:
            done = landed.index(False) if False in landed else len(landed)
            with self.lock:  # appends only add at the end: the first `done` lines are the ones applied
                rewrite_journal(self.journal.path, read_journal(self.journal.path)[done:])

    def _apply_wave(self, records: list[dict[str, Any]], chains: list[list[int]], landed: list[bool]) -> None:
        """Each chain's records in order, the chains side by side; every chain has ended when this returns or
        raises (the first error in chain order), so a reset of the tracker's cache races no write."""

        def apply_chain(chain: list[int]) -> None:
            for i in chain:
                self.tracker._replay(records[i])
                landed[i] = True

        if self.trials.max_parallel <= 1:  # a local store: one after the other, in the journal's order
            apply_chain(sorted(i for chain in chains for i in chain))
        else:
            self.trials.each(apply_chain, chains)
