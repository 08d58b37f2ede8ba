"""The prompt-table checkpoint: ``prompt_table.safetensors`` + ``prompt_table_config.json`` in one folder;
the pretrained encoders: ``encoder_<type>/encoder.safetensors`` + ``encoder_config.json`` inside it.

:func:`ipt_ray.prompts.load_prompt_table` reads the table for ``method.table_init``, Encoder IPT the
encoders for ``method.encoder_init``; an artefact made for another backbone is refused at load time
(the JSON holds the backbone's identity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ipt_ray.backbone import PROMPT_TABLE, Backbone, save_artefact
from ipt_ray.backbone.artefacts import PROMPT_ENCODER
from ipt_ray.prompts.sources.encoder import table_fingerprint


def save_prompt_table(path: str | Path, table: torch.Tensor, backbone: Backbone, categories: Sequence[str],
                      heldout_accuracy: float, tensors: Mapping[str, torch.Tensor] | None = None,
                      **extra: Any) -> Path:
    """Write the ``[V, d]`` table (and the named ``tensors``) with a JSON config; returns the folder.

    The config holds the format tag, the backbone identity, ``categories``, ``heldout_accuracy`` and the
    JSON-able ``extra`` (history, confusion matrix, counts, ...).
    """
    weights = {"table": table.detach().cpu().float().contiguous(), **(tensors or {})}
    config = {"categories": list(categories), "heldout_accuracy": float(heldout_accuracy), **extra}
    return save_artefact(path, PROMPT_TABLE, weights, config, backbone.identity())


def save_prompt_encoder(path: str | Path, model: nn.Module, kind: str, hidden: int, table: torch.Tensor,
                        table_folder: str | Path, backbone: Backbone, categories: Sequence[str],
                        heldout_accuracy: float, **extra: Any) -> Path:
    """Write an encoder classifier (``encoder.*`` body, ``head.*`` head; not its table) as a prompt-encoder
    artefact; returns the folder.

    The config holds the format tag, the backbone identity, ``encoder`` (type), ``hidden``, ``dim``, the
    ``table`` folder it read with the table's ``table_fingerprint`` (Encoder IPT refuses another table),
    ``categories``, ``heldout_accuracy`` and the JSON-able ``extra``.
    """
    weights = {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "head."))}
    config = {"encoder": kind, "hidden": int(hidden), "dim": int(table.shape[1]), "table": str(table_folder),
              "table_fingerprint": table_fingerprint(table), "categories": list(categories),
              "heldout_accuracy": float(heldout_accuracy), **extra}
    return save_artefact(path, PROMPT_ENCODER, weights, config, backbone.identity())
