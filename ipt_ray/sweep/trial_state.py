"""What the driver (and the sweep's folder) keeps of a trial once it has ended.

Ray Tune holds every trial of a sweep in the driver's memory, and with it, for every numeric key of the
trial's results, a running max / min / avg / last / last-5-avg / last-10-avg and two deques
(``Trial.run_metadata.metric_analysis`` and ``metric_n_steps``), plus a JSON copy of them for the
experiment snapshot. This project's results carry ~50 numeric keys (per-seed metrics and learning rates,
their means and stds): measured with tracemalloc, ~148 KiB per trial, ~72 MB of driver memory at 500
trials (``bench/results/scale.md``). Only Tune's best-trial lookup (``ExperimentAnalysis``) reads that
analysis, and only for the sweep's metric, so an ended trial keeps the sweep metric's and nothing else, and
the record of its latest checkpoint only (:class:`TrimEndedTrials`). Results and ``Trial.last_result`` are
untouched. A sweep runs without Tune's per-trial file loggers and without a copy of the result in each
checkpoint's record (:func:`lean_trial_records`); the few-shot selection reads each trial's curve of the
sweep metric from a small file of its own instead (:class:`EpochCurves`).

Checkpoints: every one is kept while a trial runs (``driver.new_tuner`` says why); an ended trial keeps
only its latest, once the experiment snapshot a resume would read can no longer name an older one
(:class:`PruneEndedTrialCheckpoints`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ray.tune import Callback
from ray.util import debug as ray_debug

from ipt_ray.results import dev_key, result_epoch, split_key
from ipt_ray.system import environment

CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)$")
ENCODER_LOG_KEY = "tune_func_encode:"  # ray.tune.utils.serialization.TuneFunctionEncoder's log_once prefix


AUTO_LOGGERS_OFF = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
CHECKPOINT_METRICS_OFF = "TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE"  # Ray's own switch (ray.train.constants)
LEAN_TUNE_ENV = {AUTO_LOGGERS_OFF: "1", CHECKPOINT_METRICS_OFF: "1"}
RESULT_FILES_LOGGER = "ray.tune.analysis.experiment_analysis"


@contextmanager
def lean_trial_records() -> Iterator[None]:
    """Two of Ray Tune's switches on while a sweep's ``fit()`` runs (:data:`LEAN_TUNE_ENV`); the environment
    as it was afterwards. Both cut what the driver keeps per trial, and nothing this project reads is lost.

    - ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``: no per-trial CSV, JSON and TensorBoard loggers. They cost about
      half of the driver's memory growth per ended trial (~25-40 of ~55-71 KiB; ``bench/results/tune_memory.md``)
      and nothing reads their files: MLflow holds every epoch of every seed, the summary is built from each
      trial's last result, and the few-shot selection reads the curves :class:`EpochCurves` writes
      (``Result.metrics_dataframe`` is empty without them). Tune's ``ResultGrid`` then logs one warning naming
      every trial without result files; it says nothing here, so it is silenced (Tune's errors still show).
    - ``TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE`` (Ray's answer to its checkpoint manager's memory): a
      registered checkpoint keeps its path, not a copy of the whole result (~60 keys here), in the driver and
      in every experiment snapshot. Without it the copies grow with trials x epochs (a sweep keeps every
      checkpoint while a trial runs: ``driver.new_tuner``); ``Result.metrics`` (the last result) and
      ``Result.checkpoint`` are unchanged; only ``Result.best_checkpoints`` loses its metrics, and no part of
      this project reads it (no checkpoint score is set).
    """
    analysis_log = logging.getLogger(RESULT_FILES_LOGGER)
    level = analysis_log.level
    analysis_log.setLevel(logging.ERROR)
    try:
        with environment(**LEAN_TUNE_ENV):  # read by Tune when fit() builds its callbacks, and at each checkpoint
            yield
    finally:
        analysis_log.setLevel(level)


class EpochCurves(Callback):
    """Every result's epoch and per-seed dev and test values of ``metric``, one JSON line each, appended to
    ``path`` as Tune reports them: the curves the few-shot selection reads (:func:`read_curves`), a few
    hundred bytes per epoch on disk rather than Tune's per-trial files and their cost in driver memory.
    A resumed phase appends to the same file."""

    def __init__(self, path: Path, metric: str) -> None:
        self.path = Path(path)
        self.prefixes = (f"{dev_key(metric)}/", f"{split_key(metric)}/")

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        row = {k: v for k, v in result.items() if k in ("epoch", "training_iteration") or k.startswith(self.prefixes)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"trial_id": trial.trial_id, **row}) + "\n")


def read_curves(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Trial id -> its rows from :class:`EpochCurves`' file, by epoch; the latest line of an epoch wins (a
    trial restarted from its checkpoint reports the epochs after it again). Empty without the file. A line
    cut short (a driver killed while writing it) is skipped, and that epoch is missing from its curve, as it
    would be from a ``result.json`` torn the same way."""
    by_trial: dict[str, dict[int, dict[str, Any]]] = {}
    lines = Path(path).read_text().splitlines() if Path(path).is_file() else []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        by_trial.setdefault(row.pop("trial_id"), {})[result_epoch(row)] = row
    return {trial: [rows[e] for e in sorted(rows)] for trial, rows in by_trial.items()}


class TrimEndedTrials(Callback):
    """On a trial's end (completed, stopped early, or failed), drop Tune's running statistics of every
    result key but ``keep``, and its records of every checkpoint but the latest; a completed trial's record
    of its latest checkpoint keeps the path only. And forget the keys Tune's snapshot encoder made
    (:func:`forget_encoder_log_keys`)."""

    def __init__(self, keep: Iterable[str]) -> None:
        self.keep = frozenset(keep)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.trim(trial, completed=True)
        forget_encoder_log_keys()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.trim(trial)
        forget_encoder_log_keys()

    def trim(self, trial: Any, completed: bool = False) -> None:
        metadata = getattr(trial, "run_metadata", None)  # Ray 2.x; anything else: left as it is
        analysis = getattr(metadata, "metric_analysis", None)
        steps = getattr(metadata, "metric_n_steps", None)
        if not isinstance(analysis, dict) or not isinstance(steps, dict):
            return
        # Assigning (not mutating) invalidates the metadata's cached JSON, so the next snapshot is small too.
        metadata.metric_analysis = {k: v for k, v in analysis.items() if k in self.keep}
        metadata.metric_n_steps = {k: v for k, v in steps.items() if k in self.keep}
        self.trim_checkpoint_records(metadata, completed)

    @staticmethod
    def trim_checkpoint_records(metadata: Any, completed: bool) -> None:
        """The older checkpoints' folders go too (PruneEndedTrialCheckpoints, prune_checkpoints); a resume and
        ``Result.checkpoint`` read the latest. A failed trial's latest record stays whole: a retry restores
        from it and Tune takes its metrics as the trial's last result. A completed trial never runs again, so
        its record needs the path only (``Result.metrics`` is ``Trial.last_result``). No API trims these."""
        manager = getattr(metadata, "checkpoint_manager", None)
        latest = getattr(manager, "_latest_checkpoint_result", None)
        records = getattr(manager, "_checkpoint_results", None)
        if latest is None or not isinstance(records, list):
            return
        if completed:
            manager._latest_checkpoint_result = type(latest)(checkpoint=latest.checkpoint, metrics={})  # noqa: SLF001
            manager._checkpoint_results = [manager._latest_checkpoint_result]  # noqa: SLF001
        else:
            manager._checkpoint_results = [r for r in records if r.checkpoint is latest.checkpoint][-1:]  # noqa: SLF001
        metadata.invalidate_cache()


def forget_encoder_log_keys() -> int:
    """Drop the ``log_once`` keys of Ray Tune's JSON encoder from Ray's set of logged keys; returns how many.

    Why: each experiment snapshot encodes a trial's ``StorageContext``, checkpoint manager and metric deques
    through ``TuneFunctionEncoder``'s fallback, which calls ``log_once`` with the object's repr as the key (an
    address, the deque's values): a new key per trial and result, kept in ``ray.util.debug._logged`` for the
    driver's life (~3.4 KiB per trial: a tracemalloc probe of a split sweep, bench/results/scale_runs.md). The
    keys only gate a debug message. No API bounds that set; anything but a set there is left alone.
    """
    logged = getattr(ray_debug, "_logged", None)
    if not isinstance(logged, set):
        return 0
    # iterate a copy: Ray's other threads may log while this runs
    stale = [key for key in tuple(logged) if isinstance(key, str) and key.startswith(ENCODER_LOG_KEY)]
    logged.difference_update(stale)
    return len(stale)


class PruneEndedTrialCheckpoints(Callback):
    """Delete a completed trial's checkpoints but its latest while the sweep runs.

    Why: without it a sweep holds trials x epochs checkpoints until ``fit()`` returns (fine-tuning MiniLM
    writes 259 MB an epoch: the few-shot fine-tuning twin's select phase filled 56 GB in 14 minutes). A
    resume reads Tune's experiment snapshot, and a snapshot saved before the trial's last checkpoint names
    an older one; so a trial is pruned only once ``snapshots`` further snapshots have been saved since it
    completed (Tune calls :meth:`get_state` at each save, and uploads a snapshot only after the previous
    upload has finished) and ``min_age_s`` have passed. Only folders numbered below the latest go (and the
    latest too with ``keep_latest=False``): a retried trial's newer checkpoints are never touched.

    ``keep_latest=False`` is for trials whose weights nobody uses once they have ended (a few-shot select
    phase's cross-validation trials: only their dev curves choose anything). Once the snapshot on storage
    names the trial ended, a resume never reads its checkpoints: a completed trial is not run again.
    """

    def __init__(self, snapshots: int = 3, min_age_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, keep_latest: bool = True) -> None:
        self.snapshots, self.min_age_s, self.clock = snapshots, min_age_s, clock
        self.keep_latest = keep_latest
        self.saved = 0  # experiment snapshots saved so far
        self.pending: list[tuple[Path, int, float]] = []  # (checkpoint to keep, snapshot count, time) at its end

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        checkpoint = getattr(trial, "checkpoint", None)
        if checkpoint is not None and CHECKPOINT_DIR.search(Path(checkpoint.path).name):
            self.pending.append((Path(checkpoint.path), self.saved, self.clock()))

    def get_state(self) -> None:
        """Tune saves an experiment snapshot (``TuneController.save_to_dir``): count it, prune what is due."""
        self.saved += 1
        self.prune_due()
        return None  # nothing to restore: a resumed sweep prunes at its end (driver.prune_checkpoints)

    def prune_due(self) -> None:
        now, waiting = self.clock(), []
        for keep, saved_at_end, ended_at in self.pending:
            if self.saved - saved_at_end >= self.snapshots and now - ended_at >= self.min_age_s:
                prune_older_checkpoints(keep, including_it=not self.keep_latest)
            else:
                waiting.append((keep, saved_at_end, ended_at))
        self.pending = waiting


def prune_older_checkpoints(keep: Path, including_it: bool = False) -> None:
    """Delete ``keep``'s sibling ``checkpoint_<n>`` folders numbered below it (``including_it``: and ``keep``)."""
    last_to_delete = int(CHECKPOINT_DIR.search(keep.name).group(1)) - (0 if including_it else 1)
    for folder in keep.parent.glob("checkpoint_*"):
        match = CHECKPOINT_DIR.search(folder.name)
        if match and int(match.group(1)) <= last_to_delete and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
