"""How much of a task a frozen backbone's last layer already separates: a linear probe on its features.

For each task: the backbone (frozen, as the prompt methods see it) encodes train and validation as the
classifier head's input (one pair per example, ``task.max_length`` tokens), and a logistic regression
(scikit-learn, C in ``--c``) is fitted on train's features and scored on validation, for two readouts of
the last layer: the first position (what ``method.head: classifier`` reads) and the mean over the input
tokens (the pooling sentence-embedding models such as all-MiniLM-L6-v2 were trained with).

A probe near the majority class says the frozen last layer does not separate the task linearly: a prompt
method must then change what the backbone computes, not only read it (issue 11's RTE regime).
Usage: python -m bench.frozen_probe [--tasks rte cb] [--backbone minilm-l6] [--out bench/results/frozen_probe.md]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench._results import write_results
from ipt_ray.backbone.loading import load_backbone
from ipt_ray.batches.encoding import tokenize_records
from ipt_ray.config.sections import BackboneConfig
from ipt_ray.data import get_task, load_task
from ipt_ray.prompts.encoders import masked_mean


@torch.no_grad()
def features(backbone: Any, spec: Any, records: list[dict[str, Any]], max_length: int,
             batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(first position [N, d], masked mean over the input tokens [N, d])`` of the last layer."""
    first, mean = [], []
    for start in range(0, len(records), batch_size):
        enc = tokenize_records(records[start:start + batch_size], spec, backbone.tokenizer, max_length, template=False)
        padded = backbone.tokenizer.pad({k: v for k, v in enc.items() if k != "special_tokens_mask"},
                                        return_tensors="pt")
        hidden = backbone.encoder(**padded).last_hidden_state  # [B, n, d]
        first.append(hidden[:, 0])
        mean.append(masked_mean(hidden, padded["attention_mask"]))
    return torch.cat(first).numpy(), torch.cat(mean).numpy()


def probe(task: str, backbone: Any, max_length: int, cs: list[float]) -> list[dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression  # heavy: only here

    spec, data = get_task(task), load_task(task)
    train, validation = list(data["train"]), list(data["validation"])
    y_train = np.array([r["label"] for r in train])
    y_validation = np.array([r["label"] for r in validation])
    majority = Counter(y_validation.tolist()).most_common(1)[0][1] / len(y_validation)
    t0 = time.perf_counter()
    train_first, train_mean = features(backbone, spec, train, max_length)
    validation_first, validation_mean = features(backbone, spec, validation, max_length)
    encode_s = time.perf_counter() - t0
    rows = []
    readouts = (("first position", train_first, validation_first), ("mean", train_mean, validation_mean))
    for readout, x_train, x_validation in readouts:
        for c in cs:
            clf = LogisticRegression(C=c, max_iter=5000).fit(x_train, y_train)
            rows.append({"task": task, "readout": readout, "C": c, "train_examples": len(train),
                         "train_accuracy": float(clf.score(x_train, y_train)),
                         "validation_accuracy": float(clf.score(x_validation, y_validation)),
                         "validation_majority": majority, "encode_s": encode_s})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["rte", "cb"])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--c", type=float, nargs="+", default=[0.1, 1.0, 10.0], help="inverse L2 strengths")
    parser.add_argument("--out", default="bench/results/frozen_probe.md")
    args = parser.parse_args()
    backbone = load_backbone(BackboneConfig(name=args.backbone))
    backbone.encoder.eval()
    rows = [row for task in args.tasks for row in probe(task, backbone, args.max_length, args.c)]
    command = (f"python -m bench.frozen_probe --tasks {' '.join(args.tasks)} --backbone {args.backbone} "
               f"--max-length {args.max_length} --c {' '.join(f'{c:g}' for c in args.c)}")
    lines = [f"`{command}`: a logistic "
             f"regression on the frozen backbone's last layer ({args.max_length} tokens), fitted on train, scored on "
             "validation.", "",
             "| task | readout | C | train examples | train acc | validation acc | validation majority |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['readout']} | {r['C']:g} | {r['train_examples']} | {100 * r['train_accuracy']:.1f} | "
              f"{100 * r['validation_accuracy']:.1f} | {100 * r['validation_majority']:.1f} |" for r in rows]
    write_results(Path(args.out), lines, rows)


if __name__ == "__main__":
    main()
