"""A grid sweep's configs trained in-process one after another, for a lone GPU machine without Ray or MLflow.

``ipt-ray sweep`` runs a YAML's grid as Ray Tune trials and logs them to MLflow. A device machine lent
for a short check has neither; this runs the same configs through the same loop (``run_local``, what each
trial runs: seeds batched, bf16 autocast on CUDA) and appends each config's per-epoch, per-seed dev and
test metrics to a JSON file, rewritten after every epoch, so a run cut short (a device's time limit) keeps
every epoch that ended: the config it was in stays as ``"cut_short": true``, and a rerun trains that one
again from its start. ``--report`` reads that file back into a table: per method, the learning rate and
epoch that dev chose, test at that choice (mean +- std over seeds), and Welch's test of each IPT variant
against its base on those test values. Configs that failed or were cut short are listed and choose nothing:
a choice among partly run configs would favour the ones that learn fastest.

Usage: python -m bench.gpu_grid CONFIG.yaml [CONFIG.yaml ...] --out grid.json [--set key=value ...]
       python -m bench.gpu_grid --report grid.json [--out table.md]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from statistics import fmean, stdev
from typing import Any, Iterator

import torch

from ipt_ray.config import ExperimentConfig, load_config, strategy_spec
from ipt_ray.train import run_local


def grid_configs(cfg: ExperimentConfig) -> Iterator[tuple[dict[str, Any], ExperimentConfig]]:
    """Every point of a grid of ``choice`` dimensions (the first key varies fastest, as Tune's grid)."""
    space = cfg.sweep.search_space
    bad = [k for k, d in space.items() if d.type != "choice"]
    if bad:
        raise SystemExit(f"bench.gpu_grid runs grids of choices only; {bad} are {[space[k].type for k in bad]}")
    keys = list(space)
    for combo in itertools.product(*(space[k].values for k in reversed(keys))):
        point = dict(zip(reversed(keys), combo))
        yield point, cfg.with_overrides(point)  # its search space stays: the loop never reads it


def run_grid(paths: list[str], overrides: list[str], out: Path, run_dir: Path) -> None:
    done = [r for r in json.loads(out.read_text()) if not r.get("cut_short")] if out.is_file() else []
    for path in paths:
        for point, cfg in grid_configs(load_config(path, overrides)):
            label = method_label(cfg)
            if any(r["config"] == path and r["point"] == point for r in done):
                continue  # a rerun after a cut-short run goes on where it stopped
            epochs: list[dict[str, Any]] = []
            started = time.perf_counter()
            record = {"config": path, "point": point, "method": label, "lr": cfg.train.lr, "seeds": cfg.train.seeds,
                      "task": cfg.task.name, "protocol": cfg.task.protocol, "epochs": epochs,
                      "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"}

            def keep_epoch(metrics: dict[str, Any], _checkpoint: Any) -> None:
                epochs.append(dict(metrics))
                save(out, done + [{**record, "cut_short": True}])  # until run_local returns or fails

            try:
                result = run_local(cfg, run_dir=run_dir / f"{len(done)}", report_fn=keep_epoch)
                record["trainable_pct"] = result["trainable_pct"]
            except Exception as err:  # noqa: BLE001 - one config's failure (out of memory, say) is its row, not the end
                record["error"] = f"{type(err).__name__}: {err}"
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            record["wall_s"] = time.perf_counter() - started
            done.append(record)
            save(out, done)
            if "error" in record:
                print(f"{label} lr={cfg.train.lr:g}: FAILED after {len(epochs)} epochs: {record['error']}", flush=True)
                continue
            best = max(epochs, key=lambda e: e["dev_accuracy_mean"])
            print(f"{label} lr={cfg.train.lr:g}: best epoch {best['epoch']} dev {best['dev_accuracy_mean']:.4f} "
                  f"test {best.get('test_accuracy_mean', float('nan')):.4f} ({done[-1]['wall_s']:.0f}s)", flush=True)


def save(out: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``out`` whole or not at all: a time limit's kill may land in the middle of a write."""
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(rows, indent=1))
    partial.replace(out)


def method_label(cfg: ExperimentConfig) -> str:
    m = cfg.method
    return strategy_spec(m.strategy).display_label(m.model_dump(mode="json"))


def chosen(rows: list[dict[str, Any]], metric: str = "accuracy") -> dict[str, dict[str, Any]]:
    """Per method, the (learning rate, epoch) with the best dev seed mean, and that epoch's record."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        for epoch in row["epochs"]:
            key = epoch[f"dev_{metric}_mean"]
            if row["method"] not in out or key > out[row["method"]]["epoch"][f"dev_{metric}_mean"]:
                out[row["method"]] = {"lr": row["lr"], "epoch": epoch, "seeds": row["seeds"], "row": row}
    return out


def seed_values(choice: dict[str, Any], split: str, metric: str = "accuracy") -> list[float]:
    return [choice["epoch"][f"{split}_{metric}/seed_{s}"] for s in choice["seeds"]]


def report(rows: list[dict[str, Any]]) -> list[str]:
    from ipt_ray.report.significance import welch

    picks = chosen([r for r in rows if "error" not in r and not r.get("cut_short")])  # their epochs do not count
    split = "test" if all("test_accuracy_mean" in c["epoch"] for c in picks.values()) else "dev"
    lines = [f"| method | lr (dev-chosen) | epoch (dev-chosen) | dev | {split} | vs base ({split}, Welch p) |",
             "|---|---|---|---|---|---|"]
    for label, c in picks.items():
        base_label = base_of(c["row"], picks)
        versus = "-"
        if base_label:
            a, b = seed_values(c, split), seed_values(picks[base_label], split)
            versus = f"{(fmean(a) - fmean(b)) * 100:+.1f} vs {base_label} (p = {welch(a, b)[1]:.2f})"
        dev, test = seed_values(c, "dev"), seed_values(c, split)
        lines.append(f"| {label} | {c['lr']:g} | {c['epoch']['epoch']} | {fmean(dev) * 100:.1f} +- {stdev(dev) * 100:.1f} | "
                     f"{fmean(test) * 100:.1f} +- {stdev(test) * 100:.1f} | {versus} |")
    lines += [f"| {r['method']} | {r['lr']:g} | failed: {r['error'][:120]} | | | |" for r in rows if "error" in r]
    lines += [f"| {r['method']} | {r['lr']:g} | cut short after {len(r['epochs'])} epochs | | | |"
              for r in rows if r.get("cut_short")]
    return lines


def base_of(row: dict[str, Any], picks: dict[str, Any]) -> str | None:
    """The label of the row's strategy base with the same injection, if that base was run."""
    method = row["point"].get("method", {})
    spec = strategy_spec(method.get("strategy", "")) if method.get("strategy") else None
    if spec is None or spec.base is None:
        return None
    base_label = strategy_spec(spec.base).display_label({"strategy": spec.base, "injection": method.get("injection", "input")})
    return base_label if base_label in picks else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("configs", nargs="*")
    parser.add_argument("--set", action="append", default=[], help="key=value override of every config")
    parser.add_argument("--out", default="grid.json")
    parser.add_argument("--run-dir", default="/tmp/ipt-gpu-grid")
    parser.add_argument("--report", metavar="JSON", help="the table of a finished (or cut-short) grid")
    args = parser.parse_args()
    if args.report:
        if not Path(args.report).is_file():
            raise SystemExit(f"{args.report}: not written (no epoch of the grid ended)")
        lines = report(json.loads(Path(args.report).read_text()))
        print("\n".join(lines))
        if args.out.endswith(".md"):
            Path(args.out).write_text("\n".join(lines) + "\n")
        return
    run_grid(args.configs, args.set, Path(args.out), Path(args.run_dir))


if __name__ == "__main__":
    main()
