"""Wall time of a 5-seed trial vs a 1-seed trial (same config, in-process, this CPU).

A trial's seeds share one loaded backbone and one tokenised dataset, so the only per-seed cost should
be the seed's own training. Target: 5-seed / 1-seed <= 5.0. Also: sequential vs batched execution.
Usage: python -m bench.seeds [--epochs 1] [--repeats 5] [--out bench/results/seeds.md]
"""

from __future__ import annotations

import argparse
import statistics
import time

from ipt_ray.config import load_config
from ipt_ray.train import prepared_inputs, run_local
from bench._results import write_results


def timed(cfg, seeds) -> float:
    t0 = time.perf_counter()
    run_local(cfg, run_dir="/tmp/ipt-bench-seeds", seeds=seeds)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="experiments/quickstart.yaml")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench/results/seeds.md")
    args = parser.parse_args()
    base = load_config(args.config, [f"train.epochs={args.epochs}", "train.progress=false"])
    prepared_inputs(base)  # a trial loads these once; time the training, as a warm (reused) trial actor does
    cases = {
        "1 seed": (base, [0]),
        "5 seeds, sequential": (base.with_overrides({"train.execution": "sequential"}), [0, 1, 2, 3, 4]),
        "5 seeds, batched": (base.with_overrides({"train.execution": "batched"}), [0, 1, 2, 3, 4]),
    }
    timed(base, [0])  # warm-up: thread pools, allocator, autograd graphs
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every case alike
        for name, (cfg, seeds) in cases.items():
            times[name].append(timed(cfg, seeds))
    med = {name: statistics.median(v) for name, v in times.items()}
    one = med["1 seed"]
    lines = [f"Config: {args.config}, {args.epochs} epochs, median of {args.repeats} interleaved runs after a warm-up run.", "",
             "| case | median wall (s) | runs (s) | ratio to 1 seed |", "|---|---|---|---|"]
    for name, value in med.items():
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        lines.append(f"| {name} | {value:.1f} | {runs} | {value / one:.2f} |")
    write_results(args.out, lines, times)


if __name__ == "__main__":
    main()
