"""Orchestration overhead of a sweep: wall time / the trials' own training time, and trial launch latency.

10 trials of about 30 s each (MiniLM, a CB subset, 1 seed), one trial at a time so the ratio shows
pure orchestration cost, for `cluster.num_workers: 0` (the loop inside the Tune trial, actors reused)
and `num_workers: 1` (a TorchTrainer per trial). A mode `1:2.0` runs num_workers 1 with the Train
controller polling its workers every 2.0 s (Ray's default) instead of `cluster.health_check_interval_s`.
"Own training time" is the sum of the trials' epoch times (training + dev evaluation). Launch latency: from Tune starting a trial to the trial's first
training step (the first result's arrival at the driver minus that epoch's own time).

Target: ratio <= 1.15 for num_workers 0.
Usage: python -m bench.overhead [--trials 10] [--modes 0 1 1:2.0] [--out bench/results/overhead.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from ray import tune

from ipt_ray.config import validate_config
from ipt_ray.sweep import run_sweep
from bench._results import write_results


class LaunchTimes(tune.Callback):
    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.first: dict[str, tuple[float, float]] = {}
        self.epoch_times: dict[str, list[float]] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, time.time())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # the driver's clock on arrival (Tune's result timestamp has whole seconds only)
        self.first.setdefault(trial.trial_id, (time.time(), float(result["epoch_time_s"])))
        self.epoch_times.setdefault(trial.trial_id, []).append(float(result["epoch_time_s"]))


def run(label: str, trials: int, workdir: Path) -> dict:
    workers, _, interval = label.partition(":")
    mode = int(workers)
    cluster = {"num_workers": mode, "cpus_per_worker": 2, "cpus_per_trial": 2}
    if interval:
        cluster["health_check_interval_s"] = float(interval)
    tag = label.replace(":", "-").replace(".", "")
    cfg = validate_config({
        "task": {"name": "cb", "max_train_samples": 192, "max_eval_samples": 56, "max_length": 96},
        "backbone": {"name": "minilm-l6"},
        "method": {"strategy": "random_ipt", "prompt_length": 16},
        "train": {"epochs": 5, "batch_size": 16, "seeds": [0], "output_dir": str(workdir / f"runs{tag}")},
        "sweep": {"num_samples": trials, "max_concurrent_trials": 1, "searcher": "optuna", "search_space": {
            "train.lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2}}},
        "tracking": {"uri": f"sqlite:///{workdir / f'mlflow{tag}.db'}", "experiment": f"overhead-{tag}"},
        "cluster": cluster,
    })
    config_path = workdir / f"overhead{tag}.yaml"
    config_path.write_text("{}\n")
    launch = LaunchTimes()
    t0 = time.perf_counter()
    out = run_sweep(cfg, config_path, callbacks=[launch], out=lambda *_: None)
    wall = time.perf_counter() - t0
    own = sum(sum(v) for v in launch.epoch_times.values())
    latencies = [launch.first[t][0] - launch.first[t][1] - launch.started[t] for t in launch.first]
    return {"mode": mode, "label": label, "health_check_interval_s": cfg.cluster.health_check_interval_s,
            "trials": len(launch.first), "wall_s": wall, "sweep_wall_s": out["wall_time_s"],
            "own_training_s": own, "ratio": wall / own,
            "launch_latency_median_s": statistics.median(latencies), "launch_latency_first_s": latencies[0],
            "launch_latencies_s": latencies, "mean_trial_s": own / max(1, len(launch.first)),
            "fixed_cost_per_trial_s": (wall - own) / max(1, len(launch.first))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--modes", nargs="+", default=["0", "1", "1:2.0"],
                        help="num_workers, optionally ':' and the Train poll interval in seconds")
    parser.add_argument("--out", default="bench/results/overhead.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            rows.append(run(mode, args.trials, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    lines = ["| num_workers | Train poll (s) | trials | mean trial training (s) | sweep wall (s) | sum of training (s) | "
             "wall / training | fixed cost per trial (s) | launch latency median (s) | first trial (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        poll = f"{r['health_check_interval_s']:g}" if r["mode"] else "-"
        lines.append(f"| {r['mode']} | {poll} | {r['trials']} | {r['mean_trial_s']:.1f} | {r['wall_s']:.0f} | "
                     f"{r['own_training_s']:.0f} | {r['ratio']:.2f} | {r['fixed_cost_per_trial_s']:.1f} | "
                     f"{r['launch_latency_median_s']:.1f} | {r['launch_latency_first_s']:.1f} |")
    write_results(args.out, lines, rows)


if __name__ == "__main__":
    main()
