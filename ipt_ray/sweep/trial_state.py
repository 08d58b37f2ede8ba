"""What the driver keeps of a trial once it has ended.

Ray Tune holds every trial of a sweep in the driver's memory, and with it, for every numeric key of the
trial's results, a running max / min / avg / last / last-5-avg / last-10-avg and two deques
(``Trial.run_metadata.metric_analysis`` and ``metric_n_steps``), plus a JSON copy of them for the
experiment snapshot. This project's results carry ~50 numeric keys (per-seed metrics and learning rates,
their means and stds): measured with tracemalloc, ~148 KiB per trial, ~72 MB of driver memory at 500
trials (``bench/results/scale.md``). Only Tune's best-trial lookup (``ExperimentAnalysis``) reads that
analysis, and only for the sweep's metric, so an ended trial keeps the sweep metric's and nothing else.
Results, ``progress.csv``, ``result.json``, checkpoints and ``Trial.last_result`` are untouched.
"""

from __future__ import annotations

from typing import Any, Iterable

from ray.tune import Callback


class TrimEndedTrials(Callback):
    """On a trial's end (completed, stopped early, or failed), drop Tune's running statistics of every
    result key but ``keep``."""

    def __init__(self, keep: Iterable[str]) -> None:
        self.keep = frozenset(keep)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.trim(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.trim(trial)

    def trim(self, trial: Any) -> None:
        metadata = getattr(trial, "run_metadata", None)  # Ray 2.x; anything else: left as it is
        analysis = getattr(metadata, "metric_analysis", None)
        steps = getattr(metadata, "metric_n_steps", None)
        if not isinstance(analysis, dict) or not isinstance(steps, dict):
            return
        # Assigning (not mutating) invalidates the metadata's cached JSON, so the next snapshot is small too.
        metadata.metric_analysis = {k: v for k, v in analysis.items() if k in self.keep}
        metadata.metric_n_steps = {k: v for k, v in steps.items() if k in self.keep}
