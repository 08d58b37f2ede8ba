"""``ipt-ray train CONFIG``: train one config in-process (no Ray), one line per epoch, adapters saved."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ipt_ray.config import ExperimentConfig, load_config
from ipt_ray.preflight import preflight
from ipt_ray.train import run_local


def run(args: argparse.Namespace) -> int:
    cfg: ExperimentConfig = load_config(args.config, args.set)
    preflight(cfg, sweep=False)  # data, backbone files, method files: fail before training, not during it
    metric = f"dev_{cfg.sweep.metric}"
    run_dir = Path(args.run_dir or Path(cfg.train.output_dir) / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    m = cfg.method
    print(f"ipt-ray train: {cfg.task.name} | {cfg.backbone.name} | {m.strategy} ({m.injection}, {m.head}, k={m.prompt_length}) "
          f"| seeds {cfg.train.seeds}", flush=True)
    result = run_local(cfg, run_dir=run_dir, report_fn=lambda metrics, _ckpt: _print_epoch(metrics, metric))
    _print_result(result, run_dir)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _print_epoch(metrics: dict[str, Any], metric: str) -> None:
    mean, std = metrics.get(f"{metric}_mean"), metrics.get(f"{metric}_std")
    loss = metrics.get("train_loss_mean")
    print(f"epoch {metrics['epoch']}: {metric} {mean:.4f} +- {std:.4f}  train_loss {loss:.4f}  "
          f"({metrics['epoch_time_s']:.1f}s)", flush=True)


def _print_result(result: dict[str, Any], run_dir: Path) -> None:
    print(f"trainable parameters: {result['trainable_params']:,} ({result['trainable_pct']:.3f}% of the backbone's "
          f"{result['backbone_params']:,})")
    keys = sorted(k for k in result if k.startswith("dev_") and k.endswith("_mean"))
    for key in keys:
        name = key[: -len("_mean")]
        print(f"final {name}: {result[key]:.4f} +- {result[name + '_std']:.4f}")
    print(f"wall time: {result['wall_time_s']:.1f}s; adapters saved under {run_dir}")
