"""``ipt-ray serve [NAME=]SOURCE ...``: the adapters on Ray Serve, one frozen backbone, HTTP on 127.0.0.1."""

from __future__ import annotations

import argparse

from mlflow.exceptions import MlflowException

from ipt_ray.serve import named_adapters
from ipt_ray.serve.deployment import serve_until_stopped
from ipt_ray.serve.service import Limits

USER_ERRORS = (MlflowException,)  # an unknown run or model version: a message, not a traceback


def run(args: argparse.Namespace) -> int:
    folders = named_adapters(args.adapters, ensemble=args.ensemble, tracking_uri=args.tracking_uri)
    for name, folder in folders.items():
        print(f"adapter {name}: {folder}", flush=True)
    serve_until_stopped(folders, host=args.host, port=args.port, limits=Limits(args.max_texts, args.max_chars),
                        max_batch_size=args.max_batch_size, batch_wait_s=args.batch_wait_ms / 1000.0,
                        num_cpus=args.num_cpus, out=lambda line: print(line, flush=True))
    return 0
