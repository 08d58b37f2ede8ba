"""The table renderer (Markdown, console, CSV) and the number formats every results table uses.

:func:`markdown_lines`, :func:`console_table` and :func:`write_csv` render any header + rows of text;
the sweep results table (:func:`to_markdown`, :func:`render_console`, :func:`to_csv` / :func:`read_csv`)
and the paper tables (``ipt_ray.report``) are both made with them.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

from ipt_ray.results.ids import display_str, param_str, parse_param
from ipt_ray.results.summaries import ConfigSummary, Mode, SweepSummary, chosen_text

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
    """Whether the summary's values are shown in percent (:func:`is_fraction` over all its dev and test values)."""
    values = (v for c in summary.configs for v in [*c.values.values(), *c.test_values.values()])
    return is_fraction(summary.metric, values)


def _fmt_mean_std(c: ConfigSummary, pct: bool) -> str:
    return "-" if c.n_seeds == 0 else mean_std_text(c.mean, c.std, pct)


def _fmt_test(c: ConfigSummary, pct: bool) -> str:
    return "-" if not c.test_values else mean_std_text(c.test_mean, c.test_std, pct)


def _param_columns(summary: SweepSummary) -> list[str]:
    """Params that vary across configs (the informative ones); all of them when nothing varies."""
    keys = sorted({k for c in summary.configs for k in c.params})
    varying = [k for k in keys if len({param_str(c.params.get(k, "")) for c in summary.configs}) > 1]
    return varying or keys


def _rows(summary: SweepSummary) -> tuple[list[str], list[list[str]]]:
    """Header and text cells shared by the Markdown and the console tables. With test values the value
    columns say their split: ``dev <metric>`` (what ranks the configs) and ``test <metric>`` (at the same
    epochs, reported only)."""
    pct = shows_percent(summary)
    keys = _param_columns(summary)
    unit = " mean ± std" + (" (%)" if pct else "")
    test = summary.has_test
    values = [f"dev {summary.metric}{unit}", f"test {summary.metric}{unit}"] if test else [f"{summary.metric}{unit}"]
    chosen = any(c.chosen for c in summary.configs)  # few-shot: selection chose per data seed
    header = ["config", *keys, *(["chosen per seed"] if chosen else []), "seeds", *values, "status"]
    rows = [[c.config_id, *(display_str(c.params.get(k, "")) for k in keys), *([chosen_text(c.chosen)] if chosen else []),
             str(c.n_seeds), _fmt_mean_std(c, pct), *([_fmt_test(c, pct)] if test else []), c.status]
            for c in summary.configs]
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
    """One row per config: id, best flag, status, n, ``<metric>_mean``/``_std`` (dev), params, ``seed_<s>``,
    trials; with test values also ``test_<metric>_mean``/``_std`` and ``test_seed_<s>``.

    Floats are written in full precision (``repr``) so that :func:`read_csv` gives the same numbers.
    """
    keys = sorted({k for c in summary.configs for k in c.params})
    seeds, test_seeds = summary.seeds, summary.test_seeds if summary.has_test else []
    m = summary.metric
    test_means = [f"test_{m}_mean", f"test_{m}_std"] if summary.has_test else []
    chosen = ["chosen"] if any(c.chosen for c in summary.configs) else []  # JSON: seed -> chosen values
    header = [*_FIXED_CSV, f"{m}_mean", f"{m}_std", *test_means, *keys, *(f"seed_{s}" for s in seeds),
              *(f"test_seed_{s}" for s in test_seeds), *chosen, "trial_ids"]
    rows = ([c.config_id, int(c.best), c.status, c.n_seeds, repr(c.mean), repr(c.std),
             *([repr(c.test_mean), repr(c.test_std)] if test_means else []),
             *(display_str(c.params[k]) if k in c.params else "" for k in keys),
             *(repr(c.values[s]) if s in c.values else "" for s in seeds),
             *(repr(c.test_values[s]) if s in c.test_values else "" for s in test_seeds),
             *([json.dumps({str(s): v for s, v in c.chosen.items()}, sort_keys=True)] if chosen else []),
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
    test_cols = [c for c in (f"test_{metric}_mean", f"test_{metric}_std") if c in columns]
    seed_cols = [c for c in columns if c.startswith("seed_") and c[5:].isdigit()]
    test_seed_cols = [c for c in columns if c.startswith("test_seed_") and c[10:].isdigit()]
    param_cols = [c for c in columns if c not in {*_FIXED_CSV, mean_col, std_col, *test_cols, "trial_ids", "chosen",
                                                  *seed_cols, *test_seed_cols}]
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
        test_values={int(c[10:]): float(r[c]) for c in test_seed_cols if r[c] != ""},
        test_mean=float(r[test_cols[0]]) if test_cols else math.nan,
        test_std=float(r[test_cols[1]]) if test_cols else math.nan,
        chosen={int(k): v for k, v in json.loads(r.get("chosen") or "{}").items()},
    ) for r in rows]
    return SweepSummary(metric=metric, mode=mode, configs=configs)
