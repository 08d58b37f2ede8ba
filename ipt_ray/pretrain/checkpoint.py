"""The prompt-table checkpoint: ``prompt_table.safetensors`` + ``prompt_table_config.json`` in one folder.

:func:`ipt_ray.prompts.load_prompt_table` reads it for ``method.table_init``; a checkpoint made
for another backbone is refused at load time (the JSON holds the backbone's identity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ipt_ray.backbone import PROMPT_TABLE, Backbone, save_artefact


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
