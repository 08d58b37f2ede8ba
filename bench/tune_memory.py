"""The Tune driver's memory per ended trial, with and without :class:`~ipt_ray.sweep.trial_state.TrimEndedTrials`.

A real ``tune.Tuner`` on a fresh local Ray (``address="local"``: never a cluster already running here)
runs ``--trials`` function trials, 4 at a time, each reporting 2 epochs of a result shaped like this
project's (5 seeds x dev_accuracy, dev_loss, train_loss, lr_head, lr_prompt, their means and stds: 57
keys) and nothing else, so the trials themselves cost nothing. A callback reads the driver's resident
memory (``VmRSS``) each time a trial ends; the slope of RSS over the second half of the ended trials
(least squares, after the warm-up) is the memory each further trial costs; the same slope of the count of
gc-tracked Python objects tells how much of it is live Python state. RSS once ``Tuner.fit()`` has returned
shows the end of the run apart from the trials: ``fit()`` builds its ``ResultGrid`` from an
``ExperimentAnalysis`` that reads every trial's results into a pandas DataFrame. Each variant runs in its
own process, so neither inherits the other's heap.

``--variants`` adds probes of Tune's logger callbacks (``trim-no-loggers``, ``trim-csv``, ``trim-json``,
``trim-csv-json``, ``trim-no-tensorboard``) and ``lean`` (what ``ipt-ray sweep`` runs:
:func:`~ipt_ray.sweep.trial_state.lean_trial_records` around ``fit()``), and ``lean-minimal`` (the same with a
one-key result and no checkpoint: what Tune keeps per trial whatever a trial reports) (:data:`VARIANTS`:
``run_variant``'s ``trim``, ``loggers`` and, where given, ``minimal``); by default the two rows of the table
run. ``--runs K`` splits the trials into K Tuner runs one after the other in the same driver. ``--checkpoint`` makes each epoch's report carry a checkpoint (a 1 KiB file), as this
project's trials do, so the driver's records of checkpoints count too; ``--epochs`` sets how many.

Usage: python -m bench.tune_memory [--trials 400] [--epochs 2] [--checkpoint] [--variants plain trim ...]
       [--runs 1] [--out bench/results/tune_memory.md]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from bench._results import write_results

SEEDS = range(5)
PER_SEED = ("dev_accuracy", "dev_loss", "train_loss", "lr_head", "lr_prompt")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def trainable(config: dict[str, Any]) -> None:
    from ray import tune

    for epoch in range(1, config["epochs"] + 1):
        if config.get("minimal"):  # Tune's own floor: one key, no checkpoint
            tune.report({"dev_accuracy_mean": config["x"] + 0.001 * epoch})
            continue
        result: dict[str, float] = {"epoch": epoch, "epoch_time_s": 0.01, "trainable_params": 1000.0,
                                    "trainable_pct": 0.1, "resumed_from_epoch": 0.0, "world_size": 1.0}
        for name in PER_SEED:
            values = [config["x"] + 0.01 * seed + 0.001 * epoch for seed in SEEDS]
            result.update({f"{name}/seed_{seed}": v for seed, v in zip(SEEDS, values)})
            result[f"{name}_mean"] = sum(values) / len(values)
            result[f"{name}_std"] = 0.01
        if not config["checkpoint"]:
            tune.report(result)
            continue
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.bin").write_bytes(bytes(1024))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))


def run_variant(trials: int, trim: bool, loggers: str = "auto", minimal: bool = False, *, epochs: int = 2,
                checkpoint: bool = False, runs: int = 1) -> dict[str, Any]:
    """``trials`` in ``runs`` Tuner runs one after the other in this process (each ``trials // runs``);
    RSS after each ended trial. ``loggers``: Tune's automatic CSV, JSON
    and TensorBoard logger callbacks (``auto``, Tune's default; ``ipt-ray sweep`` runs ``none`` since
    2026-12-04: ``trial_state.lean_trial_records``), the automatic ones without
    TensorBoard (``auto-without-tensorboard``), CSV and/or JSON passed explicitly with the automatic ones
    off (``csv-json``, ``csv``, ``json``), none (``none``), or ``lean``: none and no result copied into
    a checkpoint's record (``lean_trial_records``, the product's setting)."""
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from ipt_ray.sweep.trial_state import AUTO_LOGGERS_OFF, TrimEndedTrials, lean_trial_records

    class RssAtTrialEnd(tune.Callback):
        def __init__(self) -> None:
            self.samples: list[float] = []
            self.python_objects: list[int] = []

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            gc.collect()
            self.samples.append(rss_mb())
            self.python_objects.append(len(gc.get_objects()))

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    rss = RssAtTrialEnd()
    explicit = {"csv-json": [CSVLoggerCallback, JsonLoggerCallback], "csv": [CSVLoggerCallback],
                "json": [JsonLoggerCallback], "none": []}
    if loggers in explicit:
        os.environ[AUTO_LOGGERS_OFF] = "1"  # one child process per variant: nothing to restore
    elif loggers == "auto-without-tensorboard":  # Tune skips its TensorBoard logger when tensorboardX won't import
        sys.modules["tensorboardX"] = None  # type: ignore[assignment]
    per_run = trials // runs
    after_fit: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tune-memory-") as storage:
            for run in range(runs):
                callbacks: list[Any] = [rss] + ([TrimEndedTrials(["dev_accuracy_mean"])] if trim else [])
                callbacks += [logger() for logger in explicit.get(loggers, [])]
                tuner = tune.Tuner(
                    tune.with_resources(trainable, {"cpu": 1}),
                    param_space={"x": tune.uniform(0.0, 1.0), "epochs": epochs, "checkpoint": checkpoint,
                                 "minimal": minimal},
                    tune_config=tune.TuneConfig(metric="dev_accuracy_mean", mode="max", num_samples=per_run,
                                                max_concurrent_trials=4, reuse_actors=True),
                    run_config=tune.RunConfig(storage_path=storage, name=f"tune-memory-{run}", callbacks=callbacks,
                                              verbose=0))
                with lean_trial_records() if loggers == "lean" else nullcontext():  # as ipt-ray sweep runs fit()
                    grid = tuner.fit()
                gc.collect()
                after_fit.append(rss_mb())
                best = grid.get_best_result().metrics["dev_accuracy_mean"]  # Tune's lookup still works when trimmed
                del grid, tuner  # what a driver running the next run no longer holds
    finally:
        ray.shutdown()
    half = len(rss.samples) // 2
    by_run = [rss.samples[run * per_run:(run + 1) * per_run] for run in range(runs)]
    return {"trim": trim, "loggers": loggers, "minimal": minimal, "trials": trials, "runs": runs, "epochs": epochs,
            "checkpoint": checkpoint, "rss_mb": [round(x, 1) for x in rss.samples], "best": best,
            "rss_after_fit_mb": round(after_fit[-1], 1),
            "slope_kib_per_trial": round(1024 * slope(rss.samples[half:]), 1),
            "slope_kib_per_trial_by_run": [round(1024 * slope(part[len(part) // 2:]), 1) for part in by_run],
            "rss_after_fit_mb_by_run": [round(x, 1) for x in after_fit],
            "python_objects_per_trial": round(slope(rss.python_objects[half:]), 1)}


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index."""
    return float(np.polyfit(np.arange(len(values)), values, 1)[0]) if len(values) >= 2 else float("nan")


VARIANTS = {"plain": (False, "auto"), "trim": (True, "auto"), "trim-csv-json": (True, "csv-json"),
            "trim-no-tensorboard": (True, "auto-without-tensorboard"), "trim-no-loggers": (True, "none"),
            "trim-csv": (True, "csv"), "trim-json": (True, "json"), "plain-no-loggers": (False, "none"),
            "lean": (True, "lean"), "lean-minimal": (True, "lean", True)}


DEFAULT_VARIANTS = ["plain", "trim"]


def per_run(row: dict[str, Any], key: str) -> str:
    """A row's figure, or its figure for each Tuner run (``--runs``) separated by /."""
    by_run = row.get(f"{key}_by_run", [])
    return " / ".join(str(x) for x in by_run) if len(by_run) > 1 else str(row[key])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--checkpoint", action="store_true", help="a checkpoint with every epoch's report")
    parser.add_argument("--runs", type=int, default=1,
                        help="split the trials into this many Tuner runs, one after the other in one driver")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "tune_memory.md"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args(argv)
    if args.runs < 1 or args.trials % args.runs:
        parser.error(f"--trials {args.trials} does not split into --runs {args.runs} runs of equal size")
    if args.variant:
        print(json.dumps(run_variant(args.trials, *VARIANTS[args.variant], epochs=args.epochs,
                                     checkpoint=args.checkpoint, runs=args.runs)))
        return 0
    rows = []
    for variant in args.variants:
        done = subprocess.run([sys.executable, "-m", "bench.tune_memory", "--trials", str(args.trials),
                               "--epochs", str(args.epochs), "--variant", variant, "--runs", str(args.runs)]
                              + (["--checkpoint"] if args.checkpoint else []), capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    lines = [
        f"`python -m bench.tune_memory --trials {args.trials}"
        + (f" --epochs {args.epochs}" if args.epochs != 2 else "") + (" --checkpoint" if args.checkpoint else "")
        + (f" --variants {' '.join(args.variants)}" if args.variants != DEFAULT_VARIANTS else "")
        + (f" --runs {args.runs}" if args.runs > 1 else "")
        + f"`: a `tune.Tuner` on a fresh local Ray, {args.trials} function trials (4 at a time), each reporting "
        f"{args.epochs} epochs of a 57-key result shaped like this project's (one key where a row says so)"
        + (", each with a checkpoint (one 1 KiB file)" if args.checkpoint else ", nothing else")
        + (f", in {args.runs} Tuner runs one after the other in the same driver ({args.trials // args.runs} trials "
           "each; per-run figures separated by /)" if args.runs > 1 else "")
        + ". Driver RSS after gc at each trial's end; the slope over the second half of the trials "
        "(RSS, and the count of gc-tracked Python objects); RSS once `fit()` has returned its `ResultGrid`.", "",
        "| Tune callbacks | driver RSS at 1st / 50% / last ended trial (MB) | RSS per further trial (KiB) | "
        "Python objects per further trial | RSS after `fit()` (MB) | best dev_accuracy_mean from Tune |",
        "|---|---|---|---|---|---|"]
    for row in rows:
        samples = row["rss_mb"]
        loggers = row.get("loggers", "auto")
        callbacks = ("TrimEndedTrials" if row["trim"] else "none") + (
            "" if loggers == "auto" else " + `lean_trial_records`" if loggers == "lean" else f"; loggers: {loggers}") + (
            "; a one-key result, no checkpoint" if row.get("minimal") else "")
        lines.append(f"| {callbacks} | {samples[0]} / {samples[len(samples) // 2]} / "
                     f"{samples[-1]} | {per_run(row, 'slope_kib_per_trial')} | {row['python_objects_per_trial']} | "
                     f"{per_run(row, 'rss_after_fit_mb')} | {row['best']:.4f} |")
    write_results(args.out, lines, {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
