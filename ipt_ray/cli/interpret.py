"""``ipt-ray interpret ADAPTER``: nearest vocabulary tokens of an input's prompts; sentence vs prompt projection."""

from __future__ import annotations

import argparse
import sys

from ipt_ray.interpret import format_nearest, load_projection_data, nearest_tokens, projection_plot
from ipt_ray.model import load_adapter


def run(args: argparse.Namespace) -> int:
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
