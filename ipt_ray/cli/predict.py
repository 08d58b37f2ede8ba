"""``ipt-ray predict MODEL --input FILE --output FILE``: a folder, MLflow run or registered model on new text."""

from __future__ import annotations

import argparse

from mlflow.exceptions import MlflowException

from ipt_ray.serve import predict_file

USER_ERRORS = (MlflowException,)  # an unknown run or model version: a message, not a traceback


def run(args: argparse.Namespace) -> int:
    fields = [f.strip() for f in args.text_fields.split(",")] if args.text_fields else None
    out = predict_file(args.model, args.input, args.output, ensemble=args.ensemble, text_fields=fields,
                       batch_size=args.batch_size, tracking_uri=args.tracking_uri, progress=not args.no_progress)
    print(f"predicted {len(out)} rows -> {args.output}")
    return 0
