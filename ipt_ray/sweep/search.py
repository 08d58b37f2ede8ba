"""Who proposes and who stops configs: the Optuna searcher (told each config's seed mean) and the scheduler."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ipt_ray.config import ExperimentConfig

STUDY_NAME = "sweep"  # the study's name in a split sweep's journal file


def make_searcher(cfg: ExperimentConfig, target: str, max_epochs: int, storage: Any = None, run: int = 0):
    """Optuna's TPE for ``searcher: optuna`` (None: Tune's random / grid search).

    ``storage``: the Optuna storage (:func:`journal`) every Tune run of a split sweep shares
    (:mod:`ipt_ray.sweep.runs`), so the ``run`` th run's TPE proposes from every earlier trial; its sampler's
    seed is offset by ``run`` (the same seed in each run would draw the same first configs again).
    """
    if cfg.sweep.searcher != "optuna":
        return None
    import optuna  # heavy, optional: only for an Optuna sweep
    from ray.tune.search.optuna import OptunaSearch  # heavy, optional: only when a sweep starts

    class SeedMeanOptunaSearch(OptunaSearch):
        """Tells Optuna each config's seed mean; a config stopped early is marked PRUNED, not COMPLETE."""

        def told_before(self, trial_id: str) -> bool:
            """Did a killed driver already tell a shared journal (a split sweep's) how this trial ended? Tune
            runs the trial again from its snapshot, which predates that; Optuna keeps the first outcome and
            refuses any update (``UpdateFinishedTrialError``), so the rerun's are not sent."""
            ot_trial = self._ot_trials.get(trial_id)
            if self._storage is None or ot_trial is None or trial_id in self._completed_trials:
                return False  # an in-memory study is restored with the snapshot: never ahead of it
            if not self._storage.get_trial(ot_trial._trial_id).state.is_finished():  # noqa: SLF001
                return False
            self._completed_trials.add(trial_id)
            return True

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if not self.told_before(trial_id):
                super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if self.told_before(trial_id):
                return
            stopped_early = bool(result) and not error and int(result.get("epoch", max_epochs)) < max_epochs
            if not stopped_early or trial_id not in self._ot_trials or trial_id in self._completed_trials:
                return super().on_trial_complete(trial_id, result, error)
            ot_trial = self._ot_trials[trial_id]
            value = result.get(self.metric)
            if value is not None:
                ot_trial.report(float(value), step=int(result["epoch"]))
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)

    sampler = optuna.samplers.TPESampler(seed=cfg.sweep.searcher_seed + run)
    if storage is None:
        return SeedMeanOptunaSearch(sampler=sampler, metric=target, mode=cfg.sweep.mode)  # the sampler holds the seed
    return SeedMeanOptunaSearch(sampler=sampler, metric=target, mode=cfg.sweep.mode, storage=storage,
                                study_name=STUDY_NAME)


def journal(path: Path) -> Any:
    """Optuna's storage in a journal file (appends only: it survives a killed driver). One instance holds a copy
    of every trial (~5 KiB each): the runs of a sweep share one."""
    from optuna.storages import JournalStorage  # heavy, optional: only for an Optuna sweep
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def open_study(storage: Any) -> Any:
    """The study of a split sweep in its storage (:func:`journal`); None when no run has made it yet."""
    import optuna  # heavy, optional: only for an Optuna sweep

    if not storage.get_all_studies():
        return None
    return optuna.load_study(study_name=STUDY_NAME, storage=storage)


def fail_abandoned_trials(study: Any) -> int:
    """Mark FAIL the trials of ``study`` still RUNNING once every run has ended: those a killed driver had
    started and no restored run knew again. Returns how many."""
    if study is None:
        return 0
    import optuna  # heavy, optional: only for an Optuna sweep

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(running)


def make_scheduler(cfg: ExperimentConfig, max_epochs: int, target: str | None = None):
    """ASHA, the median stopping rule or :func:`same_epoch_median` over epochs (None: every trial runs all
    its epochs). ``target``: the scheduler holds the metric and mode itself, so that one instance can serve
    several Tune runs (a ``TuneConfig`` with them refuses a scheduler that already has them)."""
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule  # heavy, optional: only when a sweep starts

    sweep = cfg.sweep
    if sweep.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=sweep.grace_period,
                                  reduction_factor=sweep.reduction_factor)
    elif sweep.scheduler == "median":
        scheduler = MedianStoppingRule(time_attr="epoch", grace_period=sweep.grace_period,
                                       min_samples_required=sweep.min_samples_required)
    elif sweep.scheduler == "same_epoch_median":
        scheduler = same_epoch_median(sweep.grace_period, sweep.min_samples_required)
    else:
        return None
    if target is not None:
        scheduler.set_search_properties(target, sweep.mode)
    return scheduler


def same_epoch_median(grace_period: int, min_samples_required: int):
    """A Tune scheduler that stops a trial whose best seed mean so far is below the median of the other
    trials' best seed means up to the same epoch, checked at each of its reports.

    Why not ASHA or Ray's median rule: both judge a trial against the trials that are at least as far
    as it is. In a small sweep a poor config that trains faster (a shorter prompt) stays ahead of the
    better ones, is judged against nobody and runs to the end: in the quickstart a Random IPT config at
    k=8 ran all 4 epochs beside an Encoder IPT config 12 points better. Here each other trial counts at
    the epoch both have reached, so the poor one is stopped at its next report once a better one has
    caught up with an epoch it already ran. Trials that ended (stopped or not) keep counting.
    """
    import numpy as np
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler  # heavy, optional: only when a sweep starts

    class SameEpochMedianStopping(FIFOScheduler):
        def __init__(self) -> None:
            super().__init__()
            self.sign = 1.0  # -1 for mode "min": larger is always better below
            self.curves: dict[str, dict[int, float]] = {}  # trial id -> epoch -> signed seed mean

        def set_search_properties(self, metric, mode, **spec) -> bool:
            if mode:  # a later Tune run passes None to a scheduler that holds its mode (ipt_ray.sweep.runs)
                self.sign = -1.0 if mode == "min" else 1.0
            return super().set_search_properties(metric, mode, **spec)

        def best_until(self, trial_id: str, epoch: int) -> float | None:
            values = [v for e, v in self.curves[trial_id].items() if grace_period <= e <= epoch]
            return max(values) if values else None

        def on_trial_result(self, tune_controller, trial, result) -> str:
            if self._metric not in result or "epoch" not in result:
                return TrialScheduler.CONTINUE
            epoch, value = int(result["epoch"]), self.sign * float(result[self._metric])
            curve = self.curves.setdefault(trial.trial_id, {})
            curve[epoch] = value
            if epoch < grace_period or not np.isfinite(value):
                return TrialScheduler.CONTINUE
            others = [self.best_until(other, min(epoch, max(c))) for other, c in self.curves.items()
                      if other != trial.trial_id and c]
            others = [v for v in others if v is not None and np.isfinite(v)]
            if len(others) < min_samples_required:
                return TrialScheduler.CONTINUE
            mine = self.best_until(trial.trial_id, epoch)
            return TrialScheduler.STOP if mine < float(np.median(others)) else TrialScheduler.CONTINUE

        def debug_string(self) -> str:
            return f"SameEpochMedianStopping: {len(self.curves)} trials seen"

    return SameEpochMedianStopping()


def optuna_states(searcher: Any) -> dict[str, int]:
    """How Optuna saw the trials (COMPLETE / PRUNED / FAIL), for the parent run and the tests; ``searcher``
    may be an Optuna study itself (a split sweep's)."""
    study = getattr(searcher, "_ot_study", searcher)
    if study is None:
        return {}
    return dict(Counter(t.state.name for t in study.trials))
