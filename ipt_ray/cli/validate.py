"""``ipt-ray validate CONFIG``: load an experiment YAML (with ``--set`` overrides) and say whether it is valid.

Imports only the config stage (pydantic, yaml): no torch, ray or mlflow.
"""

from __future__ import annotations

import argparse

import yaml

from ipt_ray.config import load_config


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    print(f"{args.config}: valid")
    if args.show:
        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return 0
