"""A sweep as Tune runs of at most ``sweep.trials_per_run`` trials, one after the other.

Why: Tune holds ~26-36 KiB of the driver's memory for every trial of a run until the run ends, whatever
the trial reports (bench/results/tune_memory_floor.md), and the next run in the same driver reuses a
finished run's memory (bench/results/tune_memory_runs.md). What keeps the runs one sweep:

- one Optuna study in ``<sweep_dir>/optuna.journal`` (Optuna's ``JournalStorage``: it outlives a killed
  driver), so each run's TPE proposes from every earlier trial;
- one scheduler instance, so ASHA's rungs (the median rules' curves) hold every earlier trial;
- one MLflow parent run and tracker; the orphan check and the aggregate see the trials of every run;
- ``<sweep_dir>/runs.json``: each finished run's trials, kept to what the aggregate reads, so that a
  resume neither runs nor reads a finished run again;
- ``<sweep_dir>/scheduler.pkl``: the scheduler as the last finished run left it, for a driver that goes on
  in a fresh process (``ipt-ray sweep`` after each run, ``sweep.fresh_process_per_run``) or is resumed
  between two runs.

Why a fresh process: in one process the driver's memory still grows by ~16 KiB per trial across runs,
outside what Tune holds of a run (allocator and Ray core state: bench/results/scale_plateau.md); a process
that ends after each run gives all of it back (bench/results/scale_fresh.md). ``ipt-ray sweep`` replaces
itself (``os.execv``, same pid, same console) with ``ipt-ray sweep --resume NAME``, which skips the
finished runs and starts the next.

Tune's runs live in ``<sweep_dir>/run-000``, ``run-001``, ... A resume skips the finished runs, restores
the one in progress (``Tuner.restore``, as an unsplit sweep's resume does) and starts the rest. Tune
restores a scheduler as it was pickled when its run began (as for an unsplit sweep, whose restored
scheduler starts empty): the earlier runs' trials are in it, the restored run's own from before the kill
are not; the runs after it go on with that instance.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipt_ray.sweep.driver import (SweepPlan, TuneRun, make_trainable, new_tuner, prune_checkpoints, restore_tuner,
                                  tune_callbacks, write_sweep_file)
from ipt_ray.sweep.search import fail_abandoned_trials, journal, make_scheduler, make_searcher, open_study
from ipt_ray.sweep.trial_state import lean_trial_records
from ipt_ray.system import replace_whole
from ipt_ray.tracking import SweepTracker

RUNS_FILE = "runs.json"
SCHEDULER_FILE = "scheduler.pkl"
STUDY_FILE = "optuna.journal"
KEPT_KEYS = ("trial_id", "epoch", "training_iteration", "time_total_s")  # and every dev_* / test_* key


@dataclass
class TrialRecord:
    """What the aggregate, the orphan check and the timings read of an ended trial (quacks like Tune's
    ``Result``): its last result's ``dev_*`` / ``test_*`` values, epoch, id and time."""

    metrics: dict[str, Any]
    config: dict[str, Any]
    error: str | None
    path: str


def run_sizes(num_samples: int, per_run: int) -> list[int]:
    """The trials of each Tune run: ``per_run`` each, the rest in the last."""
    return [min(per_run, num_samples - start) for start in range(0, num_samples, per_run)]


def run_name(index: int) -> str:
    return f"run-{index:03d}"


@dataclass
class SweepRuns:
    """What :func:`run_in_parts` ran: every trial of the finished runs, the sweep's Optuna study (None: no
    Optuna, or runs are left) and the Tune runs left for a fresh driver process."""

    trials: list[TrialRecord]
    study: Any
    runs_left: int


def run_in_parts(plan: SweepPlan, tracker: SweepTracker, callbacks: list[Any], out,
                 share_idle_cpus: bool, max_runs: int | None = None) -> SweepRuns:
    """The sweep run as consecutive Tune runs (the finished ones of a resumed sweep read back from
    ``runs.json``), at most ``max_runs`` of them in this process (None: all)."""
    cfg = plan.cfg
    sizes = run_sizes(cfg.sweep.num_samples, cfg.sweep.trials_per_run)
    finished = read_runs(plan.sweep_dir) if plan.resuming else []
    if not plan.resuming:
        write_sweep_file(plan)
    elif finished:
        out(f"resuming sweep {plan.name}: {len(finished)} of {len(sizes)} Tune runs finished")
    trainable = make_trainable(plan, share_idle_cpus)
    storage = journal(plan.sweep_dir / STUDY_FILE) if cfg.sweep.searcher == "optuna" else None
    scheduler = read_scheduler(plan.sweep_dir) if plan.resuming else None
    if scheduler is None:
        scheduler = make_scheduler(cfg, cfg.train.epochs, target=plan.target)
    last = len(sizes) if max_runs is None else min(len(sizes), len(finished) + max_runs)
    for index in range(len(finished), last):
        earlier = [trial.metrics.get("trial_id") for run in finished for trial in run]
        run = TuneRun(name=run_name(index), storage=plan.sweep_dir, num_samples=sizes[index], scheduler=scheduler,
                      metric=None, mode=None)  # the searcher and the scheduler hold them: one instance, all runs
        # Only the run a killed driver was in can hold runs of trials Tune forgot (SweepTracker.adopt_orphans);
        # a run whose folder is not there never made its Tuner, so none of its trials ran.
        resumes = plan.resuming and index == len(finished) and run.path.is_dir()
        run_plan = plan if resumes else dataclasses.replace(plan, resuming=False)
        run_callbacks = tune_callbacks(run_plan, tracker, callbacks, earlier)
        tuner = restore_tuner(run.path, trainable, run_callbacks, out, f"{plan.name}/{run.name}") \
            if run_plan.resuming else None
        if tuner is None:
            shutil.rmtree(run.path, ignore_errors=True)  # what a driver killed before its first snapshot left
            searcher = make_searcher(cfg, plan.target, cfg.train.epochs, storage=storage, run=index)
            tuner = new_tuner(plan, trainable, searcher, run_callbacks, run)
        else:
            scheduler = tuner._local_tuner._tune_config.scheduler  # noqa: SLF001 - the restored one, as it fills
        out(f"sweep {plan.name}: Tune run {index + 1} of {len(sizes)} ({sizes[index]} trials)")
        with lean_trial_records():
            grid_result = tuner.fit()
        prune_checkpoints(grid_result)
        finished.append([trial_record(result) for result in grid_result])
        del tuner, grid_result  # what Tune held of this run's trials goes before the next run starts
        gc.collect()  # once per run: Tune's trial graph has cycles
        if index + 1 < last:  # another run follows in this process: it reuses what this one freed
            # (not imported above: ipt_ray.train loads torch, which a driver that only runs Tune does not need)
            from ipt_ray.train.runtime import release_freed_memory

            release_freed_memory()
        write_scheduler(plan.sweep_dir, scheduler)  # before runs.json names the run finished
        write_runs(plan.sweep_dir, finished)
    trials = [trial for run in finished for trial in run]
    if last < len(sizes):
        return SweepRuns(trials, None, len(sizes) - last)
    ot_study = open_study(storage) if storage is not None else None
    abandoned = fail_abandoned_trials(ot_study)
    if abandoned:
        out(f"{abandoned} Optuna trials a killed driver had started and no run resumed are marked FAIL")
    return SweepRuns(trials, ot_study, 0)


def trial_record(result: Any) -> TrialRecord:
    metrics = {key: value for key, value in (result.metrics or {}).items()
               if key in KEPT_KEYS or key.startswith(("dev_", "test_"))}
    return TrialRecord(metrics=metrics, config=dict(result.config or {}),
                       error=None if result.error is None else str(result.error), path=str(result.path or ""))


def read_scheduler(sweep_dir: Path) -> Any:
    """The scheduler as the last finished run left it (None: no run finished, or the sweep has none)."""
    from ray import cloudpickle  # heavy, optional: only when a sweep starts

    path = sweep_dir / SCHEDULER_FILE
    return cloudpickle.loads(path.read_bytes()) if path.is_file() else None


def write_scheduler(sweep_dir: Path, scheduler: Any) -> None:
    """Whole (:func:`replace_whole`); nothing for a sweep without a scheduler."""
    if scheduler is None:
        return
    from ray import cloudpickle  # Tune's pickler, as for its tuner.pkl: same_epoch_median is a local class

    replace_whole(sweep_dir / SCHEDULER_FILE, cloudpickle.dumps(scheduler))


def read_runs(sweep_dir: Path) -> list[list[TrialRecord]]:
    """The finished Tune runs' trials, as :func:`write_runs` left them ([] before the first ended)."""
    path = sweep_dir / RUNS_FILE
    if not path.is_file():
        return []
    return [[TrialRecord(**trial) for trial in run] for run in json.loads(path.read_text())["runs"]]


def write_runs(sweep_dir: Path, runs: list[list[TrialRecord]]) -> None:
    """Whole (:func:`replace_whole`): a driver killed mid-write leaves the previous file."""
    # default=str, as results.config_id encodes a config (numpy ints from Tune's samplers): same id read back
    text = json.dumps({"runs": [[dataclasses.asdict(t) for t in run] for run in runs]}, default=str)
    replace_whole(sweep_dir / RUNS_FILE, text.encode())
