"""The table renderer (Markdown, console, CSV) and the number formats every results table uses.

:func:`markdown_lines`, :func:`console_table` and :func:`write_csv` render any header + rows of text;
the sweep results table (:func:`to_markdown`, :func:`render_console`, :func:`to_csv` / :func:`read_csv`)
and the paper tables (``ipt_ray.report``) are both made with them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Sequence

from ipt_ray.results.ids import display_str, param_str, parse_param
from ipt_ray.results.summaries import ConfigSummary, Mode, SweepSummary

_FIXED_CSV = ("config_id", "best", "status", "n_seeds")
BEST_MARK = "★ "


# ---------------------------------------------------------------- formats


def is_fraction(metric: str, values: Iterable[float]) -> bool:
    """Accuracy-like metrics (all values in [0, 1], not a loss) are shown in percent, as papers do."""
    values = list(values)
    return "loss" not in metric and bool(values) and all(0.0 <= v <= 1.0 for v in values)


def fmt_value(x: float, pct: bool) -> str:
    """A metric value: ``-`` when not finite, percent with one decimal, else 4 significant digits."""
    if not math.isfinite(x):
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.4g}"


def mean_std_text(mean: float, std: float, pct: bool) -> str:
    """``mean ± std`` in :func:`fmt_value`'s format."""
    return f"{fmt_value(mean, pct)} ± {fmt_value(std, pct)}"


# ---------------------------------------------------------------- the renderer


def markdown_lines(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table's lines; ``|`` inside row cells is escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def console_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width table for the terminal: columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(x.ljust(w) for x, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]) + "\n"


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """A UTF-8 CSV file of ``header`` and ``rows``."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- the sweep results table


def shows_percent(summary: SweepSummary) -> bool:
    """Whether the summary's values are shown in percent (:func:`is_fraction` over all its values)."""
    return is_fraction(summary.metric, (v for c in summary.configs for v in c.values.values()))


def _fmt_mean_std(c: ConfigSummary, pct: bool) -> str:
    return "-" if c.n_seeds == 0 else mean_std_text(c.mean, c.std, pct)


def _param_columns(summary: SweepSummary) -> list[str]:
    """Params that vary across configs (the informative ones); all of them when nothing varies."""
    keys = sorted({k for c in summary.configs for k in c.params})
    varying = [k for k in keys if len({param_str(c.params.get(k, "")) for c in summary.configs}) > 1]
    return varying or keys


def _rows(summary: SweepSummary) -> tuple[list[str], list[list[str]]]:
    """Header and text cells shared by the Markdown and the console tables."""
    pct = shows_percent(summary)
    keys = _param_columns(summary)
    header = ["config", *keys, "seeds", f"{summary.metric} mean ± std" + (" (%)" if pct else ""), "status"]
    rows = [[c.config_id, *(display_str(c.params.get(k, "")) for k in keys), str(c.n_seeds),
             _fmt_mean_std(c, pct), c.status] for c in summary.configs]
    return header, rows


def to_markdown(summary: SweepSummary) -> str:
    """A Markdown table, best config first; the best row is bold and starred."""
    header, rows = _rows(summary)
    for c, cells in zip(summary.configs, rows):
        if c.best:
            cells[:] = [f"**{x}**" for x in [BEST_MARK + cells[0], *cells[1:]]]
    return "\n".join(markdown_lines(header, rows)) + "\n"


def render_console(summary: SweepSummary) -> str:
    """The Markdown table's content as a fixed-width table for the terminal; the best row is starred."""
    header, rows = _rows(summary)
    rows = [[(BEST_MARK if c.best else "  ") + cells[0], *cells[1:]] for c, cells in zip(summary.configs, rows)]
    return console_table(["  " + header[0], *header[1:]], rows)


def to_csv(summary: SweepSummary, path: str | Path) -> Path:
    """One row per config: id, best flag, status, n, ``<metric>_mean``/``_std``, params, ``seed_<s>``, trials.

    Floats are written in full precision (``repr``) so that :func:`read_csv` gives the same numbers.
    """
    keys = sorted({k for c in summary.configs for k in c.params})
    seeds = summary.seeds
    m = summary.metric
    header = [*_FIXED_CSV, f"{m}_mean", f"{m}_std", *keys, *(f"seed_{s}" for s in seeds), "trial_ids"]
    rows = ([c.config_id, int(c.best), c.status, c.n_seeds, repr(c.mean), repr(c.std),
             *(display_str(c.params[k]) if k in c.params else "" for k in keys),
             *(repr(c.values[s]) if s in c.values else "" for s in seeds),
             ";".join(c.trial_ids)] for c in summary.configs)
    return write_csv(path, header, rows)


def read_csv(path: str | Path, mode: Mode = "max") -> SweepSummary:
    """Read a :func:`to_csv` file back (the metric from the ``*_mean`` column, best flag as written)."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    mean_col = next(c for c in columns if c.endswith("_mean") and c not in _FIXED_CSV)
    metric = mean_col[: -len("_mean")]
    std_col = f"{metric}_std"
    seed_cols = [c for c in columns if c.startswith("seed_") and c[5:].isdigit()]
    param_cols = [c for c in columns if c not in {*_FIXED_CSV, mean_col, std_col, "trial_ids", *seed_cols}]
    configs = [ConfigSummary(
        config_id=r["config_id"],
        trial_ids=[t for t in r["trial_ids"].split(";") if t],
        params={k: parse_param(r[k]) for k in param_cols if r[k] != ""},
        values={int(c[5:]): float(r[c]) for c in seed_cols if r[c] != ""},
        mean=float(r[mean_col]),
        std=float(r[std_col]),
        n_seeds=int(r["n_seeds"]),
        status=r["status"],
        best=r["best"] == "1",
    ) for r in rows]
    return SweepSummary(metric=metric, mode=mode, configs=configs)
