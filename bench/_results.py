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
