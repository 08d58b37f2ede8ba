"""``ipt-ray``: validate | train (and the later stages as they land)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ipt_ray.config import ConfigError, ExperimentConfig, load_config


def _print_epoch(metrics: dict[str, Any], metric: str) -> None:
    mean, std = metrics.get(f"{metric}_mean"), metrics.get(f"{metric}_std")
    loss = metrics.get("train_loss_mean")
    print(f"epoch {metrics['epoch']}: {metric} {mean:.4f} +- {std:.4f}  train_loss {loss:.4f}  "
          f"({metrics['epoch_time_s']:.1f}s)", flush=True)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    print(f"{args.config}: valid")
    if args.show:
        import yaml

        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ipt_ray.train import run_local

    cfg: ExperimentConfig = load_config(args.config, args.set)
    metric = f"dev_{cfg.sweep.metric}"
    run_dir = Path(args.run_dir or Path(cfg.train.output_dir) / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    m = cfg.method
    print(f"ipt-ray train: {cfg.task.name} | {cfg.backbone.name} | {m.strategy} ({m.injection}, {m.head}, k={m.prompt_length}) "
          f"| seeds {cfg.train.seeds}", flush=True)
    result = run_local(cfg, run_dir=run_dir, report_fn=lambda metrics, _ckpt: _print_epoch(metrics, metric))
    print(f"trainable parameters: {result['trainable_params']:,} ({result['trainable_pct']:.3f}% of the backbone's "
          f"{result['backbone_params']:,})")
    keys = sorted(k for k in result if k.startswith("dev_") and k.endswith("_mean"))
    for key in keys:
        name = key[: -len("_mean")]
        print(f"final {name}: {result[key]:.4f} +- {result[name + '_std']:.4f}")
    print(f"wall time: {result['wall_time_s']:.1f}s; adapters saved under {run_dir}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipt-ray", description="Instance-wise Prompt Tuning experiments on Ray")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="experiment YAML")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a field, e.g. --set method.prompt_length=32 (repeatable)")

    p = sub.add_parser("validate", help="check an experiment YAML and exit non-zero on errors")
    with_config(p)
    p.add_argument("--show", action="store_true", help="print the config with defaults filled in")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("train", help="train one config in-process (no Ray), evaluate each epoch, save adapters")
    with_config(p)
    p.add_argument("--run-dir", help="where adapters and the checkpoint go (default: train.output_dir/<name>-<time>)")
    p.add_argument("--json", help="also write the final metrics to this JSON file")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
