"""``ipt-ray``: validate | train | sweep | report | validate-cluster | pretrain | interpret | predict | serve.

The parser is built from :data:`COMMANDS`; each command's work is the ``run(args)`` of its own module
under ``ipt_ray.cli``, imported only when that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from ipt_ray.cli import arguments
from ipt_ray.config import ConfigError


@dataclass(frozen=True)
class Command:
    """One ``ipt-ray`` command: the module under ``ipt_ray.cli`` whose ``run(args) -> int`` does it,
    its help line and the function that adds its flags."""

    module: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]


COMMANDS: dict[str, Command] = {
    "validate": Command("validate", "check an experiment YAML and exit non-zero on errors", arguments.add_validate),
    "train": Command("train", "train one config in-process (no Ray), evaluate each epoch, save adapters",
                     arguments.add_train),
    "sweep": Command("sweep", "Ray Tune + Optuna sweep: configs x seeds, every trial and the aggregate in MLflow",
                     arguments.add_sweep),
    "report": Command("report", "rebuild a sweep's results table from MLflow alone; paper-style methods x "
                                "tasks table and plots when the sweep(s) compare methods or tasks", arguments.add_report),
    "validate-cluster": Command("clusters", "check Ray cluster launcher YAMLs / KubeRay RayJobs offline (schema, "
                                            "trial_slot, auth, secrets)", arguments.add_validate_cluster),
    "pretrain": Command("pretrain", "category pretraining: TextCNN over the backbone's tokens -> prompt-table "
                                    "checkpoint for method.table_init (Pretrained / Encoder IPT)", arguments.add_pretrain),
    "interpret": Command("interpret", "nearest vocabulary tokens of an instance's prompts; 2-D projection plot",
                         arguments.add_interpret),
    "predict": Command("predict", "adapters (folder, MLflow run, models:/NAME/VERSION) on a csv/jsonl -> csv",
                       arguments.add_predict),
    "serve": Command("serve", "Ray Serve: one frozen backbone, many adapters, POST /predict on 127.0.0.1",
                     arguments.add_serve),
}

# Expected problems (bad config or data, wrong backbone): a message, not a traceback. A command module adds
# its stage's own in USER_ERRORS (e.g. TrackingError: MLflow unreachable).
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, ValueError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipt-ray", description="Instance-wise Prompt Tuning experiments on Ray")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The package's one import by name: a command module imports its stage (torch, ray, mlflow) at its top,
    # so only the command that runs pays for it and `ipt-ray validate` starts without any of them.
    command = importlib.import_module(f"ipt_ray.cli.{COMMANDS[args.command].module}")
    try:
        return int(command.run(args) or 0)
    except USER_ERRORS + getattr(command, "USER_ERRORS", ()) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
