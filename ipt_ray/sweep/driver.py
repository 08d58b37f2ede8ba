"""The Tune driver: one trial per config, its seeds trained together, Optuna proposing configs.

- ``num_workers: 0`` runs ``train_loop_per_worker`` inside the Tune function trial (``reuse_actors``
  keeps the loaded backbone and tokenised data warm between trials).
- ``num_workers >= 1`` runs ``TorchTrainer(train_loop_per_worker).fit()`` from the function trial (not
  the deprecated ``Tuner(trainer)``); its run is named after the trial so a restarted trial resumes
  from its own checkpoint. Such a trial reserves one ``trial_slot`` custom resource and no CPU, so
  its Train workers always find the CPUs they need: no sweep can deadlock.
- MLflow is written from the driver (``MlflowTrackingCallback``); workers need no route to it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ipt_ray.config import ExperimentConfig
from ipt_ray.results import SweepSummary, aggregate, config_id, render_console, results_from_tune, write_artifacts
from ipt_ray.sweep.resources import (connect_ray, disconnect_ray, max_concurrent, reuse_actors, shares_idle_cpus,
                                     trial_resources)
from ipt_ray.sweep.search import make_scheduler, make_searcher, optuna_states
from ipt_ray.sweep.space import param_space
from ipt_ray.sweep.trial import ipt_trial
from ipt_ray.sweep.trial_state import PruneEndedTrialCheckpoints, TrimEndedTrials, lean_trial_records
from ipt_ray.tracking import JOURNAL_FILE, SWEEP_FILE, SweepTracker, check_reachable, resolve_tracking_uri
from ipt_ray.tracking.callback import MlflowTrackingCallback


@dataclass
class SweepPlan:
    """One sweep's identity and places, fixed before Ray starts."""

    cfg: ExperimentConfig
    config_path: Path
    name: str
    sweep_id: str
    resuming: bool
    uri: str  # the MLflow tracking URI, checked reachable
    root: Path  # the sweeps' storage root (Tune's storage_path)
    sweep_dir: Path  # root / name

    @property
    def target(self) -> str:
        """What Tune and Optuna optimise: the seed mean of the sweep's metric."""
        return f"dev_{self.cfg.sweep.metric}_mean"

    @property
    def seeds(self) -> list[int]:
        return list(self.cfg.train.seeds)


@dataclass
class SweepOutcome:
    summary: SweepSummary
    artifacts: dict[str, Any]  # report files written under sweep_dir/report, by kind ("md", ...)
    optuna_states: dict[str, int]
    journaled: int  # tracking writes still waiting in the journal


def run_sweep(cfg: ExperimentConfig, config_path: str | Path, resume: bool | str = False,
              config_text: str | None = None, out=print, callbacks: list[Any] | None = None,
              restartable: bool = False, started_at: float | None = None) -> dict[str, Any]:
    """Run (or resume) a sweep; ``callbacks`` are extra ``tune.Callback`` s (e.g. for measurements).

    ``restartable``: the caller goes on in a fresh process (``ipt-ray sweep``): a sweep split into Tune runs
    with ``sweep.fresh_process_per_run`` then returns after one run with ``runs_left`` > 0, its Ray and
    tracker closed, its ``started_at`` (``time.time()``) to pass on, and the caller resumes it by name
    (:mod:`ipt_ray.sweep.runs`): the next process's wall time counts from there. Given ``started_at``, a
    process continues a sweep whose first process ran the preflight, and does not run it again.
    """
    config_path = Path(config_path)
    if started_at is None:  # a continued sweep goes on with the config its first process checked
        check_sweep(cfg)
    if cfg.sweep.few_shot is not None:  # two phases (select by cross validation, then final) under one parent
        from ipt_ray.sweep.fewshot import run_fewshot_sweep  # it builds on this module

        return run_fewshot_sweep(cfg, config_path, resume, config_text, out, callbacks)
    plan = plan_sweep(cfg, config_path, resume)
    tracker = start_tracker(plan, config_text)
    handle = connect_ray(cfg)
    started_at = time.time() if started_at is None else started_at  # a continued sweep: from its first process
    tracker.start_background()  # trial writes leave Tune's loop (ipt_ray.tracking.writer)
    try:
        share_idle_cpus = shares_idle_cpus(cfg, handle)
        if splits_into_runs(cfg) and not started_as_one_run(plan):
            from ipt_ray.sweep.runs import run_in_parts  # it builds on this module

            one_run = restartable and cfg.sweep.fresh_process_per_run
            parts = run_in_parts(plan, tracker, callbacks or [], out, share_idle_cpus, 1 if one_run else None)
            if parts.runs_left:
                return {"name": plan.name, "sweep_id": plan.sweep_id, "runs_left": parts.runs_left,
                        "started_at": started_at}
            trials, searcher = parts.trials, parts.study
        else:
            trials, searcher = run_whole(plan, tracker, callbacks or [], out, share_idle_cpus)
        tracker.stop_background()
        wall = time.time() - started_at
        retire_orphan_runs(plan, trials, tracker, out)
        outcome = finish_sweep(plan, trials, tracker, searcher)
    finally:
        tracker.stop_background()
        disconnect_ray(handle)
    trial_time = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in trials)
    print_outcome(plan, outcome, wall, trial_time, out)
    return {"name": plan.name, "sweep_id": plan.sweep_id, "runs_left": 0, "summary": outcome.summary,
            "wall_time_s": wall, "trial_time_s": trial_time, "tracking_uri": plan.uri, "sweep_dir": str(plan.sweep_dir),
            "optuna_states": outcome.optuna_states, "journaled": outcome.journaled}


def splits_into_runs(cfg: ExperimentConfig) -> bool:
    """Does the sweep run as several Tune runs (``sweep.trials_per_run`` below its trials)?"""
    per_run = cfg.sweep.trials_per_run
    return per_run is not None and cfg.sweep.searcher != "grid" and per_run < cfg.sweep.num_samples


def started_as_one_run(plan: SweepPlan) -> bool:
    """A resumed sweep whose single Tune run is on disk (one started before ``sweep.trials_per_run`` applied to
    it, e.g. under the older default of one run) goes on as that run, whatever its config now says."""
    return plan.resuming and has_snapshot(plan.sweep_dir)


def run_whole(plan: SweepPlan, tracker: SweepTracker, callbacks: list[Any], out,
              share_idle_cpus: bool) -> tuple[Any, Any]:
    """(Tune's ``ResultGrid``, Optuna searcher or None): the sweep as one Tune run (new or restored)."""
    tuner, searcher = make_tuner(plan, tune_callbacks(plan, tracker, callbacks), out, share_idle_cpus)
    with lean_trial_records():  # what Tune keeps per trial that nothing here reads
        grid_result = tuner.fit()
    prune_checkpoints(grid_result)
    return grid_result, searcher


def tune_callbacks(plan: SweepPlan, tracker: SweepTracker, extra: list[Any],
                   earlier_trial_ids: list[str] | None = None) -> list[Any]:
    """MLflow's callback, the caller's, and the two that trim what an ended trial leaves behind."""
    # last: the others see an ended trial whole before Tune's statistics of it are trimmed
    return [tracking_callback(plan, tracker, earlier_trial_ids or []), *extra, PruneEndedTrialCheckpoints(),
            TrimEndedTrials([plan.target])]


def check_sweep(cfg: ExperimentConfig) -> None:
    """Bad input fails here: before Ray starts, MLflow is written or any file is made."""
    if not cfg.sweep.search_space:
        raise ValueError("sweep.search_space is empty: nothing to sweep (use `ipt-ray train` for one config)")
    # transformers (and torch) load here and nowhere else in the driver: a continued sweep's process skips
    # this check and runs without them (bench/results/scale_bounded.md)
    from ipt_ray.preflight import preflight

    preflight(cfg)


def plan_sweep(cfg: ExperimentConfig, config_path: Path, resume: bool | str) -> SweepPlan:
    """The tracking URI (reachable, before any trial runs), the sweep's name and id, and its folder."""
    uri = resolve_tracking_uri(cfg.tracking.uri)
    check_reachable(uri)
    name, sweep_id, resuming = resolve_sweep(cfg, config_path, resume)
    root = storage_root(cfg)
    return SweepPlan(cfg=cfg, config_path=config_path, name=name, sweep_id=sweep_id, resuming=resuming, uri=uri,
                     root=root, sweep_dir=root / name)


def start_tracker(plan: SweepPlan, config_text: str | None) -> SweepTracker:
    """The sweep's MLflow parent run (found again on resume); ``config_text`` defaults to the YAML file's."""
    cfg = plan.cfg
    # A lost server does not stop the sweep: failed writes wait in the journal (replayed when it is back).
    tracker = SweepTracker(plan.uri, cfg.tracking.experiment, plan.sweep_id, plan.name,
                           journal=plan.sweep_dir / JOURNAL_FILE)
    space_json = {k: v.model_dump(exclude_none=True) for k, v in cfg.sweep.search_space.items()}
    tracker.start_parent(config_text or plan.config_path.read_text(), space_json, code_version(),
                         {"task": cfg.task.name, "backbone": cfg.backbone.name, "seeds": ",".join(map(str, plan.seeds)),
                          "num_samples": cfg.sweep.num_samples, "searcher": cfg.sweep.searcher,
                          "scheduler": cfg.sweep.scheduler, "metric": plan.target})
    return tracker


def tracking_callback(plan: SweepPlan, tracker: SweepTracker,
                      earlier_trial_ids: list[str] | None = None) -> MlflowTrackingCallback:
    cfg = plan.cfg
    return MlflowTrackingCallback(tracker, seeds=plan.seeds, metric=cfg.sweep.metric, max_epochs=cfg.train.epochs,
                                  config_id=config_id, default_strategy=cfg.method.strategy, resuming=plan.resuming,
                                  adapters_dir=plan.sweep_dir / "adapters",  # where ipt_trial saves them
                                  earlier_trial_ids=earlier_trial_ids or [])


@dataclass
class TuneRun:
    """One Tune run of a sweep: the whole sweep, or one part of a split one (:mod:`ipt_ray.sweep.runs`)."""

    name: str  # Tune's experiment name
    storage: Path  # Tune's storage_path: the run's folder is storage / name
    num_samples: int
    scheduler: Any
    metric: str | None  # None: the searcher and scheduler hold metric and mode (one instance, several runs)
    mode: str | None

    @property
    def path(self) -> Path:
        return self.storage / self.name


def whole_run(plan: SweepPlan) -> TuneRun:
    """The sweep as one Tune run, in the sweep's own folder."""
    cfg = plan.cfg
    return TuneRun(name=plan.name, storage=plan.root,
                   num_samples=1 if cfg.sweep.searcher == "grid" else cfg.sweep.num_samples,
                   scheduler=make_scheduler(cfg, cfg.train.epochs), metric=plan.target, mode=cfg.sweep.mode)


def make_trainable(plan: SweepPlan, share_idle_cpus: bool = False) -> Any:
    """The Tune function trainable of every trial of the sweep, with its resources."""
    from ray import tune  # heavy, optional: only when a sweep starts

    cfg = plan.cfg
    return tune.with_resources(
        tune.with_parameters(ipt_trial, base=cfg.model_dump(mode="json"), storage=str(plan.sweep_dir),
                             share_idle_cpus=share_idle_cpus),
        trial_resources(cfg),
    )


def make_tuner(plan: SweepPlan, callbacks: list[Any], out, share_idle_cpus: bool = False) -> tuple[Any, Any]:
    """(tuner, Optuna searcher or None): the stored sweep restored, or a new one with its metadata file."""
    trainable = make_trainable(plan, share_idle_cpus)
    if plan.resuming:
        tuner = restore_tuner(plan.sweep_dir, trainable, callbacks, out, f"sweep {plan.name}")
        if tuner is not None:
            return tuner, None
    write_sweep_file(plan)
    searcher = make_searcher(plan.cfg, plan.target, plan.cfg.train.epochs)
    return new_tuner(plan, trainable, searcher, callbacks, whole_run(plan)), searcher


def restore_tuner(path: Path, trainable: Any, callbacks: list[Any], out, label: str) -> Any:
    """The Tune run stored at ``path``, to resume (its unfinished and errored trials run again); None when
    Tune has no snapshot there."""
    from ray import tune  # heavy, optional: only when a sweep starts

    if not has_snapshot(path):
        return None
    out(f"resuming {label} from {path}")
    tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
    # Tune restored the callbacks pickled with the run config; hand over fresh ones (no public setter).
    tuner._local_tuner._run_config.callbacks = callbacks  # noqa: SLF001
    return tuner


def has_snapshot(path: Path) -> bool:
    """Did a Tune run at ``path`` save its experiment state? ``Tuner.can_restore`` checks only the ``tuner.pkl``
    a ``Tuner`` writes when it is made: a driver killed before the run's first snapshot left that alone, and
    Tune then "restores" a run whose searcher was never given its search space (seen in bench.scale)."""
    from ray import tune  # heavy, optional: only when a sweep starts

    return tune.Tuner.can_restore(str(path)) and any(Path(path).glob("experiment_state-*.json"))


def write_sweep_file(plan: SweepPlan) -> None:
    """``<sweep_dir>/SWEEP_FILE``: what ``--resume`` and ``report --sync`` find the sweep by."""
    plan.root.mkdir(parents=True, exist_ok=True)
    plan.sweep_dir.mkdir(parents=True, exist_ok=True)
    (plan.sweep_dir / SWEEP_FILE).write_text(json.dumps({"name": plan.name, "sweep_id": plan.sweep_id,
                                                         "tracking_uri": plan.uri,
                                                         "experiment": plan.cfg.tracking.experiment,
                                                         "config": str(plan.config_path.resolve())}))


def new_tuner(plan: SweepPlan, trainable: Any, searcher: Any, callbacks: list[Any], run: TuneRun) -> Any:
    from ray import tune  # heavy, optional: only when a sweep starts

    cfg = plan.cfg
    return tune.Tuner(
        trainable,
        param_space=param_space(cfg),
        tune_config=tune.TuneConfig(
            metric=run.metric, mode=run.mode, search_alg=searcher, scheduler=run.scheduler,
            num_samples=run.num_samples,
            max_concurrent_trials=max_concurrent(cfg),
            reuse_actors=reuse_actors(cfg),
        ),
        run_config=tune.RunConfig(
            name=run.name, storage_path=str(run.storage), callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=cfg.cluster.max_failures),
            # Every checkpoint is kept while a trial runs (PruneEndedTrialCheckpoints trims a completed
            # trial's once no snapshot can name them, prune_checkpoints the rest at the end):
            # with num_to_keep=1 Tune deletes a trial's previous checkpoint as soon as it registers
            # the next, before the experiment snapshot that names the new one is on disk, and a
            # driver killed in between resumes into "checkpoint does not exist on storage anymore".
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            verbose=1,
        ),
    )


def retire_orphan_runs(plan: SweepPlan, trials: Any, tracker: SweepTracker, out,
                       tags: dict[str, str] | None = None) -> None:
    """A resumed sweep's child runs (with ``tags``) whose trial is not among ``trials`` (Tune's ``ResultGrid``,
    or the records of every run of a split sweep) are retired (:mod:`ipt_ray.tracking.orphans`). Call it with
    the trial writes landed (background writer stopped). Tune's results name every trial they hold; should one
    not say its id, nothing is retired. The tracker logs what it retired (also when a journal replay does it
    later)."""
    if not plan.resuming:
        return  # only a killed driver leaves such runs
    known = [(result.metrics or {}).get("trial_id") for result in trials]
    if None in known:
        out("warning: a trial of the resumed sweep reported no result: runs of forgotten trials are kept")
        return
    tracker.retire_orphans(known, tags)


def finish_sweep(plan: SweepPlan, trials: Any, tracker: SweepTracker, searcher: Any) -> SweepOutcome:
    """Aggregate the trials (as :func:`retire_orphan_runs` takes them), write the report files, log them to
    the parent run and close it."""
    cfg = plan.cfg
    results = results_from_tune(trials, cfg.sweep.metric, plan.seeds, cfg.train.epochs)
    summary = aggregate(results, cfg.sweep.metric, cfg.sweep.mode)
    artifacts = write_artifacts(summary, plan.sweep_dir / "report")
    tracker.log_aggregate(summary, artifacts)
    tracker.log_best_model(summary, cfg.tracking.register_model)  # the best config's seeds as one pyfunc model
    states = optuna_states(searcher)
    if states:
        tracker.tag_parent({f"ipt.optuna.{state.lower()}": str(n) for state, n in states.items()})
    tracker.finish()
    journaled = tracker.flush()  # one last replay attempt; what stays waits for `report --sync`
    return SweepOutcome(summary, artifacts, states, journaled)


def print_outcome(plan: SweepPlan, outcome: SweepOutcome, wall: float, trial_time: float, out) -> None:
    uri, sweep_dir = plan.uri, plan.sweep_dir
    out("")
    out(render_console(outcome.summary))
    out("")
    out(f"sweep {plan.name}: {len(outcome.summary.configs)} configs x {len(plan.seeds)} seeds in {wall:.0f}s "
        f"(sum of trial times {trial_time:.0f}s)")
    out(f"results: {outcome.artifacts.get('md', sweep_dir)}")
    out(f"MLflow UI: mlflow ui --backend-store-uri {uri}" if not uri.startswith("http") else f"MLflow UI: {uri}")
    if outcome.journaled:
        out(f"warning: MLflow at {uri} was unreachable: {outcome.journaled} tracking writes wait in "
            f"{sweep_dir / JOURNAL_FILE}; once it is back run: ipt-ray report --sync {plan.name}")


def code_version() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5).stdout.strip()
        if sha:
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"ipt-ray {version('ipt-ray')}"


def storage_root(cfg: ExperimentConfig) -> Path:
    return (Path(cfg.train.output_dir).expanduser() / "sweeps").resolve()


def resolve_sweep(cfg: ExperimentConfig, config_path: Path, resume: bool | str) -> tuple[str, str, bool]:
    """(sweep name, sweep id, resuming?). A new sweep gets a timestamped name; ``--resume`` takes the latest."""
    root = storage_root(cfg)
    stem = cfg.sweep.name or re.sub(r"[^A-Za-z0-9_.-]", "-", config_path.stem)
    if resume:
        if isinstance(resume, str):
            candidates = [root / resume]
        else:
            candidates = sorted((p for p in root.glob(f"{stem}-*") if (p / SWEEP_FILE).is_file()),
                                key=lambda p: p.stat().st_mtime)
        if not candidates or not (candidates[-1] / SWEEP_FILE).is_file():
            raise ValueError(f"nothing to resume: no sweep {resume if isinstance(resume, str) else stem + '-*'} under {root}")
        meta = json.loads((candidates[-1] / SWEEP_FILE).read_text())
        return meta["name"], meta["sweep_id"], True
    name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return name, name, False


def prune_checkpoints(grid_result: Any, keep_latest: bool = True) -> None:
    """Delete every trial checkpoint but the latest, once Tune's final experiment snapshot is written
    (``keep_latest=False``: a trial that ended without an error keeps none either).

    Only then is it safe: a resume reads the snapshot, and the snapshot names each trial's latest
    checkpoint (and never runs a completed trial again).
    """
    for result in grid_result:
        if result.checkpoint is None or not result.path:
            continue
        keep = None if not keep_latest and result.error is None else Path(result.checkpoint.path).resolve()
        for folder in Path(result.path).glob("checkpoint_*"):
            if folder.is_dir() and folder.resolve() != keep:
                shutil.rmtree(folder, ignore_errors=True)
