"""The few-shot protocol of Table 3 (Gao et al. 2021) as one sweep: ``sweep.few_shot`` in the YAML.

Two Tune runs under one MLflow parent run (``ipt-ray sweep`` calls :func:`run_fewshot_sweep`):

1. ``select`` (``<sweep_dir>/select``): every compare group x hyper-parameter point x data seed x fold, each
   trial training its data seed on 3/4 of the 2K per class and scoring dev on the other 1/4 (no test
   split). Per (group, data seed) the point with the best mean over folds of the dev value at each trial's
   dev-selected epoch is chosen (:func:`~ipt_ray.sweep.selection.choose_hyper`) and written to
   ``<sweep_dir>/fewshot_selection.json``: a resumed sweep with that file does not run this phase again.
2. ``final`` (``<sweep_dir>/final``): each (group, data seed) with its chosen values trains on the first K,
   scores dev (the second K) and test (the original validation split) every epoch; the run is read at its
   dev-selected epoch (logged to its child run as ``selected/dev_<m>``, ``selected/test_<m>``,
   ``selected/epoch``).

The aggregate run gets the final phase as a usual summary (config = compare group, seed = data seed: test
mean ± std over data seeds) and the chosen hyper-parameters (``fewshot_selection.json`` / ``.csv``).
Child runs are tagged ``ipt.phase``, ``ipt.data_seed`` (and ``ipt.cv_fold`` in select).

Why explicit points (``BasicVariantGenerator(points_to_evaluate=...)``) instead of ``tune.grid_search``:
the final phase is not a cross product (each (group, data seed) has its own chosen values), and the same
mechanism for both phases keeps the trial order fixed and resumable.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from ipt_ray.config import ExperimentConfig
from ipt_ray.results import aggregate, param_str, write_artifacts, write_csv
from ipt_ray.sweep.driver import (SweepOutcome, SweepPlan, plan_sweep, print_outcome, prune_checkpoints,
                                  restore_tuner, retire_orphan_runs, start_tracker, write_sweep_file)
from ipt_ray.sweep.resources import (connect_ray, disconnect_ray, max_concurrent, reuse_actors, shares_idle_cpus,
                                     trial_resources)
from ipt_ray.sweep.selection import (CV_FOLD, DATA_SEED, Choice, TrialCurve, choices_csv_rows, choices_from_json,
                                     choices_to_json, choose_hyper, crossed, few_shot_keys, final_points, final_results,
                                     final_runs, phase_config_id, select_points, trial_curves)
from ipt_ray.sweep.trial import ipt_trial
from ipt_ray.sweep.trial_state import (EpochCurves, PruneEndedTrialCheckpoints, TrimEndedTrials, lean_trial_records,
                                      read_curves)
from ipt_ray.system import replace_whole
from ipt_ray.tracking import CHOSEN_TAG, SweepTracker
from ipt_ray.tracking.callback import MlflowTrackingCallback

SELECTION_FILE = "fewshot_selection.json"
CURVES_FILE = "curves.jsonl"  # per phase: every trial's per-epoch dev and test values (EpochCurves)


def run_fewshot_sweep(cfg: ExperimentConfig, config_path: Path, resume: bool | str = False,
                      config_text: str | None = None, out=print, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Run (or resume) both phases; what :func:`ipt_ray.sweep.run_sweep` returns, plus ``choices``."""
    plan = plan_sweep(cfg, config_path, resume)
    tracker = start_tracker(plan, config_text)
    if not plan.resuming:
        write_sweep_file(plan)
    compare, hyper = few_shot_keys(cfg)
    handle = connect_ray(cfg)
    share = shares_idle_cpus(cfg, handle)
    started = time.perf_counter()
    grids: list[Any] = []
    tracker.start_background()  # trial writes leave Tune's loop (ipt_ray.tracking.writer)
    try:
        choices = load_choices(plan.sweep_dir)
        if choices is None:
            if hyper:
                grid = run_phase(plan, "select", select_points(cfg), tracker, out, callbacks, share)
                grids.append(grid)
                order = crossed(cfg.sweep.search_space, hyper)
                choices = choose_hyper(phase_curves(plan, "select", grid), compare, hyper, cfg.sweep.mode, order)
            else:  # nothing to choose: no cross validation to run
                choices = [Choice(g, s, {}, float("nan"), 0) for g in crossed(cfg.sweep.search_space, compare)
                           for s in cfg.sweep.few_shot.data_seeds]
            save_choices(plan.sweep_dir, choices)
        out(f"few-shot select: {len(choices)} (group, data seed) choices in {plan.sweep_dir / SELECTION_FILE}")
        final = run_phase(plan, "final", final_points(choices), tracker, out, callbacks, share)
        grids.append(final)
        tracker.stop_background()
        wall = time.perf_counter() - started
        outcome = finish_fewshot(plan, final, choices, compare, tracker)
    finally:
        tracker.stop_background()
        disconnect_ray(handle)
    trial_time = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for g in grids for r in g)
    print_outcome(plan, outcome, wall, trial_time, out)
    return {"name": plan.name, "sweep_id": plan.sweep_id, "summary": outcome.summary, "wall_time_s": wall,
            "trial_time_s": trial_time, "tracking_uri": plan.uri, "sweep_dir": str(plan.sweep_dir),
            "optuna_states": {}, "journaled": outcome.journaled, "choices": choices}


def load_choices(sweep_dir: Path) -> list[Choice] | None:
    path = sweep_dir / SELECTION_FILE
    return choices_from_json(json.loads(path.read_text())) if path.is_file() else None


def save_choices(sweep_dir: Path, choices: Sequence[Choice]) -> Path:
    """The selection, written whole (:func:`replace_whole`): a resume never reads half of it."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / SELECTION_FILE
    replace_whole(path, json.dumps(choices_to_json(choices), indent=2, sort_keys=True, default=str).encode())
    return path


def phase_tags(phase: str):
    """The tags of a phase's child runs: the phase, the data seed and (select) the fold."""
    def tags_of(config: dict[str, Any]) -> dict[str, str]:
        tags = {"ipt.phase": phase, "ipt.data_seed": str(config.get(DATA_SEED))}
        if CV_FOLD in config:
            tags["ipt.cv_fold"] = str(config[CV_FOLD])
        return tags

    return tags_of


def phase_params(compare: Sequence[str]):
    """What a final run logs as MLflow params: its compare group only. Its data seed is its seed and its
    chosen values are tags (``ipt.chosen.<key>``), so the report sees one config per group, whatever the
    data seeds chose."""
    def params_of(config: dict[str, Any]) -> dict[str, Any]:
        return {k: config[k] for k in compare if k in config}

    return params_of


class FewShotTrackingCallback(MlflowTrackingCallback):
    """The tracking callback of one phase: per-trial seeds (the data seed), phase tags, for ``final`` only
    the compare group as params; ``discard_dir``: a completed trial's adapters there are deleted (select)."""

    def __init__(self, *args: Any, tags_of=None, params_of=None, discard_dir: Path | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tags_of, self.params_of, self.discard_dir = tags_of, params_of, discard_dir

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        super().on_trial_complete(iteration, trials, trial, **info)
        if self.discard_dir is not None:  # cross-validation adapters are never used (a fine-tuned one is a model)
            shutil.rmtree(self.discard_dir / trial.trial_id, ignore_errors=True)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        config = dict(trial.config)
        params = self.params_of(config) if self.params_of is not None else config
        self.tracker.log_result(trial.trial_id, self.config_id(config), params, result, self.seeds,
                                strategy=self.strategy_of(config), tags=self.tags_of(config))


def run_phase(plan: SweepPlan, phase: str, points: list[dict[str, Any]], tracker: SweepTracker, out,
              extra_callbacks: list[Any] | None, share_idle_cpus: bool) -> Any:
    """One phase's Tune run over explicit ``points`` (restored when the sweep resumes); its ``ResultGrid``."""
    from ray import tune  # heavy, optional: only when a sweep starts
    from ray.tune.search import BasicVariantGenerator

    cfg, phase_dir = plan.cfg, plan.sweep_dir / phase
    compare, _ = few_shot_keys(cfg)
    trainable = tune.with_resources(
        tune.with_parameters(ipt_trial, base=cfg.model_dump(mode="json"), storage=str(phase_dir),
                             share_idle_cpus=share_idle_cpus),
        trial_resources(cfg))
    callback = FewShotTrackingCallback(
        tracker, seeds=[], metric=cfg.sweep.metric, max_epochs=cfg.train.epochs,
        config_id=phase_config_id(phase, compare), default_strategy=cfg.method.strategy, resuming=plan.resuming,
        adapters_dir=phase_dir / "adapters" if phase == "final" else None,
        discard_dir=phase_dir / "adapters" if phase == "select" else None, tags_of=phase_tags(phase), params_of=phase_params(compare) if phase == "final" else None)
    # A select trial's weights serve nothing once it has ended (its dev curve chooses): no checkpoint kept.
    callbacks = [callback, *(extra_callbacks or []), EpochCurves(phase_dir / CURVES_FILE, cfg.sweep.metric),
                 PruneEndedTrialCheckpoints(keep_latest=phase != "select"),
                 TrimEndedTrials([plan.target])]  # last: see driver.tune_callbacks
    tuner = restore_tuner(phase_dir, trainable, callbacks, out, f"few-shot phase {phase} of {plan.name}") \
        if plan.resuming else None
    if tuner is None:
        out(f"few-shot phase {phase}: {len(points)} trials")
        space = {k: tune.choice(sorted({p[k] for p in points}, key=param_str)) for k in points[0]}
        tuner = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(
                metric=plan.target, mode=cfg.sweep.mode, num_samples=len(points), reuse_actors=reuse_actors(cfg),
                # a SearchGenerator takes no max_concurrent_trials from Tune: the generator limits itself
                search_alg=BasicVariantGenerator(points_to_evaluate=[dict(p) for p in points],
                                                 max_concurrent=max_concurrent(cfg))),
            run_config=tune.RunConfig(
                name=phase, storage_path=str(plan.sweep_dir), callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=cfg.cluster.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # why: driver.new_tuner
                verbose=1))
    with lean_trial_records():  # the curves are in CURVES_FILE, not in Tune's files
        grid = tuner.fit()
    prune_checkpoints(grid, keep_latest=phase != "select")
    if plan.resuming:  # the phase's trial writes land first (adopted runs are not orphans)
        tracker.stop_background()
        retire_orphan_runs(plan, grid, tracker, out, tags={"ipt.phase": phase})
        tracker.start_background()
    return grid


def phase_curves(plan: SweepPlan, phase: str, grid: Any) -> list[TrialCurve]:
    """The phase's trial curves of the sweep metric, read from the phase's CURVES_FILE."""
    history = read_curves(plan.sweep_dir / phase / CURVES_FILE)
    return trial_curves(grid, plan.cfg.sweep.metric, plan.cfg.train.epochs, history)


def finish_fewshot(plan: SweepPlan, final_grid: Any, choices: Sequence[Choice], compare: Sequence[str],
                   tracker: SweepTracker) -> SweepOutcome:
    """Each final run's values at its dev-selected epoch into its child run; the aggregate (test mean ± std
    over data seeds per group), the selection files and the parent's tags; the parent closed."""
    cfg = plan.cfg
    curves = phase_curves(plan, "final", final_grid)
    log_selected_values(tracker, curves, choices, compare, cfg.sweep.metric, cfg.sweep.mode)
    chosen = {(c.group_id, c.data_seed): c.hyper for c in choices}
    summary = aggregate(final_results(curves, compare, cfg.sweep.mode, chosen), cfg.sweep.metric, cfg.sweep.mode)
    report_dir = plan.sweep_dir / "report"
    artifacts = {**write_artifacts(summary, report_dir), **write_selection(report_dir, choices)}
    tracker.log_aggregate(summary, artifacts)
    tracker.log_best_model(summary, cfg.tracking.register_model)
    tracker.tag_parent({"ipt.protocol": "few-shot", "ipt.data_seeds": ",".join(map(str, cfg.sweep.few_shot.data_seeds)),
                        "ipt.compare": ",".join(compare)})
    tracker.finish()
    return SweepOutcome(summary, artifacts, {}, tracker.flush())


def log_selected_values(tracker: SweepTracker, curves: Sequence[TrialCurve], choices: Sequence[Choice],
                        compare: Sequence[str], metric: str, mode: str) -> None:
    """``selected/dev_<m>``, ``selected/test_<m>``, ``selected/epoch`` and ``ipt.chosen.<key>`` tags per final run."""
    chosen = {(c.group_id, c.data_seed): c.hyper for c in choices}
    for run in final_runs(curves, compare, mode):  # type: ignore[arg-type]
        if run.epoch is None:
            continue
        values = {f"dev_{metric}": run.dev, "epoch": float(run.epoch)}
        if run.test == run.test:  # not NaN: the protocol has a test split
            values[f"test_{metric}"] = run.test
        tags = {f"{CHOSEN_TAG}{k}": param_str(v)[:500] for k, v in chosen.get((run.group_id, run.data_seed), {}).items()}
        tracker.log_selected(run.trial_id, run.data_seed, values, tags)


def write_selection(out_dir: Path, choices: Sequence[Choice]) -> dict[str, Path]:
    """``fewshot_selection.json`` (every candidate with its fold values) and ``fewshot_selection.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = save_choices(out_dir, choices)
    rows = choices_csv_rows(choices)
    header = list(dict.fromkeys(k for r in rows for k in r))
    csv = write_csv(out_dir / "fewshot_selection.csv", header, [[r.get(k, "") for k in header] for r in rows])
    return {"selection_json": js, "selection_csv": csv}
