"""Serving many adapters over one frozen backbone: memory per adapter, mixed- vs single-adapter throughput.

MiniLM-L6 (the ``minilm-l6`` alias), Random IPT adapters (k=16, default compact layout over 8,000 token
ids) of two tasks (sst2, imdb) x seeds, loaded into one :class:`ipt_ray.serve.service.AdapterService` (what the Ray Serve deployment holds).

- Memory: one process per adapter count (1, 4, 16); RSS after loading (current, not peak) and the bytes
  of the adapters' tensors. Target: each adapter beyond the first costs at most its safetensors file + 10%
  (the backbone is held once).
- Throughput: batches of ``--batch`` requests (one text each, as ``@serve.batch`` hands them over) for
  one adapter (single) or round-robin over all 16 (mixed); requests per second over ``--batches`` batches,
  after warm-up. Target: mixed >= 0.9 x single. Latency: p50 / p99 of one batch's ``predict_batch``
  (a request's time in the replica, without HTTP).

Usage: python -m bench.serve [--out bench/results/serve.md] [--batch 16] [--batches 40]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._results import write_results

COUNTS = (1, 4, 16)
TASKS = ("sst2", "imdb")
SEEN_IDS = 8000  # compact prompt-table rows per adapter (CB's training set has a few thousand distinct ids)
TEXT = "a quietly moving film with two fine performances and a script that never quite lands"


def make_adapters(root: Path, n: int) -> dict[str, Path]:
    """``n`` saved adapters, tasks x seeds, over MiniLM."""
    from ipt_ray.backbone import load_backbone
    from ipt_ray.config import validate_config
    from ipt_ray.data import get_task
    from ipt_ray.model import build_adapter, build_context, save_adapter

    import torch

    backbone = load_backbone(validate_config({"backbone": {"name": "minilm-l6"}}).backbone)
    seen = torch.arange(SEEN_IDS)  # the compact table's rows (what a task's training data would have seen)
    out = {}
    for i in range(n):
        task, seed = TASKS[i % len(TASKS)], i // len(TASKS)
        config = validate_config({"task": {"name": task, "max_length": 128}, "backbone": {"name": "minilm-l6"},
                                  "method": {"strategy": "random_ipt", "prompt_length": 16}})
        labels = list(get_task(task).label_names)
        ctx = build_context(config.method, backbone, len(labels), seen_token_ids=seen, seed=seed)
        adapter = build_adapter(ctx, backbone, seed)
        out[f"{task}/seed_{seed}"] = save_adapter(root / task / f"seed_{seed}", adapter, config, backbone, ctx, seed,
                                                  labels).parent
    return out


def rss_mb() -> float:
    """This process's resident set now (not its peak), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(folders_json: str) -> None:
    """Child process: load the adapters of ``folders_json`` into one service; print a JSON line."""
    from ipt_ray.serve.service import AdapterService

    folders = json.loads(folders_json)
    service = AdapterService.load(folders)
    tensor_bytes = sum(t.numel() * t.element_size() for a in service.adapters.values()
                       for t in a.adapter.state_dict().values())
    file_bytes = sum((Path(f) / "adapter_model.safetensors").stat().st_size for f in folders.values())
    rss = rss_mb()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # what glibc keeps of the loading's freed temporaries, given back
    print(json.dumps({"n": len(folders), "rss_mb": rss, "rss_trimmed_mb": rss_mb(), "adapter_tensor_bytes": tensor_bytes,
                      "adapter_file_bytes": file_bytes}))


def throughput(folders: dict[str, Path], batch: int, batches: int) -> dict[str, dict[str, float]]:
    import torch

    from ipt_ray.serve.service import AdapterService

    torch.set_num_threads(max(1, torch.get_num_threads()))
    service = AdapterService.load(folders)
    names = sorted(folders)
    body = lambda name: json.dumps({"adapter": name, "texts": [TEXT]}).encode()  # noqa: E731
    workloads = {"single": [names[0]] * batch, "mixed": [names[i % len(names)] for i in range(batch)]}
    out = {}
    for _ in range(3):  # warm-up, both workloads
        for targets in workloads.values():
            service.predict_batch([service.parse(body(n)) for n in targets])
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(batches):  # interleaved: load from other processes drifts over both alike
        for name, targets in workloads.items():
            t0 = time.perf_counter()
            service.predict_batch([service.parse(body(n)) for n in targets])  # parse too: the replica does it
            times[name].append(time.perf_counter() - t0)
    for name in workloads:
        ordered = sorted(times[name])
        out[name] = {"requests_per_s": batch * len(ordered) / sum(ordered), "p50_ms": 1000 * statistics.median(ordered),
                     "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]}
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        memory_child(sys.argv[2])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/serve.md")
    parser.add_argument("--batch", type=int, default=16, help="requests per batch")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per workload")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="ipt-bench-serve-") as tmp:
        folders = make_adapters(Path(tmp), max(COUNTS))
        names = sorted(folders, key=lambda k: (int(k.split("seed_")[1]), k))  # tasks first, then seeds
        memory = []
        for n in COUNTS:
            chosen = {k: str(folders[k]) for k in names[:n]}
            res = subprocess.run([sys.executable, "-m", "bench.serve", "--child", json.dumps(chosen)], cwd=root,
                                 capture_output=True, text=True, check=True)
            memory.append(json.loads(res.stdout.strip().splitlines()[-1]))
        speed = throughput(folders, args.batch, args.batches)
    write_results(args.out, report_lines(memory, speed, args), {"memory": memory, "throughput": speed,
                                                                "batch": args.batch, "batches": args.batches})


def per_added_adapter(memory: list[dict], rss: str = "rss_mb") -> tuple[float, float]:
    """(RSS per adapter beyond the first, file bytes per adapter), in MiB; ``rss`` names the RSS figure."""
    first, last = memory[0], memory[-1]
    added = last["n"] - first["n"]
    return ((last[rss] - first[rss]) / added,
            (last["adapter_file_bytes"] - first["adapter_file_bytes"]) / added / 2**20)


def report_lines(memory: list[dict], speed: dict, args: argparse.Namespace) -> list[str]:
    rss_each, file_each = per_added_adapter(memory)
    ratio = speed["mixed"]["requests_per_s"] / speed["single"]["requests_per_s"]
    lines = [f"MiniLM-L6, Random IPT (k=16, compact table of {SEEN_IDS:,} ids) adapters of sst2 and imdb x seeds, one AdapterService "
             "(the Serve replica's state). CPU.", "",
             "| adapters | RSS (MB) | RSS after malloc_trim (MB) | adapter tensors (MiB) | adapter files (MiB) |",
             "|---|---|---|---|---|"]
    for m in memory:
        lines.append(f"| {m['n']} | {m['rss_mb']:.0f} | {m['rss_trimmed_mb']:.0f} | {m['adapter_tensor_bytes'] / 2**20:.2f} | "
                     f"{m['adapter_file_bytes'] / 2**20:.2f} |")
    trimmed_each, _ = per_added_adapter(memory, "rss_trimmed_mb")
    lines += ["", f"Each adapter beyond the first: {rss_each:.2f} MiB RSS for a {file_each:.2f} MiB file "
                  f"(target <= {1.1 * file_each:.2f}: {'met' if rss_each <= 1.1 * file_each else 'NOT met'}); "
                  f"{trimmed_each:.2f} MiB once glibc gives back the freed loading temporaries (malloc_trim).", "",
              f"| traffic ({args.batch} requests / batch, {args.batches} batches) | requests/s | p50 batch (ms) | "
              f"p99 batch (ms) |", "|---|---|---|---|"]
    for name, s in speed.items():
        lines.append(f"| {name} | {s['requests_per_s']:.1f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |")
    lines += ["", f"Mixed / single throughput: {ratio:.2f} (target >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'})."]
    return lines


if __name__ == "__main__":
    main()
