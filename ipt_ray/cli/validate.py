"""``ipt-ray validate CONFIG``: load an experiment YAML (with ``--set`` overrides) and say whether it is valid.

Valid means the base config and every config its search space can produce (each value alone, then the
combinations, as ``ipt-ray sweep`` checks them before it starts). Imports only the config stage (pydantic,
yaml): no torch, ray or mlflow; the data, backbone and files are ``sweep``'s preflight.
"""

from __future__ import annotations

import argparse

import yaml

from ipt_ray.config import load_config, sweep_variants


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    configs = len(sweep_variants(cfg))  # the base included
    searched = f" (with its search space: {configs} configs checked)" if cfg.sweep.search_space else ""
    print(f"{args.config}: valid{searched}")
    if args.show:
        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return 0
