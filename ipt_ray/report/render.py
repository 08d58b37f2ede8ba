"""A :class:`~ipt_ray.report.table.PaperTable` as Markdown (with its notes) and CSV, through the results'
table renderer (``ipt_ray.results.markdown_lines`` / ``write_csv``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ipt_ray.report.differences import Comparison, compare
from ipt_ray.report.labels import METRIC_NAMES, task_name, task_order
from ipt_ray.report.published import PAPER, SOURCES, other_published
from ipt_ray.report.table import Cell, CellKey, PaperTable
from ipt_ray.results import chosen_text, display_str, fmt_value, markdown_lines, mean_std_text, write_csv


def _cell_text(c: Cell | None, pct: bool, seeds: int, folds: int) -> str:
    if c is None or not c.n_seeds:
        return "-"
    notes = []
    if c.n_seeds < seeds:
        notes.append(f"n={c.n_seeds}")
    if c.n_folds and c.n_folds < folds:
        notes.append(f"{c.n_folds} folds")
    return mean_std_text(c.mean, c.std, pct) + (f" ({', '.join(notes)})" if notes else "")


def _test_text(c: Cell | None, pct: bool) -> str:
    """A cell's test ``mean ± std`` (``n=...`` when fewer seeds have a test value than a dev one)."""
    if c is None or not c.test_values:
        return "-"
    fewer = f" (n={len(c.test_values)})" if len(c.test_values) < c.n_seeds else ""
    return mean_std_text(c.test_mean, c.test_std, pct) + fewer


def _most_seeds_and_folds(table: PaperTable) -> tuple[int, int]:
    """The most seeds and folds any cell has: cells with fewer are marked."""
    return (max((c.n_seeds for c in table.cells.values()), default=0),
            max((c.n_folds for c in table.cells.values()), default=0))


def _column_name(table: PaperTable, task: str, split: str = "") -> str:
    """``CB``, ``MultiRC (F1a)``; with ``split``: ``CB dev``, ``MultiRC test (F1a)``."""
    metric = table.metrics[task]
    name = task_name(task) + (f" {split}" if split else "")
    return name if metric == "accuracy" else f"{name} ({METRIC_NAMES.get(metric, metric)})"


def _averages(table: PaperTable, test: bool = False) -> dict[str, float]:
    """Row mean over tasks (of the test means with ``test``), for rows with a value in every task column
    (only if the table has >1 task)."""
    if len(table.tasks) < 2:
        return {}
    out = {}
    for m in table.methods:
        row = [table.cell(m, t) for t in table.tasks]
        if all(c is not None and (c.test_values if test else c.n_seeds) for c in row):
            out[m] = math.fsum(c.test_mean if test else c.mean for c in row) / len(row)  # type: ignore[union-attr]
    return out


def _letter(i: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"z{i}"


def _marks(comparisons: dict[CellKey, Comparison], table: PaperTable) -> dict[str, str]:
    """Difference text -> its footnote letter, in the order the table shows them (rows, then tasks)."""
    marks: dict[str, str] = {}
    for key in sorted(comparisons, key=lambda k: (table.methods.index(k[0]), task_order(k[1]), str(k[2]))):
        for d in comparisons[key].differences:
            marks.setdefault(d.text, _letter(len(marks)))
    return marks


def _paper_text(comparison: Comparison | None, marks: dict[str, str]) -> str:
    """``84.8 [a,b]``: the value as printed, and the letters of how our run differs."""
    if comparison is None:
        return ""
    letters = ",".join(marks[d.text] for d in comparison.differences)
    return comparison.value.printed + (f" [{letters}]" if letters else "")


def _paper_rows(comparisons: dict[CellKey, Comparison], method: str) -> str:
    """The paper's row label(s) of one of our rows: ``T2: Prefix Tuning``."""
    mine = sorted(((k, c) for k, c in comparisons.items() if k[0] == method), key=lambda kc: task_order(kc[0][1]))
    rows = [f"T{c.value.table}: {c.value.row}" for _, c in mine]
    return "; ".join(dict.fromkeys(rows))


def _markdown_rows(table: PaperTable, comparisons: dict[CellKey, Comparison], marks: dict[str, str],
                   averages: dict[str, float]) -> list[list[str]]:
    """One row of text cells per method: its paper row label(s) where any cell is compared, ``mean ± std``
    (bold: the task's best on dev), its test value where the table has them (never bold: test selects
    nothing), the paper's value with its difference letters, the average(s)."""
    seeds, folds = _most_seeds_and_folds(table)
    compared_tasks = {k[1] for k in comparisons}
    best_avg = (max if table.mode == "max" else min)(averages.values()) if averages else None
    test_averages = _averages(table, test=True) if table.has_test else {}
    rows = []
    for m in table.methods:
        row = [m] + ([_paper_rows(comparisons, m)] if comparisons else [])
        for t in table.tasks:
            c = table.cell(m, t)
            text = _cell_text(c, table.pct[t], seeds, folds)
            row.append(f"**{text}**" if c is not None and c.best and c.n_seeds else text)
            if table.has_test:
                row.append(_test_text(c, table.pct[t]))
            if t in compared_tasks:
                row.append(_paper_text(comparisons.get((m, t, None)), marks))
        if averages:
            a = averages.get(m)
            text = "-" if a is None else fmt_value(a, all(table.pct.values()))
            row.append(f"**{text}**" if a is not None and a == best_avg else text)
            if table.has_test:
                a = test_averages.get(m)
                row.append("-" if a is None else fmt_value(a, all(table.pct.values())))
        rows.append(row)
    return rows


def to_markdown(table: PaperTable, title: str | None = None) -> str:
    """The methods x tasks table in Markdown: ``mean ± std`` (percent for accuracy-like metrics), the best
    per task in bold, a test column beside each task's dev column where the sweep has test values, and,
    where a cell matches one the IPT paper printed, a "paper row" column (the paper's row label and table)
    and a "<task> paper" column (its value, with letters for how our run differs, explained below); the
    notes, then other papers' numbers in their own section."""
    comparisons = compare(table)
    marks = _marks(comparisons, table)
    compared_tasks = {k[1] for k in comparisons}
    averages = _averages(table)
    header = ["method"] + (["paper row"] if comparisons else [])
    for t in table.tasks:
        header += [_column_name(table, t, split) for split in (("dev", "test") if table.has_test else ("",))]
        if t in compared_tasks:
            header.append(f"{task_name(t)} paper")
    if averages:
        header += ["avg dev", "avg test"] if table.has_test else ["avg"]
    lines = [f"### {title}", ""] if title else []
    lines += markdown_lines(header, _markdown_rows(table, comparisons, marks, averages))
    seeds, folds = _most_seeds_and_folds(table)
    lines += [""] + [f"- {n}" for n in _notes(table, seeds, folds, bool(comparisons))]
    lines += [f"  - [{letter}] {text}." for text, letter in marks.items()]
    lines += _other_published_lines(table)
    return "\n".join(lines) + "\n"


def _other_published_lines(table: PaperTable) -> list[str]:
    """Other papers' numbers on these tasks, under their own names and sources (never in a paper column)."""
    quoted = other_published(table.tasks, table.settings)
    if not quoted:
        return []
    lines = ["", "Other published numbers (not the IPT paper's; under their own names, for context only):"]
    for source in dict.fromkeys(v.source for v in quoted):
        src = SOURCES[source]
        values = ", ".join(f"{v.name} {task_name(v.task)} {v.value:.1f}" for v in quoted if v.source == source)
        lines.append(f"- {values} ({src.citation}; {src.url}. {src.note}.)")
    return lines


def _notes(table: PaperTable, seeds: int, folds: int, quoted: bool) -> list[str]:
    metrics = sorted(set(table.metrics.values()))
    metric_words = (metrics[0] if len(metrics) == 1 else
                    "metric (" + ", ".join(f"{task_name(t)}: {table.metrics[t]}" for t in table.tasks) + ")")
    epoch = "the epoch with the best seed mean" if table.epoch == "best" else "the last epoch"
    notes = [f"Dev {metric_words} at {epoch}, mean ± sample std over {seeds} seed(s)"
             + (" in %" if any(table.pct.values()) else "") + "; n=... marks cells with fewer seeds."]
    if "heldout" in table.protocols:
        notes.append("Dev (`task.protocol: heldout`): a stratified, seeded part of each task's train split, "
                     "held out from training.")
    if table.has_test:
        notes.append("Test columns (test: the original validation set, at the dev-selected epoch and "
                     "configuration; a dataset's own test split where it has one): reported only, never selected on.")
    if folds:
        notes.append(f"Few-shot cells: each seed's value is its mean over {folds} cross-validation folds "
                     "(dev = the fold's held-out part of the K-shot training set, not the test set).")
    chosen = [c for c in table.cells.values() if c.chosen]
    if chosen:
        notes.append("Chosen per data seed by the few-shot select phase (cross-validation over 2K per label, "
                     "no test data): " + "; ".join(f"{c.method}, {task_name(c.task)}: {chosen_text(c.chosen)}"
                                                   for c in chosen) + ".")
    if table.selected_over:
        notes.append("Each cell is the best configuration on the dev mean over: "
                     + ", ".join(f"`{k}`" for k in table.selected_over) + " (see the CSV for the values).")
    notes.append(f"**Bold**: best per task{' (and of the avg column)' if len(table.tasks) > 1 else ''}"
                 + (" (mode min)" if table.mode == "min" else "") + ".")
    ours = ", ".join(table.backbones) or "?"
    if quoted:
        notes.append(f"'paper' columns: the value the IPT paper printed ({PAPER}; in %, roberta-large) in the "
                     f"row named in 'paper row' (Tn: its Table n); not reproduced here. Ours: {ours}. "
                     "Letters: how our run differs from the paper's (the split is always stated):")
    else:
        notes.append(f"Backbone: {ours}. No cell of the IPT paper's Tables 2, 3, 5 and 6 matches these "
                     "configs (`ipt_ray.report.published`), so no paper column is shown.")
    return notes + table.notes


def table_title(table: PaperTable) -> str:
    setting = sorted(set(table.settings.values()))
    kind = {"full": "full data", "few-shot": "few-shot"}
    return (f"Methods x tasks ({', '.join(kind.get(s, s) for s in setting)}; "
            f"{', '.join(table.backbones) or 'backbone ?'})")


PAPER_CSV_COLUMNS = ("paper_table", "paper_row", "paper_column", "paper_value", "paper_differs", "paper_source")


def _paper_csv(comparison: Comparison | None) -> list[str]:
    if comparison is None:
        return [""] * len(PAPER_CSV_COLUMNS)
    v = comparison.value
    differs = " | ".join(f"{d.kind}: ours {d.ours}; paper {d.paper}" for d in comparison.differences)
    return [str(v.table), v.row, v.column, v.printed, differs, PAPER]


def to_csv(table: PaperTable, path: str | Path) -> Path:
    """One row per cell: method, task, (x), metric, mean, std (dev), test mean and std where the table has
    test values, seeds, folds, best, per-seed values (and ``test_seed_<s>``), the selected
    hyper-parameters (JSON), what a few-shot select phase chose per seed (JSON), config ids, and where the IPT paper printed the cell: its table, row label,
    column and value, how our run differs (``kind: ours ...; paper ...`` joined by `` | ``) and the citation."""
    comparisons = compare(table)
    seeds = sorted({s for c in table.cells.values() for s in c.values})
    test_seeds = sorted({s for c in table.cells.values() for s in c.test_values})
    test_means = ["test_mean", "test_std"] if table.has_test else []
    header = ["method", "task", *([table.x_key] if table.x_key else []), "metric", "setting", "mean", "std",
              *test_means, "n_seeds", "n_folds", "best", *(f"seed_{s}" for s in seeds),
              *(f"test_seed_{s}" for s in test_seeds), "hyper_params", "chosen_per_seed", "config_ids",
              *PAPER_CSV_COLUMNS]
    rows = []
    for key in sorted(table.cells, key=lambda k: (table.methods.index(k[0]), task_order(k[1]), str(k[2]))):
        c = table.cells[key]
        setting = table.settings.get(c.task, "full")
        rows.append([c.method, c.task, *([display_str(c.x)] if table.x_key else []), c.metric, setting,
                     repr(c.mean), repr(c.std), *([repr(c.test_mean), repr(c.test_std)] if test_means else []),
                     c.n_seeds, c.n_folds, int(c.best), *(repr(c.values[s]) if s in c.values else "" for s in seeds),
                     *(repr(c.test_values[s]) if s in c.test_values else "" for s in test_seeds),
                     json.dumps({k: c.hyper[k] for k in sorted(c.hyper)}, default=str),
                     json.dumps({str(s): v for s, v in c.chosen.items()}, default=str) if c.chosen else "",
                     ";".join(c.config_ids),
                     *_paper_csv(comparisons.get(key))])
    return write_csv(path, header, rows)
