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
    from ipt_ray.preflight import preflight

    preflight(cfg, sweep=False)  # data, backbone files, method files: fail before training, not during it
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


def cmd_sweep(args: argparse.Namespace) -> int:
    from ipt_ray.sweep import run_sweep

    cfg = load_config(args.config, args.set)
    run_sweep(cfg, args.config, resume=args.resume if args.resume is not None else False,
              config_text=Path(args.config).read_text())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from ipt_ray.report import paper
    from ipt_ray.tracking import find_sweep_runs, resolve_tracking_uri

    names = list(args.sweep) if isinstance(args.sweep, (list, tuple)) else [args.sweep]
    if args.sync:  # replay what each sweep journaled while MLflow was unreachable, then report as usual
        from ipt_ray.tracking import sync_sweep

        synced_names = []
        for name in names:
            synced = sync_sweep(name, tracking_uri=args.tracking_uri)  # TrackingError: main() says it
            synced_names.append(synced["name"])
            args.tracking_uri = synced["uri"]
            args.experiment = synced["experiment"] or args.experiment
        names = synced_names
    uri = resolve_tracking_uri(args.tracking_uri)
    sweeps = []
    for name in names:  # several sweeps (e.g. one per task, or a method family each) are combined
        runs = find_sweep_runs(uri, args.experiment, name)
        if not runs:
            print(f"error: no trial runs of sweep {name!r} in experiment {args.experiment!r} at {uri}", file=sys.stderr)
            return 2
        sweeps.append(runs)
    paper.report_sweeps(MlflowClient(tracking_uri=uri), sweeps, metric=args.metric, mode=args.mode, out=args.out,
                        force_paper=args.paper, task_metrics=paper.parse_task_metrics(args.task_metric),
                        epoch=args.epoch, log=not args.no_log)
    return 0


def cmd_validate_cluster(args: argparse.Namespace) -> int:
    from ipt_ray.clusters import validate_cluster_file

    failed = False
    for path in args.files:
        problems = validate_cluster_file(path)
        if problems:
            failed = True
            print(f"error: {path}: {len(problems)} problem(s)", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"{path}: valid")
    return 2 if failed else 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from ipt_ray.pretrain import run_pretrain

    cfg = load_config(args.config, args.set)
    result = run_pretrain(cfg, base_dir=Path(args.config).resolve().parent, track=not args.no_tracking)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "checkpoint": str(result.checkpoint), "heldout_accuracy": result.heldout_accuracy,
            "wall_time_s": result.wall_time_s, "mlflow_run_id": result.run_id, "history": result.history,
            "category_counts": result.category_counts}, indent=2))
    return 0


def cmd_interpret(args: argparse.Namespace) -> int:
    from ipt_ray.interpret import format_nearest, load_projection_data, nearest_tokens, projection_plot
    from ipt_ray.model import load_adapter

    if not args.text and not args.project:
        print("error: give --text TEXT (nearest tokens) and/or --project SOURCE --out FILE.png", file=sys.stderr)
        return 2
    config, adapter, backbone, _ = load_adapter(args.adapter)
    max_length = config.task.max_length
    m = config.method
    print(f"adapter {args.adapter}: {config.task.name} | {config.backbone.name} | {m.strategy} ({m.injection}, "
          f"k={m.prompt_length})")
    if args.text:
        text = (args.text, args.text_pair) if args.text_pair else args.text
        print(format_nearest(nearest_tokens(adapter, backbone, text, args.top_k, max_length=max_length)))
    if args.project:
        texts, labels = load_projection_data(args.project, args.max_rows, args.data_dir, args.split)
        proj = projection_plot(adapter, backbone, texts, labels, args.out, max_length=max_length,
                               title=f"{m.strategy} on {config.task.name}: {args.project}")
        print(f"projection of {len(texts)} texts written to {proj.path} (silhouette by label: sentences "
              f"{proj.silhouette['sentence']:.3f}, prompts {proj.silhouette['prompt']:.3f})")
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

    p = sub.add_parser("sweep", help="Ray Tune + Optuna sweep: configs x seeds, every trial and the aggregate in MLflow")
    with_config(p)
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="SWEEP",
                   help="resume the latest sweep of this YAML (or the named one) after the driver stopped")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="rebuild a sweep's results table from MLflow alone; paper-style methods x "
                                      "tasks table and plots when the sweep(s) compare methods or tasks")
    p.add_argument("sweep", nargs="+", help="sweep name(s) or id(s) (the parent run's name); several are combined")
    p.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI or ./mlflow.db")
    p.add_argument("--experiment", default="ipt-ray")
    p.add_argument("--metric", default="accuracy")
    p.add_argument("--mode", choices=["max", "min"], default="max")
    p.add_argument("--out", help="also write results.csv / results.md / results.png here (and paper.md / "
                                 "paper.csv / prompt_length.png ... for the paper-style outputs)")
    p.add_argument("--paper", action="store_true",
                   help="paper-style outputs even when the sweep compares neither methods nor tasks")
    p.add_argument("--task-metric", action="append", default=[], metavar="TASK=METRIC",
                   help="metric of a task's column in the paper-style table (default: multirc=f1a; repeatable)")
    p.add_argument("--epoch", choices=["last", "best"], default="last",
                   help="dev value at the last epoch (default) or at each config's best epoch by seed mean")
    p.add_argument("--no-log", action="store_true",
                   help="do not upload the paper-style outputs into the sweep's aggregate MLflow run")
    p.add_argument("--sync", action="store_true",
                   help="first replay the MLflow writes the sweep journaled while the server was unreachable "
                        "(SWEEP: its name, found under runs/sweeps or */sweeps, or its folder; --tracking-uri: "
                        "where the server is now, default the sweep's own)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("validate-cluster",
                       help="check Ray cluster launcher YAMLs / KubeRay RayJobs offline (schema, trial_slot, auth, secrets)")
    p.add_argument("files", nargs="+", metavar="FILE", help="e.g. clusters/aws-gpu.yaml clusters/kuberay-rayjob.yaml")
    p.set_defaults(func=cmd_validate_cluster)
    p = sub.add_parser("pretrain", help="category pretraining: TextCNN over the backbone's tokens -> prompt-table "
                                        "checkpoint for method.table_init (Pretrained / Encoder IPT)")
    with_config(p)
    p.add_argument("--no-tracking", action="store_true", help="do not log an MLflow run")
    p.add_argument("--json", help="also write the result (accuracy, checkpoint, history) to this JSON file")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("interpret", help="nearest vocabulary tokens of an instance's prompts; 2-D projection plot")
    p.add_argument("adapter", help="a saved adapter folder (runs/<name>/seed_<s>)")
    p.add_argument("--text", help="input whose prompt vectors to explain")
    p.add_argument("--text-pair", help="second segment, for pair tasks (premise / hypothesis ...)")
    p.add_argument("--top-k", type=int, default=5, help="nearest tokens per prompt vector (default 5)")
    p.add_argument("--project", metavar="SOURCE",
                   help="FILE.jsonl (text, label), 'knowledge_cat' or a task name: plot sentence vs prompt PCA")
    p.add_argument("--out", default="projection.png", help="PNG path for --project (default projection.png)")
    p.add_argument("--max-rows", type=int, default=300, help="texts drawn for --project (default 300)")
    p.add_argument("--data-dir", help="data folder for --project (default: vendored copy / hub)")
    p.add_argument("--split", default="validation", help="task split for --project (default validation)")
    p.set_defaults(func=cmd_interpret)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ipt_ray.tracking import TrackingError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError, FileNotFoundError, TrackingError) as err:
        # Expected problems (bad config or data, wrong backbone, unreachable MLflow): a message, not a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
