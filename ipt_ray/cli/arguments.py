"""The flags of each ``ipt-ray`` command, one function per command.

They live here rather than in the command modules because the parser is built for every call while a
command's module (and the stages it imports: torch, ray, mlflow) is imported only when that command runs.
"""

from __future__ import annotations

import argparse


def add_config(p: argparse.ArgumentParser) -> None:
    """The experiment YAML and its ``--set`` overrides, shared by the commands that read one."""
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set method.prompt_length=32 (repeatable)")


def add_validate(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--show", action="store_true", help="print the config with defaults filled in")


def add_train(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--run-dir", help="where adapters and the checkpoint go (default: train.output_dir/<name>-<time>)")
    p.add_argument("--json", help="also write the final metrics to this JSON file")


def add_sweep(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="SWEEP",
                   help="resume the latest sweep of this YAML (or the named one) after the driver stopped")
    # set by the sweep itself when it goes on in a fresh process (ipt_ray.cli.sweep): its first process's start
    p.add_argument("--started-at", type=float, default=None, help=argparse.SUPPRESS)


def add_report(p: argparse.ArgumentParser) -> None:
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


def add_validate_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="e.g. clusters/aws-gpu.yaml clusters/kuberay-rayjob.yaml")


def add_pretrain(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--no-tracking", action="store_true", help="do not log an MLflow run")
    p.add_argument("--json", help="also write the result (accuracy, checkpoint, history) to this JSON file")


def add_interpret(p: argparse.ArgumentParser) -> None:
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


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an adapter folder (runs/<name>/seed_<s>, or a folder of seeds), an MLflow run id "
                                 "(a child run's adapter, an aggregate run's model) or models:/NAME/VERSION")
    p.add_argument("--input", required=True, help="csv or jsonl with the task's text columns")
    p.add_argument("--output", required=True, help="csv: the input's columns, label, prob_<label>, seed_<s>_*")
    p.add_argument("--text-fields", help="the input's columns that hold the task's text fields, in the task's "
                                         "order, comma-separated (default: the task's own names)")
    p.add_argument("--ensemble", action="store_true",
                   help="average the probabilities of every seed of the adapter's config")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--tracking-uri", help="for MLflow models and runs (default: MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("adapters", nargs="+", metavar="[NAME=]SOURCE",
                   help="adapter folder, MLflow run id or models:/NAME/VERSION; every one over the same backbone")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--ensemble", action="store_true", help="a seed's folder or run brings its config's other seeds")
    p.add_argument("--max-batch-size", type=int, default=32, help="requests batched into one backbone pass")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a batch waits to fill (default 5)")
    p.add_argument("--max-texts", type=int, default=64, help="texts per request (default 64)")
    p.add_argument("--max-chars", type=int, default=5000, help="characters per text (default 5000)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs of the deployment's replica (torch threads)")
    p.add_argument("--tracking-uri", help="for MLflow models and runs (default: MLFLOW_TRACKING_URI or ./mlflow.db)")
