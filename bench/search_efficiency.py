"""Sweep efficiency: Optuna (TPE) with ASHA early stopping vs a full grid over the same space.

CPU-scale CB on MiniLM: strategy x prompt length x learning rate (18 configs), 2 seeds, 2 epochs by default.
The figure is the number of trial-epochs spent (every epoch any trial trained, in the order results
arrived) until a completed config's seed mean is within 1 point of the grid's best seed mean.
Usage: python -m bench.search_efficiency [--samples 12] [--out bench/results/search_efficiency.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ray import tune

from ipt_ray.config import validate_config
from ipt_ray.sweep import run_sweep
from bench._results import write_results

SPACE = {
    "method.strategy": {"type": "choice", "values": ["prompt_tuning", "random_ipt", "encoder_ipt"]},
    "method.prompt_length": {"type": "choice", "values": [4, 16]},
    "train.lr": {"type": "choice", "values": [0.003, 0.01, 0.03]},
}
EPOCHS = 2
SEEDS = [0, 1]


class Timeline(tune.Callback):
    """Every result in arrival order: (trial, epoch, seed mean)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, float]] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.events.append((trial.trial_id, int(result["epoch"]), float(result["dev_accuracy_mean"])))


def sweep(kind: str, samples: int, workdir: Path) -> tuple[Timeline, float]:
    extra = {"searcher": "grid"} if kind == "grid" else {
        "searcher": "optuna", "num_samples": samples, "scheduler": "asha", "grace_period": 1}
    cfg = validate_config({
        "task": {"name": "cb", "max_length": 64},
        "backbone": {"name": "minilm-l6"},
        "method": {"strategy": "random_ipt"},
        "train": {"epochs": EPOCHS, "batch_size": 16, "seeds": SEEDS, "output_dir": str(workdir / kind)},
        "sweep": {"search_space": SPACE, "max_concurrent_trials": 2, "searcher_seed": 0, **extra},
        "tracking": {"uri": f"sqlite:///{workdir / (kind + '.db')}", "experiment": kind},
    })
    path = workdir / f"{kind}.yaml"
    path.write_text("{}\n")
    timeline = Timeline()
    t0 = time.perf_counter()
    run_sweep(cfg, path, callbacks=[timeline], out=lambda *_: None)
    return timeline, time.perf_counter() - t0


def epochs_until(timeline: Timeline, threshold: float) -> int | None:
    for spent, (_, epoch, mean) in enumerate(timeline.events, start=1):
        if epoch == EPOCHS and mean >= threshold:
            return spent
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", default="bench/results/search_efficiency.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        grid, grid_wall = sweep("grid", args.samples, Path(tmp))
        optuna, optuna_wall = sweep("optuna", args.samples, Path(tmp))
    finals = [mean for _, epoch, mean in grid.events if epoch == EPOCHS]
    best = max(finals)
    threshold = best - 0.01
    rows = {
        "grid": (len(grid.events), epochs_until(grid, threshold), grid_wall, len(finals)),
        f"Optuna TPE + ASHA ({args.samples} samples)": (len(optuna.events), epochs_until(optuna, threshold), optuna_wall,
                                                        sum(1 for _, e, _ in optuna.events if e == EPOCHS)),
    }
    lines = [f"Grid best seed mean: {best:.4f} ({len(SEEDS)} seeds, {EPOCHS} epochs); target: a completed config "
             f">= {threshold:.4f}.", "",
             "| search | trial-epochs in total | trial-epochs until within 1 point of the grid's best | "
             "completed configs | wall (s) |", "|---|---|---|---|---|"]
    for name, (total, until, wall, completed) in rows.items():
        lines.append(f"| {name} | {total} | {until if until is not None else 'not reached'} | {completed} | {wall:.0f} |")
    write_results(args.out, lines, {"grid": grid.events, "optuna": optuna.events})


if __name__ == "__main__":
    main()
