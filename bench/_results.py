"""Where every benchmark leaves its results: a Markdown table beside the raw figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


# Below this line a results file holds what a person wrote about the numbers: a rewrite keeps it.
READING_MARKER = "<!-- reading: written by hand, kept when the benchmark rewrites the table above -->"


def write_results(out: str | Path, lines: list[str], data: Any) -> Path:
    """``lines`` as ``out`` (Markdown) and ``data`` beside it (JSON); a hand-written reading already in ``out``
    (from :data:`READING_MARKER` on) stays at its end."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text() if out.is_file() else ""
    reading = previous[previous.index(READING_MARKER):] if READING_MARKER in previous else ""
    out.write_text("\n".join(lines) + "\n" + ("\n" + reading if reading else ""))
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


def row_variant(row: dict[str, Any]) -> str:
    """What tells a ``bench.scale`` row apart from another of the same size: ``" in Tune runs of N"`` and
    ``" (code <commit>)"`` where the row has them (the same size measured on two commits)."""
    runs = f" in Tune runs of {row['trials_per_run']}" if row.get("trials_per_run") else ""
    if row.get("fresh_process_per_run") is not None:  # rows before it had all runs in one process
        runs += ", a fresh driver process each" if row["fresh_process_per_run"] else ", one driver process"
    return runs + (f" (code {row['code']})" if row.get("code") else "")
