"""Where every benchmark leaves its results: a Markdown table beside the raw figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(out: str | Path, lines: list[str], data: Any) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(data, indent=2))
    print("\n".join(lines))
    return out


def slot_overhead_s(row: dict[str, Any]) -> float | None:
    """A ``bench.scale`` row's slot-seconds per trial beyond the trials' own time: (wall x slots - own
    time) / trials, with slots = own time / ideal. None for a killed and resumed sweep (no ideal)."""
    if row["killed_and_resumed"]:
        return None
    slots = row["trial_time_s"] / row["ideal_s"]
    return round((row["sweep_wall_s"] * slots - row["trial_time_s"]) / row["trials"], 2)
