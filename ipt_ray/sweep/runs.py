"""A sweep as Tune runs of at most ``sweep.trials_per_run`` trials, one after the other.

Why: Tune holds ~26-36 KiB of the driver's memory for every trial of a run until the run ends, whatever
the trial reports (bench/results/tune_memory_floor.md), and the next run in the same driver reuses a
finished run's memory (bench/results/tune_memory_runs.md). What keeps the runs one sweep:

- one Optuna study in ``<sweep_dir>/optuna.journal`` (Optuna's ``JournalStorage``: it outlives a killed
  driver), so each run's TPE proposes from every earlier trial;
- one scheduler instance, so ASHA's rungs (the median rules' curves) hold every earlier trial;
- one MLflow parent run and tracker; the orphan check and the aggregate see the trials of every run;
- ``<sweep_dir>/runs.json``: each finished run's trials, kept to what the aggregate reads, so that a
  resume neither runs nor reads a finished run again.

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
from ipt_ray.tracking import SweepTracker
from ipt_ray.train.runtime import release_freed_memory

RUNS_FILE = "runs.json"
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


def run_in_parts(plan: SweepPlan, tracker: SweepTracker, callbacks: list[Any], out,
                 share_idle_cpus: bool) -> tuple[list[TrialRecord], Any]:
    """(every trial of every run, the sweep's Optuna study or None): the sweep run as consecutive Tune runs
    (the finished ones of a resumed sweep read back from ``runs.json``)."""
    cfg = plan.cfg
    sizes = run_sizes(cfg.sweep.num_samples, cfg.sweep.trials_per_run)
    finished = read_runs(plan.sweep_dir) if plan.resuming else []
    if not plan.resuming:
        write_sweep_file(plan)
    elif finished:
        out(f"resuming sweep {plan.name}: {len(finished)} of {len(sizes)} Tune runs finished")
    trainable = make_trainable(plan, share_idle_cpus)
    storage = journal(plan.sweep_dir / STUDY_FILE) if cfg.sweep.searcher == "optuna" else None
    scheduler = make_scheduler(cfg, cfg.train.epochs, target=plan.target)
    for index in range(len(finished), len(sizes)):
        earlier = [trial.metrics.get("trial_id") for run in finished for trial in run]
        # only the run a killed driver was in can hold runs of trials Tune forgot (SweepTracker.adopt_orphans)
        run_plan = plan if index == len(finished) else dataclasses.replace(plan, resuming=False)
        run_callbacks = tune_callbacks(run_plan, tracker, callbacks, earlier)
        run = TuneRun(name=run_name(index), storage=plan.sweep_dir, num_samples=sizes[index], scheduler=scheduler,
                      metric=None, mode=None)  # the searcher and the scheduler hold them: one instance, all runs
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
        release_freed_memory()
        write_runs(plan.sweep_dir, finished)
    ot_study = open_study(storage) if storage is not None else None
    abandoned = fail_abandoned_trials(ot_study)
    if abandoned:
        out(f"{abandoned} Optuna trials a killed driver had started and no run resumed are marked FAIL")
    return [trial for run in finished for trial in run], ot_study


def trial_record(result: Any) -> TrialRecord:
    metrics = {key: value for key, value in (result.metrics or {}).items()
               if key in KEPT_KEYS or key.startswith(("dev_", "test_"))}
    return TrialRecord(metrics=metrics, config=dict(result.config or {}),
                       error=None if result.error is None else str(result.error), path=str(result.path or ""))


def read_runs(sweep_dir: Path) -> list[list[TrialRecord]]:
    """The finished Tune runs' trials, as :func:`write_runs` left them ([] before the first ended)."""
    path = sweep_dir / RUNS_FILE
    if not path.is_file():
        return []
    return [[TrialRecord(**trial) for trial in run] for run in json.loads(path.read_text())["runs"]]


def write_runs(sweep_dir: Path, runs: list[list[TrialRecord]]) -> None:
    """Whole, through a rename: a driver killed mid-write leaves the previous file."""
    path = sweep_dir / RUNS_FILE
    tmp = path.with_name(path.name + ".tmp")
    # default=str, as results.config_id encodes a config (numpy ints from Tune's samplers): same id read back
    tmp.write_text(json.dumps({"runs": [[dataclasses.asdict(t) for t in run] for run in runs]}, default=str))
    tmp.replace(path)
