"""Run the benchmarks and gather their headline figures: ``python -m bench`` (or ``make bench``).

Each benchmark runs in its own process (so peak RSS and Ray sessions do not leak from one into the
next) and leaves its full table in ``bench/results/<name>.md`` with the raw timings beside it as JSON.
This runner then writes ``bench/results.json`` and ``bench/results.md``: one row per headline figure,
with its target, whether it is met, and the command that reproduces it.

    python -m bench                      # all of them (about an hour on 2 CPU cores)
    python -m bench --only step_time seeds
    python -m bench --collect            # rebuild the summary from the results already on disk
    python -m bench --quick              # a smoke run: bench/results-quick/, the results on file stay
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from bench._results import row_variant, slot_overhead_s

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


@dataclass
class Figure:
    benchmark: str
    figure: str
    value: str
    target: str = "report"
    met: bool | None = None  # None: no target, the figure is reported


def _ratio(value: float, limit: float | None) -> tuple[str, bool | None]:
    return ("report", None) if limit is None else (f"<= {limit:.2f}", value <= limit)


def step_time_figures(data: dict[str, list[float]]) -> list[Figure]:
    from bench.step_time import ratios  # imports torch: only when there are step times to read

    out = []
    for name, _, base, ratio, limit in ratios(data):
        if limit is not None:
            figure = f"ours / {name}" if name.startswith("PEFT") else f"step {name} / {base}"
            out.append(Figure("step_time", figure, f"{ratio:.3f}", *_ratio(ratio, limit)))
    return out


def seeds_figures(data: dict[str, list[float]]) -> list[Figure]:
    med = {name: statistics.median(v) for name, v in data.items()}
    one = med["1 seed"]
    out = []
    for name, value in med.items():
        if name != "1 seed":
            # the target is for a trial as it runs on CPU (train.execution auto = sequential there);
            # batched execution is the GPU path, and its target is the GPU step ratio
            target, met = _ratio(value / one, 5.0 if "sequential" in name else None)
            out.append(Figure("seeds", f"trial wall {name} / 1 seed (CPU, {len(data[name])} runs)",
                              f"{value / one:.2f}", target, met))
    return out


def overhead_figures(data: list[dict[str, Any]]) -> list[Figure]:
    out = []
    for row in data:
        limit = 1.15 if row["mode"] == 0 else None
        target, met = _ratio(row["ratio"], limit)
        poll = f", Train poll {row['health_check_interval_s']:g} s" if row["mode"] else ""
        what = f"num_workers {row['mode']}{poll}"
        out.append(Figure("overhead", f"sweep wall / trials' training, {what}, {row['trials']} trials",
                          f"{row['ratio']:.2f}", target, met))
        out.append(Figure("overhead", f"trial launch latency (median), {what}", f"{row['launch_latency_median_s']:.1f} s"))
    return out


def memory_figures(data: dict[str, Any]) -> list[Figure]:
    out = []
    for name, (trainable, backbone) in data["roberta_large"].items():
        if name.endswith("[default]"):  # the paper's claim is about each strategy's default layout
            pct = 100 * trainable / backbone
            out.append(Figure("memory", f"trainable share of roberta-large, {name.removesuffix(' [default]')}",
                              f"{pct:.2f}%", "<= 1.5%", pct <= 1.5))
    return out


def search_efficiency_figures(data: dict[str, list[list]]) -> list[Figure]:
    # events are (trial, epoch, seed mean) in arrival order; a config counts once it completed
    last_epoch = max(epoch for _, epoch, _ in data["grid"])
    threshold = max(mean for _, epoch, mean in data["grid"] if epoch == last_epoch) - 0.01
    out = []
    for name, events in data.items():
        until = next((i for i, (_, epoch, mean) in enumerate(events, 1) if epoch == last_epoch and mean >= threshold),
                     None)
        out.append(Figure("search_efficiency", f"trial-epochs until a config within 1 point of the grid's best, {name}",
                          f"{until if until is not None else 'never'} of {len(events)}"))
    return out


def accuracy_figures(data: list[dict[str, Any]]) -> list[Figure]:
    return [Figure("accuracy", f"{row['task']} dev accuracy (last epoch), {row['method']}",
                   f"{100 * row['dev_accuracy_last']:.1f}") for row in data]


def serve_figures(data: dict[str, Any]) -> list[Figure]:
    from bench.serve import per_added_adapter  # the benchmark's own arithmetic, one place

    rss_each, file_each = per_added_adapter(data["memory"])
    trimmed_each, _ = per_added_adapter(data["memory"], "rss_trimmed_mb")
    single, mixed = data["throughput"]["single"], data["throughput"]["mixed"]
    ratio = mixed["requests_per_s"] / single["requests_per_s"]
    out = [Figure("serve", f"RSS per adapter beyond the first (1 -> {data['memory'][-1]['n']} adapters)",
                  f"{rss_each:.2f} MiB", f"<= {1.1 * file_each:.2f} MiB (file + 10%)", rss_each <= 1.1 * file_each),
           Figure("serve", "the same after malloc_trim (glibc's retained free memory given back)",
                  f"{trimmed_each:.2f} MiB", f"<= {1.1 * file_each:.2f} MiB", trimmed_each <= 1.1 * file_each),
           Figure("serve", f"mixed / single-adapter throughput ({data['batch']} requests / batch)", f"{ratio:.2f}",
                  ">= 0.90", ratio >= 0.9)]
    for name, s in (("single", single), ("mixed", mixed)):
        out.append(Figure("serve", f"{name}-adapter batch latency p50 / p99", f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f} ms"))
    return out


def scale_figures(data: dict[str, Any], name: str = "scale") -> list[Figure]:
    out = []
    for row in data["rows"]:
        n = row["trials"]
        runs = row_variant(row)
        if row["killed_and_resumed"]:
            out.append(Figure(name, f"{n} trials{runs}, driver killed after {row['killed_after_trials']} and resumed: "
                                    "MLflow exact, no epoch twice", "yes" if row["exact"] else "no",
                              "exact", row["exact"]))
            continue
        target, met = _ratio(row["wall_over_ideal"], 1.15 if n >= 500 else None)
        out += [Figure(name, f"{n} trials{runs}: sweep wall / ideal", f"{row['wall_over_ideal']:.2f}", target, met),
                Figure(name, f"{n} trials{runs}: trial's own time, overhead per trial (slot-s)",
                       f"{row['trial_time_s'] / n:.2f} s, {slot_overhead_s(row):.2f} s"),
                Figure(name, f"{n} trials{runs}: trials/s, driver CPU / trial, MLflow requests / trial",
                       f"{row['trials_per_s']:.2f}, {row['driver_cpu_ms_per_trial']:.0f} ms, "
                       f"{row['mlflow_requests_per_trial']:.1f}"),
                Figure(name, f"{n} trials{runs}: driver peak RSS", f"{row['driver_peak_rss_mb']:.0f} MB"),
                Figure(name, f"{n} trials{runs}: MLflow exact (1 + {5 * n} + 1 runs)", "yes" if row["exact"] else "no",
                       "exact", row["exact"])]
        for key, what in (("driver_rss_run_at_ends_mb", "as each Tune run's last trial ended"),
                          ("driver_rss_run_peaks_mb", "peak in each Tune run")):
            if row.get(key):
                out.insert(-1, Figure(name, f"{n} trials{runs}: driver RSS {what}",
                                      " / ".join(f"{mb:.1f}" for mb in row[key]) + " MB"))
        if row.get("driver_rss_kib_per_trial") is not None:
            out.insert(-1, Figure(name, f"{n} trials{runs}: driver RSS per further trial (second half of the trials)",
                                  f"{row['driver_rss_kib_per_trial']:.1f} KiB"))
    return out


def seed_step_figures(data: dict[str, Any]) -> list[Figure]:
    from bench.seed_step import TARGET

    med = {name: statistics.median(v) for name, v in data["times"].items()}
    ratios = sorted(med[m] / med[m.replace(f"{data['seeds']} seeds", "1 seed")] for m in med if m.endswith(" seeds"))
    where = data["device"]
    target, met = _ratio(ratios[-1], TARGET if where != "CPU" else None)  # the target is for a GPU
    return [Figure("seed_step", f"{data['seeds']}-seed batched / 1-seed step, roberta-large bf16 on {where} "
                   f"({len(ratios)} methods: lowest, median, highest)",
                   f"{ratios[0]:.2f}, {statistics.median(ratios):.2f}, {ratios[-1]:.2f}", target, met)]


def cuda_epoch_figures(data: dict[str, Any]) -> list[Figure]:
    rows = data["rows"].values()
    epoch = [min(r["epoch_time_s"]) for r in rows]
    peak = [r["peak_gpu_gib"] or 0.0 for r in rows]
    return [Figure("cuda_epoch", f"one full-data RTE epoch of Table 2's config, 5 seeds batched, {data['backbone']} "
                   f"on {data['device']} ({len(epoch)} methods)", f"{min(epoch):.0f}-{max(epoch):.0f} s, peak "
                   f"{min(peak):.0f}-{max(peak):.0f} GiB")]


@dataclass
class Benchmark:
    module: str
    args: list[str]
    quick_args: list[str]
    figures: Callable[[Any], list[Figure]]

    def command(self, quick: bool, out: Path) -> list[str]:
        return [sys.executable, "-m", f"bench.{self.module}", *(self.quick_args if quick else self.args),
                "--out", str(out / f"{self.module}.md")]


BENCHMARKS: dict[str, Benchmark] = {
    "step_time": Benchmark("step_time", [], ["--rounds", "5"], step_time_figures),
    "memory": Benchmark("memory", [], [], memory_figures),
    "seeds": Benchmark("seeds", [], ["--repeats", "2"], seeds_figures),
    "overhead": Benchmark("overhead", ["--trials", "10"], ["--trials", "5"], overhead_figures),
    "search_efficiency": Benchmark("search_efficiency", [], [], search_efficiency_figures),
    "accuracy": Benchmark("accuracy", [], [], accuracy_figures),
    "serve": Benchmark("serve", [], ["--batches", "10"], serve_figures),
    "scale": Benchmark("scale", [], ["--trials", "10", "30", "--kill-at", "0.5"], scale_figures),
}


# Results that only a CUDA machine makes (`bash bench/gpu_check.sh` there): collected when on file, never run here
GPU_RESULTS: dict[str, Callable[[Any], list[Figure]]] = {"seed_step": seed_step_figures,
                                                         "cuda_epoch": cuda_epoch_figures}

# Longer runs of a benchmark above, in files of their own: collected when on file, never run by this runner
ON_FILE: dict[str, tuple[Callable[[Any], list[Figure]], str]] = {
    "scale_runs": (functools.partial(scale_figures, name="scale_runs"),
                   "python -m bench.scale --trials 500 --kill-at 0.5 --trials-per-run 125 --out bench/results/scale_runs.md"),
    "scale_fresh": (functools.partial(scale_figures, name="scale_fresh"),
                    "python -m bench.scale --trials 500 --kill-at 0.5 --trials-per-run 125 [--one-process] "
                    "--out bench/results/scale_fresh.md"),
    "scale_plateau": (functools.partial(scale_figures, name="scale_plateau"),
                      "python -m bench.scale --trials 2000 --kill-at 0 --trials-per-run 250 --train-samples 64 "
                      "--one-process --out bench/results/scale_plateau.md"),
    "scale_bounded": (functools.partial(scale_figures, name="scale_bounded"),
                      "python -m bench.scale --trials 50 500 --kill-at 0 --trials-per-run 250 "
                      "--out bench/results/scale_bounded.md"),
}


def collect(ran: dict[str, dict[str, Any]], results: Path = RESULTS) -> tuple[list[str], dict[str, Any]]:
    figures: list[Figure] = []
    summary: dict[str, Any] = {}
    readers = {**{name: (b.figures, f"python -m bench --only {name}") for name, b in BENCHMARKS.items()},
               **{name: (read, "bash bench/gpu_check.sh (on a CUDA machine)") for name, read in GPU_RESULTS.items()},
               **ON_FILE}
    for name, (read, command) in readers.items():
        raw = results / f"{name}.json"
        if not raw.exists():
            continue
        found = read(json.loads(raw.read_text()))
        figures += found
        summary[name] = {"details": f"bench/{results.name}/{name}.md", "command": command,
                         **ran.get(name, {}), "figures": [asdict(f) for f in found]}
    lines = ["| benchmark | figure | value | target | met |", "|---|---|---|---|---|"]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| [{f.benchmark}]({results.name}/{f.benchmark}.md) | {f.figure} | {f.value} | {f.target} | {met} |")
    return lines, summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer rounds and trials (a smoke run)")
    parser.add_argument("--collect", action="store_true", help="only rebuild bench/results.{json,md}")
    args = parser.parse_args()
    results = BENCH / ("results-quick" if args.quick else "results")
    ran: dict[str, dict[str, Any]] = {}
    if not args.collect:
        for name in args.only:
            cmd = BENCHMARKS[name].command(args.quick, results.relative_to(BENCH.parent))
            print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=BENCH.parent)
            ran[name] = {"ran_with": " ".join(["python", *cmd[1:]]), "wall_s": round(time.perf_counter() - t0, 1)}
    summary_json, summary_md = results.with_suffix(".json"), results.with_suffix(".md")
    previous = json.loads(summary_json.read_text()) if summary_json.exists() else {}
    for name, entry in previous.items():  # keep how the untouched benchmarks were last run
        if name not in ran and isinstance(entry, dict) and "ran_with" in entry:
            ran[name] = {k: entry[k] for k in ("ran_with", "wall_s") if k in entry}
    lines, summary = collect(ran, results)
    summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    header = ["# Benchmark summary", "", f"Written by `python -m bench`; full tables in `bench/{results.name}/`.", ""]
    summary_md.write_text("\n".join([*header, *lines]) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
