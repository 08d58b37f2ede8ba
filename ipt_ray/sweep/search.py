"""Who proposes and who stops configs: the Optuna searcher (told each config's seed mean) and the scheduler."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ipt_ray.config import ExperimentConfig


def make_searcher(cfg: ExperimentConfig, target: str, max_epochs: int):
    """Optuna's TPE for ``searcher: optuna`` (None: Tune's random / grid search)."""
    if cfg.sweep.searcher != "optuna":
        return None
    import optuna  # heavy, optional: only for an Optuna sweep
    from ray.tune.search.optuna import OptunaSearch  # heavy, optional: only when a sweep starts

    class SeedMeanOptunaSearch(OptunaSearch):
        """Tells Optuna each config's seed mean; a config stopped early is marked PRUNED, not COMPLETE."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            stopped_early = bool(result) and not error and int(result.get("epoch", max_epochs)) < max_epochs
            if not stopped_early or trial_id not in self._ot_trials or trial_id in self._completed_trials:
                return super().on_trial_complete(trial_id, result, error)
            ot_trial = self._ot_trials[trial_id]
            value = result.get(self.metric)
            if value is not None:
                ot_trial.report(float(value), step=int(result["epoch"]))
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)

    sampler = optuna.samplers.TPESampler(seed=cfg.sweep.searcher_seed)
    return SeedMeanOptunaSearch(sampler=sampler, metric=target, mode=cfg.sweep.mode)  # the sampler holds the seed


def make_scheduler(cfg: ExperimentConfig, max_epochs: int):
    """ASHA or the median stopping rule over epochs (None: every trial runs all its epochs)."""
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule  # heavy, optional: only when a sweep starts

    if cfg.sweep.scheduler == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=cfg.sweep.grace_period)
    if cfg.sweep.scheduler == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=cfg.sweep.grace_period, min_samples_required=2)
    return None


def optuna_states(searcher: Any) -> dict[str, int]:
    """How Optuna saw the trials (COMPLETE / PRUNED / FAIL), for the parent run and the tests."""
    study = getattr(searcher, "_ot_study", None)
    if study is None:
        return {}
    return dict(Counter(t.state.name for t in study.trials))
