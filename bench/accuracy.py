"""Dev accuracy and wall time of Prompt Tuning, Random IPT and Encoder IPT (cnn) on MiniLM.

Input injection, k=16, one seed, CB (vendored, full train) and SST-2 (2,000 training sentences).
Usage: python -m bench.accuracy [--out bench/results/accuracy.md] [--epochs-cb 8] [--epochs-sst2 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ipt_ray.config import validate_config
from bench._methods import bench_methods
from bench._results import write_results
from ipt_ray.train import run_local

METHODS = {label: m for label, m in bench_methods(prefix=False).items()
           if label in ("Prompt Tuning", "Random IPT (compact)", "Encoder IPT (cnn)")}  # the three studied


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/accuracy.md")
    parser.add_argument("--epochs-cb", type=int, default=8)
    parser.add_argument("--epochs-sst2", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--only", help="run only methods whose label contains this text (others keep their old rows)")
    args = parser.parse_args()
    out = Path(args.out)
    previous = json.loads(out.with_suffix(".json").read_text()) if args.only and out.with_suffix(".json").exists() else []
    tasks = {
        "cb": ({"name": "cb"}, args.epochs_cb),
        "sst2": ({"name": "sst2", "max_train_samples": 2000}, args.epochs_sst2),
    }
    rows = []
    for task_name, (task, epochs) in tasks.items():
        for label, method in METHODS.items():
            if args.only and args.only not in label:
                rows.extend(r for r in previous if r["task"] == task_name and r["method"] == label)
                continue
            cfg = validate_config({
                "task": task, "backbone": {"name": "minilm-l6"},
                "method": {**method, "injection": "input", "head": "classifier", "prompt_length": 16},
                "train": {"epochs": epochs, "batch_size": 16, "lr": args.lr, "seeds": [0], "progress": False,
                          "output_dir": "/tmp/ipt-bench"},
            })
            t0 = time.perf_counter()
            result = run_local(cfg, run_dir=f"/tmp/ipt-bench/{task_name}-{method['strategy']}")
            wall = time.perf_counter() - t0
            row = {"task": task_name, "method": label, "epochs": epochs,
                   "dev_accuracy_last": result["dev_accuracy_mean"], "dev_accuracy_best": result["best_dev_accuracy_mean"],
                   "trainable_params": result["trainable_params"], "trainable_pct": result["trainable_pct"], "wall_s": wall}
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = ["| task | method | epochs | dev acc (last) | dev acc (best epoch) | trainable | wall (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {r['epochs']} | {r['dev_accuracy_last']:.4f} | "
                     f"{r['dev_accuracy_best']:.4f} | {r['trainable_params']:,} ({r['trainable_pct']:.2f}%) | {r['wall_s']:.0f} |")
    write_results(out, lines, rows)


if __name__ == "__main__":
    main()
