"""``ipt-ray validate-cluster FILE...``: offline checks of Ray launcher YAMLs and KubeRay RayJobs."""

from __future__ import annotations

import argparse
import sys

from ipt_ray.clusters import validate_cluster_file


def run(args: argparse.Namespace) -> int:
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
