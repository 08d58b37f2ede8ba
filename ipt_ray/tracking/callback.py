"""The Tune callback that forwards trial events to a :class:`~ipt_ray.tracking.SweepTracker`.

The only tracking module that imports Ray Tune (``ipt_ray.tracking`` itself does not, so the pretraining
can track without pulling in Ray): import it as ``ipt_ray.tracking.callback``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from ray.tune import Callback

from ipt_ray.results import config_id, result_epoch
from ipt_ray.tracking.tracker import SweepTracker


class MlflowTrackingCallback(Callback):
    """Forward Tune's trial events to a :class:`SweepTracker` on the driver.

    ``max_epochs`` tells a trial that ran to the end (``completed``) from one a scheduler stopped
    (``early_stopped``). ``metric`` is the sweep's metric, kept for callers that read it back. With
    ``adapters_dir``, a completed trial's seed adapters (``<adapters_dir>/<trial_id>/seed_<s>``, where the
    trial saved them) are uploaded into its child runs. Empty ``seeds``: each trial's seeds are those its
    results name (a few-shot trial trains its data seed: ``ipt_ray.sweep.fewshot``).
    """

    def __init__(self, tracker: SweepTracker, seeds: Sequence[int], metric: str, max_epochs: int,
                 config_id: Callable[[dict[str, Any]], str] = config_id, default_strategy: str = "",
                 resuming: bool = False, adapters_dir: str | Path | None = None,
                 earlier_trial_ids: Sequence[str] = ()) -> None:
        self.tracker = tracker
        self.earlier_trial_ids = list(earlier_trial_ids)  # the trials of a split sweep's finished Tune runs
        self.adapters_dir = Path(adapters_dir) if adapters_dir is not None else None
        self.resuming = resuming
        self.seeds = list(seeds)
        self.metric = metric
        self.max_epochs = max_epochs
        self.config_id = config_id
        self.default_strategy = default_strategy

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.resuming:  # see SweepTracker.adopt_orphans
            known = [*self.earlier_trial_ids, *(t.trial_id for t in trials)]  # a finished run's: never adopted
            self.tracker.adopt_orphans(trial.trial_id, self.config_id(dict(trial.config)), known)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        config = dict(trial.config)
        self.tracker.log_result(trial.trial_id, self.config_id(config), config, result, self.seeds,
                                strategy=self.strategy_of(config))

    def strategy_of(self, config: dict[str, Any]) -> str:
        """The trial's strategy: a ``method.strategy`` dimension, or inside a whole-``method`` dimension."""
        if "method.strategy" in config:
            return str(config["method.strategy"])
        method = config.get("method")
        if isinstance(method, str) and method.startswith("{"):
            try:
                method = json.loads(method)
            except json.JSONDecodeError:
                method = None
        if isinstance(method, dict) and "strategy" in method:
            return str(method["strategy"])
        return self.default_strategy

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = getattr(trial, "last_result", None) or {}
        epoch = result_epoch(last)
        folders: dict[int, Path] = {}
        if self.adapters_dir is not None:
            seeds = self.seeds or [int(p.name[len("seed_"):]) for p in (self.adapters_dir / trial.trial_id).glob("seed_*")]
            folders = {s: self.adapters_dir / trial.trial_id / f"seed_{s}" for s in seeds}
        self.tracker.end_trial(trial.trial_id, "completed" if epoch >= self.max_epochs else "early_stopped",
                               adapters={s: f for s, f in folders.items() if f.is_dir()})

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.tracker.end_trial(trial.trial_id, "failed")
