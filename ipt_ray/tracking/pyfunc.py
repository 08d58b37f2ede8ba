"""The MLflow pyfunc model of a config: its seeds' adapters over the backbone named in their config.

In: a pandas DataFrame with the task's text columns. Out: one row per input with ``label`` (the seeds'
ensemble: argmax of the averaged probabilities), ``prob_<label>`` (that average) and each seed's own
``seed_<s>_label`` / ``seed_<s>_prob_<label>``. The model folder holds the adapters (safetensors + JSON)
only: the backbone is loaded by the alias, hub name or path its config names, never copied.

It lives here, below the sweep driver that logs it, and is what ``ipt_ray.serve`` loads too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from ipt_ray.backbone import ADAPTER, inspect_artefact
from ipt_ray.config import as_config
from ipt_ray.data import task_spec

if TYPE_CHECKING:
    from ipt_ray.train.inference import LoadedAdapter

MODEL_ARTIFACT = "model"  # the aggregate run's artifact folder that holds the pyfunc model
SEED_ARTIFACT = "seed_{seed}"  # each seed's adapter folder among the model's artifacts
MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")  # models from code: no pickle in the model folder


class AdapterEnsembleModel(mlflow.pyfunc.PythonModel):
    """One config's seed adapters as an MLflow pyfunc model (stateless until ``load_context``)."""

    def load_context(self, context: Any) -> None:
        # torch and the backbone load where the model does: the sweep's driver only writes the folder.
        from ipt_ray.train.inference import load_adapters

        folders = {name: context.artifacts[name] for name in sorted(context.artifacts)}
        self.backbone, loaded = load_adapters(folders)
        self.adapters = sorted(loaded.values(), key=lambda a: a.seed)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        batch_size = int((params or {}).get("batch_size", 64))
        return predict_frame(self.adapters, self.backbone, model_input, batch_size)


def predict_frame(adapters: Sequence[LoadedAdapter], backbone: Any, frame: pd.DataFrame, batch_size: int = 64,
                  progress: Any = None) -> pd.DataFrame:
    """The model's output frame for ``frame`` (see the module docstring)."""
    from ipt_ray.train.inference import ensemble_probabilities  # torch: where the model predicts

    fields = adapters[0].text_fields
    missing = [f for f in fields if f not in frame.columns]
    if missing:
        raise ValueError(f"input lacks the text column(s) {missing}; the model reads {list(fields)}")
    records = frame[list(fields)].astype(str).to_dict("records")
    probs = ensemble_probabilities(backbone, adapters, records, batch_size, progress)  # [S, N, C]
    return output_frame(adapters, probs)


def output_frame(adapters: Sequence[LoadedAdapter], probs: np.ndarray) -> pd.DataFrame:
    """``probs`` ``[S, N, C]`` as the output columns: ensemble first, then each seed's."""
    labels = adapters[0].label_names
    mean = probs.mean(axis=0)
    columns: dict[str, Any] = {"label": [labels[i] for i in mean.argmax(-1)]}
    columns.update({f"prob_{c}": mean[:, j] for j, c in enumerate(labels)})
    for adapter, p in zip(adapters, probs):
        columns[f"seed_{adapter.seed}_label"] = [labels[i] for i in p.argmax(-1)]
        columns.update({f"seed_{adapter.seed}_prob_{c}": p[:, j] for j, c in enumerate(labels)})
    return pd.DataFrame(columns)


def model_signature(text_fields: Sequence[str], label_names: Sequence[str], seeds: Sequence[int]) -> ModelSignature:
    outputs = [ColSpec("string", "label"), *(ColSpec("double", f"prob_{c}") for c in label_names)]
    for s in seeds:
        outputs += [ColSpec("string", f"seed_{s}_label"), *(ColSpec("double", f"seed_{s}_prob_{c}") for c in label_names)]
    return ModelSignature(inputs=Schema([ColSpec("string", f) for f in text_fields]), outputs=Schema(outputs))


def requirements() -> list[str]:
    try:
        return [f"ipt-ray=={version('ipt-ray')}"]
    except PackageNotFoundError:  # a source checkout that is not installed
        return ["ipt-ray"]


def save_model_folder(path: str | Path, seed_folders: Mapping[int, str | Path]) -> Path:
    """Write the pyfunc model of ``seed_folders`` (seed -> adapter folder) to ``path``; returns ``path``.

    The adapters are read once here, for the signature's fields and labels (the backbone is not loaded).
    """
    first = inspect_artefact(next(iter(seed_folders.values())), ADAPTER).config
    spec = task_spec(as_config(first["config"]).task, first["label_names"])
    example = pd.DataFrame({f: [f"an example {f}"] for f in spec.text_fields})
    artifacts = {SEED_ARTIFACT.format(seed=s): str(folder) for s, folder in sorted(seed_folders.items())}
    mlflow.pyfunc.save_model(
        str(path), python_model=str(MODEL_CODE), artifacts=artifacts,
        signature=model_signature(spec.text_fields, first["label_names"], sorted(seed_folders)),
        input_example=example, pip_requirements=requirements())
    return Path(path)
