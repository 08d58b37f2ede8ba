"""A :class:`~ipt_ray.report.table.PaperTable` as Markdown (with its notes) and CSV, through the results'
table renderer (``ipt_ray.results.markdown_lines`` / ``write_csv``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ipt_ray.report.labels import METRIC_NAMES, task_name, task_order
from ipt_ray.report.published import SOURCES, PaperValue, paper_value
from ipt_ray.report.table import Cell, PaperTable
from ipt_ray.results import display_str, fmt_value, markdown_lines, mean_std_text, write_csv


def _cell_text(c: Cell | None, pct: bool, seeds: int, folds: int) -> str:
    if c is None or not c.n_seeds:
        return "-"
    notes = []
    if c.n_seeds < seeds:
        notes.append(f"n={c.n_seeds}")
    if c.n_folds and c.n_folds < folds:
        notes.append(f"{c.n_folds} folds")
    return mean_std_text(c.mean, c.std, pct) + (f" ({', '.join(notes)})" if notes else "")


def _most_seeds_and_folds(table: PaperTable) -> tuple[int, int]:
    """The most seeds and folds any cell has: cells with fewer are marked."""
    return (max((c.n_seeds for c in table.cells.values()), default=0),
            max((c.n_folds for c in table.cells.values()), default=0))


def _column_name(table: PaperTable, task: str) -> str:
    metric = table.metrics[task]
    name = task_name(task)
    return name if metric == "accuracy" else f"{name} ({METRIC_NAMES.get(metric, metric)})"


def _averages(table: PaperTable) -> dict[str, float]:
    """Row mean over tasks, for rows with a value in every task column (only if the table has >1 task)."""
    if len(table.tasks) < 2:
        return {}
    out = {}
    for m in table.methods:
        row = [table.cell(m, t) for t in table.tasks]
        if all(c is not None and c.n_seeds for c in row):
            out[m] = math.fsum(c.mean for c in row) / len(row)  # type: ignore[union-attr]
    return out


def _quoted(table: PaperTable) -> dict[tuple[str, str], PaperValue]:
    """The published number of each (method, task) that has one."""
    out = {}
    for m in table.methods:
        for t in table.tasks:
            v = paper_value(m, t, table.metrics[t], table.settings.get(t, "full"))
            if v is not None:
                out[(m, t)] = v
    return out


def _markdown_rows(table: PaperTable, quoted: dict[tuple[str, str], PaperValue], mark: dict[str, int],
                   averages: dict[str, float]) -> list[list[str]]:
    """One row of text cells per method: ``mean ± std`` (bold: the task's best), quotes, the average."""
    seeds, folds = _most_seeds_and_folds(table)
    quoted_tasks = {t for _, t in quoted}
    best_avg = (max if table.mode == "max" else min)(averages.values()) if averages else None
    rows = []
    for m in table.methods:
        row = [m]
        for t in table.tasks:
            c = table.cell(m, t)
            text = _cell_text(c, table.pct[t], seeds, folds)
            row.append(f"**{text}**" if c is not None and c.best and c.n_seeds else text)
            if t in quoted_tasks:
                v = quoted.get((m, t))
                row.append(f"{v.value:.1f} [{mark[v.source]}]" if v else "")
        if averages:
            a = averages.get(m)
            text = "-" if a is None else fmt_value(a, all(table.pct.values()))
            row.append(f"**{text}**" if a is not None and a == best_avg else text)
        rows.append(row)
    return rows


def to_markdown(table: PaperTable, title: str | None = None) -> str:
    """The methods x tasks table in Markdown: ``mean ± std`` (percent for accuracy-like metrics), the best
    per task in bold, "(paper)" columns with quoted numbers where any exist, and the notes under it."""
    quoted = _quoted(table)
    sources = sorted({v.source for v in quoted.values()}, key=list(SOURCES).index)
    mark = {s: i + 1 for i, s in enumerate(sources)}
    quoted_tasks = {t for _, t in quoted}
    averages = _averages(table)
    header = ["method"]
    for t in table.tasks:
        header.append(_column_name(table, t))
        if t in quoted_tasks:
            header.append(f"{task_name(t)} (paper)")
    if averages:
        header.append("avg")
    lines = [f"### {title}", ""] if title else []
    lines += markdown_lines(header, _markdown_rows(table, quoted, mark, averages))
    seeds, folds = _most_seeds_and_folds(table)
    lines += [""] + [f"- {n}" for n in _notes(table, seeds, folds, bool(quoted))]
    for s in sources:
        src = SOURCES[s]
        lines.append(f"- [{mark[s]}] {src.citation}; {src.url}. {src.note}.")
    return "\n".join(lines) + "\n"


def _notes(table: PaperTable, seeds: int, folds: int, quoted: bool) -> list[str]:
    metrics = sorted(set(table.metrics.values()))
    metric_words = (metrics[0] if len(metrics) == 1 else
                    "metric (" + ", ".join(f"{task_name(t)}: {table.metrics[t]}" for t in table.tasks) + ")")
    epoch = "the epoch with the best seed mean" if table.epoch == "best" else "the last epoch"
    notes = [f"Dev {metric_words} at {epoch}, mean ± sample std over {seeds} seed(s)"
             + (" in %" if any(table.pct.values()) else "") + "; n=... marks cells with fewer seeds."]
    if folds:
        notes.append(f"Few-shot cells: each seed's value is its mean over {folds} cross-validation folds "
                     "(dev = the fold's held-out part of the K-shot training set, not the test set).")
    if table.selected_over:
        notes.append("Each cell is the best configuration on the dev mean over: "
                     + ", ".join(f"`{k}`" for k in table.selected_over) + " (see the CSV for the values).")
    notes.append(f"**Bold**: best per task{' (and of the avg column)' if len(table.tasks) > 1 else ''}"
                 + (" (mode min)" if table.mode == "min" else "") + ".")
    ours = ", ".join(table.backbones) or "?"
    if quoted:
        notes.append(f"'(paper)' columns quote published numbers (not reproduced here; see the sources below), "
                     f"on roberta-large; ours: {ours}.")
    else:
        notes.append(f"Backbone: {ours}. No published numbers are on file for these cells "
                     "(`ipt_ray.report.PAPER_VALUES`), so no '(paper)' column is shown.")
    return notes + table.notes


def table_title(table: PaperTable) -> str:
    setting = sorted(set(table.settings.values()))
    kind = {"full": "full data", "few-shot": "few-shot"}
    return (f"Methods x tasks ({', '.join(kind.get(s, s) for s in setting)}; "
            f"{', '.join(table.backbones) or 'backbone ?'})")


def to_csv(table: PaperTable, path: str | Path) -> Path:
    """One row per cell: method, task, (x), metric, mean, std, seeds, folds, best, per-seed values (JSON),
    the selected hyper-parameters (JSON), config ids, and the quoted number with its source."""
    seeds = sorted({s for c in table.cells.values() for s in c.values})
    header = ["method", "task", *([table.x_key] if table.x_key else []), "metric", "setting", "mean", "std",
              "n_seeds", "n_folds", "best", *(f"seed_{s}" for s in seeds), "hyper_params", "config_ids",
              "paper_value", "paper_source"]
    rows = []
    for key in sorted(table.cells, key=lambda k: (table.methods.index(k[0]), task_order(k[1]), str(k[2]))):
        c = table.cells[key]
        setting = table.settings.get(c.task, "full")
        v = paper_value(c.method, c.task, c.metric, setting)
        rows.append([c.method, c.task, *([display_str(c.x)] if table.x_key else []), c.metric, setting,
                     repr(c.mean), repr(c.std), c.n_seeds, c.n_folds, int(c.best),
                     *(repr(c.values[s]) if s in c.values else "" for s in seeds),
                     json.dumps({k: c.hyper[k] for k in sorted(c.hyper)}, default=str), ";".join(c.config_ids),
                     "" if v is None else v.value,
                     "" if v is None else f"{SOURCES[v.source].citation}; {SOURCES[v.source].url}"])
    return write_csv(path, header, rows)
