"""``ipt-ray predict``: adapters (a folder, an MLflow run, a registered model) on a csv / jsonl file -> csv.

The output has the input's columns, then the pyfunc model's (:func:`ipt_ray.tracking.pyfunc.output_frame`):
``label`` and ``prob_<label>`` (the seeds' average with several seeds), each seed's ``seed_<s>_*``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm import tqdm

from ipt_ray.serve.sources import resolve_source
from ipt_ray.tracking.pyfunc import predict_frame
from ipt_ray.train.inference import load_adapters


def read_inputs(path: str | Path) -> pd.DataFrame:
    """A csv or jsonl file (by its suffix) as strings."""
    path = Path(path)
    if path.suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True, dtype=str)
    if path.suffix in (".csv", ".tsv"):
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if path.suffix == ".tsv" else ",")
    raise ValueError(f"{path}: expected a .csv, .tsv or .jsonl file")


def model_columns(frame: pd.DataFrame, model_fields: Sequence[str], text_fields: Sequence[str] | None) -> pd.DataFrame:
    """The columns the adapters read, named as they read them: ``text_fields`` (the input's own names, in
    the model's field order) or the model's fields themselves."""
    given = list(text_fields or model_fields)
    if len(given) != len(model_fields):
        raise ValueError(f"--text-fields names {len(given)} column(s); the adapters read {len(model_fields)}: "
                         f"{list(model_fields)}")
    missing = [c for c in given if c not in frame.columns]
    if missing:
        raise ValueError(f"input has no column(s) {missing}; it has {list(frame.columns)} "
                         f"(the adapters read {list(model_fields)}; map yours with --text-fields)")
    return frame[given].set_axis(list(model_fields), axis=1)


def predict_file(source: str, input_path: str | Path, output_path: str | Path, ensemble: bool = False,
                 text_fields: Sequence[str] | None = None, batch_size: int = 64, tracking_uri: str | None = None,
                 progress: bool = True) -> pd.DataFrame:
    """Predict every row of ``input_path`` into ``output_path`` (csv); returns the output frame."""
    backbone, loaded = load_adapters(resolve_source(source, ensemble, tracking_uri))
    adapters = sorted(loaded.values(), key=lambda a: a.seed)
    frame = read_inputs(input_path)
    inputs = model_columns(frame, adapters[0].text_fields, text_fields)
    with tqdm(total=len(frame), desc="predict", unit="row", disable=not progress) as bar:
        predicted = predict_frame(adapters, backbone, inputs, batch_size, bar.update)
    out = pd.concat([frame.reset_index(drop=True), predicted], axis=1)
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output_path, index=False)
    return out
