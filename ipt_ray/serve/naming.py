"""The adapters ``ipt-ray serve`` loads: ``[NAME=]SOURCE`` arguments -> adapter name -> folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ipt_ray.serve.sources import resolve_source


def default_name(source: str) -> str:
    """``models:/rte/2`` -> ``rte-v2``; a folder -> its name; a run id -> its first 8 characters."""
    match = re.match(r"^models:/([^/]+)/(.+)$", source)
    if match:
        return f"{match.group(1)}-v{match.group(2)}"
    path = Path(source)
    return path.resolve().name if path.exists() else source[:8]


def named_adapters(specs: Sequence[str], ensemble: bool = False, tracking_uri: str | None = None,
                   cache: str | Path | None = None) -> dict[str, Path]:
    """Each ``[NAME=]SOURCE`` resolved (:func:`~ipt_ray.serve.sources.resolve_source`): ``NAME`` for a single
    adapter, ``NAME/seed_<s>`` for each seed of a source with several."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, _, source = spec.rpartition("=") if "=" in spec and not spec.startswith("models:/") else ("", "", spec)
        folders = resolve_source(source, ensemble, tracking_uri, cache)
        name = name or default_name(source)
        for seed, folder in folders.items():
            key = name if len(folders) == 1 else f"{name}/{seed}"
            if key in out:
                raise ValueError(f"two adapters named {key!r}; name them: NAME=SOURCE")
            out[key] = folder
    return out
