"""One MLflow run per pretraining, through the client setup the sweeps use (:mod:`ipt_ray.tracking`)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ipt_ray.config import ExperimentConfig
from ipt_ray.data import Corpus
from ipt_ray.tracking import log_metrics, log_params, open_experiment

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


class PretrainTracker:
    """An MLflow run: params, per-epoch metrics, text artifacts, the end status (``MlflowClient`` only)."""

    def __init__(self, uri: str, experiment: str, run_name: str, tags: dict[str, str]):
        self.client, exp_id = open_experiment(uri, experiment)  # checks the server, finds or creates the experiment
        self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id

    def params(self, values: dict[str, Any]) -> None:
        log_params(self.client, self.run_id, {k: str(v)[:MAX_PARAM_CHARS] for k, v in values.items()})

    def metrics(self, values: dict[str, float], step: int) -> None:
        log_metrics(self.client, self.run_id, values, step)

    def artifacts(self, files: dict[str, str]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                (Path(tmp) / name).write_text(text)
                self.client.log_artifact(self.run_id, str(Path(tmp) / name))

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def pretrain_params(cfg: ExperimentConfig, corpus: Corpus, n_train: int, n_heldout: int) -> dict[str, Any]:
    """The run's params: the pretrain section (sources as JSON), the backbone and the corpus sizes."""
    p = cfg.pretrain
    params: dict[str, Any] = {f"pretrain.{k}": v for k, v in p.model_dump(mode="json").items() if k != "sources"}
    params["pretrain.sources"] = json.dumps([s.model_dump(mode="json", exclude_none=True) for s in p.sources])
    params.update({"backbone.name": cfg.backbone.name, "corpus_rows": len(corpus), "train_rows": n_train,
                   "heldout_rows": n_heldout, "num_categories": len(corpus.categories)})
    return params


def confusion_csv(cm: np.ndarray, categories: Sequence[str]) -> str:
    """The ``[C, C]`` confusion matrix as CSV, rows the true category."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["true \\ predicted", *categories])
    for name, row in zip(categories, cm):
        writer.writerow([name, *(int(v) for v in row)])
    return out.getvalue()
