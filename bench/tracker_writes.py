"""The sweep tracker's trial writes alone, against a real `mlflow server`: one after the other vs side by side.

Ten trials' writes (5 seeds x 2 epochs of ``log_result`` and each trial's ``end_trial``, no adapters; about
310 HTTP requests) go to a fresh ``mlflow server --workers N`` on 127.0.0.1, once with the requests of a
write one after the other and once side by side (:class:`ipt_ray.tracking.fanout.RequestFanout`), repeated.
The median of the repetitions is printed (the first includes the server's warm-up). Run it on a quiet machine and
again beside a training run: the difference shows when requests wait for a core (see bench/results/scale.md).

Usage: python -m bench.tracker_writes [--server-workers 4] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from ipt_ray.tracking import SweepTracker
from ipt_ray.tracking.fanout import PARALLEL_REQUESTS, RequestFanout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import mlflow_server  # noqa: E402

SEEDS = [0, 1, 2, 3, 4]
TRIALS = 10


def epoch_result(epoch: int) -> dict[str, float]:
    result: dict[str, float] = {"epoch": epoch, "training_iteration": epoch, "epoch_time_s": 1.0}
    for seed in SEEDS:
        for name in ("dev_accuracy", "dev_loss", "train_loss", "lr_head", "lr_prompt"):
            result[f"{name}/seed_{seed}"] = 0.5 + 0.01 * seed
    return result


def write_trials(uri: str, name: str, parallel: int) -> float:
    """Seconds for :data:`TRIALS` trials' writes with ``parallel`` requests at once."""
    tracker = SweepTracker(uri, name, name, name)
    tracker.start_parent("bench: tracker_writes\n", {}, "bench", {})
    tracker._fanout = RequestFanout(uri, parallel)
    start = time.perf_counter()
    for trial in range(TRIALS):
        for epoch in (1, 2):
            tracker.log_result(f"t{trial}", f"c{trial}", {"trial": trial}, epoch_result(epoch), SEEDS, "random_ipt")
        tracker.end_trial(f"t{trial}", "completed")
    seconds = time.perf_counter() - start
    tracker._fanout.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-workers", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    seconds: dict[int, list[float]] = {1: [], PARALLEL_REQUESTS: []}
    with mlflow_server(workers=args.server_workers) as server:
        for rep in range(args.repetitions):
            for parallel in seconds:
                seconds[parallel].append(write_trials(server.uri, f"writes-{rep}-{parallel}", parallel))
    for parallel, times in seconds.items():
        print(f"server workers {args.server_workers}, {parallel} request(s) at once: median {statistics.median(times):.2f} s "
              f"for {TRIALS} trials' writes (all: {', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
