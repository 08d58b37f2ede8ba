"""Paper-style results: methods x tasks tables, metric-vs-hyper-parameter plots, and quoted numbers.

``ipt-ray report SWEEP...`` renders these when a sweep (or several combined) varies the method and/or
the task, or with ``--paper``. The input is a :class:`~ipt_ray.report.SweepSummary` per metric whose
config params carry ``task.name`` and the method fields (:func:`ipt_ray.report.combine_results` adds
what a sweep did not search from its parent run).

How a cell is made (``(method, task)``; for plots ``(method, task, x)``):

1. A config's *method label* comes from its effective method section (defaults, then the sweep's YAML,
   then the sampled values): strategy + injection (+ encoder), plus ``key=value`` qualifiers for the
   fields that tell variants of one method apart (hypernetwork, table layout/init, head, prompt init,
   backbone) when those vary among configs with the same label (:func:`method_labels`).
2. Configs that differ only in ``task.cv_fold`` are one group: a seed's value is its mean over the folds
   (the few-shot cross-validation protocol).
3. Among the groups of one cell, which differ in the remaining params (learning rate, prompt length,
   ...: the hyper-parameters), the best seed mean wins (``mode``), as the paper selects on dev.
4. The cell shows that group's mean ± sample std over seeds; the best cell of a task is bold.

Quoted numbers (:data:`PAPER_VALUES`) appear in "(paper)" columns beside ours; every value names its
source in :data:`SOURCES`. Only numbers read from a source are listed: none of IPT's own Table 2/3/5
values are here, because the paper publishes them in its PDF and the official repository only as
images (``IPT-Prompttuning/IPT``: ``images/end2end.png``, ``images/few-shot.png``), which we could not
check; add them with a source entry to have them shown.
"""

from __future__ import annotations

import numpy as np

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ipt_ray.results import (
    ConfigSummary,
    Mode,
    SweepSummary,
    display_str,
    expand_sections,
    fmt_value,
    is_fraction,
    mean_std,
    param_str,
)

PAPER = ("Yuezihan Jiang et al. 2022, Instance-wise Prompt Tuning for Pretrained Language Models, "
         "arXiv:2206.01958")

# ---------------------------------------------------------------- quoted numbers


@dataclass(frozen=True)
class Source:
    """Where quoted numbers come from: a citation, a URL and what exactly the numbers are."""

    citation: str
    url: str
    note: str


#: Sources of :data:`PAPER_VALUES`, by key.
SOURCES: dict[str, Source] = {
    "ptv2-readme": Source(
        citation="Liu et al. 2022, P-Tuning v2 (ACL 2022), authors' repository README, "
                 "'Released results on RoBERTa-large'",
        url="https://github.com/THUDM/P-tuning-v2 (README.md, section 'Implemented Results')",
        note="P-tuning v2 is Prefix Tuning with prompts at every layer (IPT's 'Prefix Tuning' baseline); "
             "RoBERTa-large, full training set, SuperGLUE dev accuracy, one run, best epoch "
             "(BoolQ: epoch 86 of 100; RTE: epoch 65 of 100)",
    ),
}


@dataclass(frozen=True)
class PaperValue:
    """One quoted number: ``value`` in percent, as printed in ``source`` (a key of :data:`SOURCES`).

    ``setting`` is ``full`` (whole training set, dev reported) or ``few-shot``; ``method`` is a label as
    :func:`method_label` writes it, ``task`` a task name, ``metric`` a task metric name.
    """

    setting: str
    method: str
    task: str
    metric: str
    value: float
    source: str
    backbone: str = "roberta-large"


#: Quoted results, each with its source. Deliberately short: a value goes in only when it was read from
#: the source named beside it (see the module docstring for why IPT's own numbers are absent).
PAPER_VALUES: tuple[PaperValue, ...] = (
    PaperValue("full", "Prefix Tuning", "boolq", "accuracy", 84.0, "ptv2-readme"),
    PaperValue("full", "Prefix Tuning", "rte", "accuracy", 86.6, "ptv2-readme"),
)


def paper_value(method: str, task: str, metric: str, setting: str) -> PaperValue | None:
    """The quoted number for a cell, if one is on file."""
    for v in PAPER_VALUES:
        if (v.method, v.task, v.metric, v.setting) == (method, task, metric, setting):
            return v
    return None


# ---------------------------------------------------------------- names


TASK_ORDER = ("boolq", "cb", "rte", "multirc", "ag_news", "sst2", "imdb")
TASK_NAMES = {"boolq": "BoolQ", "cb": "CB", "rte": "RTE", "multirc": "MultiRC", "ag_news": "AG News",
              "sst2": "SST-2", "imdb": "IMDB"}
METRIC_NAMES = {"accuracy": "acc", "f1a": "F1a", "em": "EM"}
#: The metric a task's column shows unless ``--task-metric TASK=METRIC`` says otherwise.
DEFAULT_TASK_METRICS = {"multirc": "f1a"}

_IPT_NAMES = {"random_ipt": "Random IPT", "pretrained_ipt": "Pretrained IPT", "encoder_ipt": "Encoder IPT"}
_STRATEGY_ORDER = ("fine_tuning", "prompt_tuning", "ppt", "structured", "random_ipt", "pretrained_ipt",
                   "encoder_ipt")
_ENCODER_ORDER = ("cnn", "rnn", "mlp")
#: Method fields that make a variant of a method (shown in its label when they vary), and the
#: strategies they apply to (None: all prompt strategies).
QUALIFIERS: dict[str, tuple[str, ...] | None] = {
    "hypernetwork": ("structured",),
    "table_layout": ("random_ipt", "pretrained_ipt"),
    "table_init": ("random_ipt", "pretrained_ipt", "encoder_ipt"),
    "prompt_init": ("prompt_tuning", "structured"),
    "head": None,
}
#: Params that name the method or the task of a config, never a hyper-parameter to select over.
_IDENTITY = {"method.strategy", "method.injection", "method.encoder", "task.name", "task.cv_fold",
             "backbone.name", *(f"method.{q}" for q in QUALIFIERS)}


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def effective_method(params: Mapping[str, Any]) -> dict[str, Any]:
    """The method section a config ran with: :class:`~ipt_ray.config.MethodConfig` defaults, then its
    ``method.*`` params (a section-valued ``method`` param is expanded first)."""
    from ipt_ray.config import MethodConfig

    method = {name: f.default for name, f in MethodConfig.model_fields.items()}
    for key, value in expand_sections(dict(params)).items():
        if key.startswith("method."):
            method[key[len("method."):]] = value
    return method


def method_label(method: Mapping[str, Any]) -> str:
    """The paper's name of a method section: ``Fine-tuning``, ``Prompt Tuning``, ``Prefix Tuning``,
    ``PPT``, ``Structured PT``, ``PT + Random IPT``, ``Prefix + Encoder IPT (cnn)``, ..."""
    strategy = str(method.get("strategy", "random_ipt"))
    prefix = method.get("injection", "input") == "prefix"
    if strategy == "fine_tuning":
        return "Fine-tuning"
    if strategy == "prompt_tuning":
        return "Prefix Tuning" if prefix else "Prompt Tuning"
    if strategy == "ppt":
        return "PPT (prefix)" if prefix else "PPT"
    if strategy == "structured":
        return "Structured PT (prefix)" if prefix else "Structured PT"
    label = f"{'Prefix' if prefix else 'PT'} + {_IPT_NAMES.get(strategy, strategy)}"
    if strategy == "encoder_ipt":
        label += f" ({method.get('encoder', 'cnn')})"
    return label


def _qualifier_value(key: str, value: Any) -> str:
    if key in ("table_init", "backbone") and isinstance(value, str) and value not in ("random", "backbone"):
        return Path(value).stem or value  # a checkpoint path: its file name is enough to tell them apart
    return display_str(value)


def method_labels(configs: Iterable[ConfigSummary]) -> dict[str, str]:
    """Config id -> label: :func:`method_label`, plus ``[key=value, ...]`` for the :data:`QUALIFIERS`
    (and the backbone) that take more than one value among configs of the same base label."""
    configs = list(configs)
    base: dict[str, str] = {}
    fields: dict[str, dict[str, Any]] = {}
    for c in configs:
        method = effective_method(c.params)
        base[c.config_id] = method_label(method)
        strategy = method.get("strategy")
        values = {q: method.get(q) for q, only in QUALIFIERS.items()
                  if strategy != "fine_tuning" and (only is None or strategy in only)}
        values["backbone"] = expand_sections(c.params).get("backbone.name")
        fields[c.config_id] = values
    varying: dict[str, set[str]] = {}
    for label in set(base.values()):
        members = [cid for cid, lb in base.items() if lb == label]
        keys = {k for cid in members for k in fields[cid]}
        varying[label] = {k for k in keys if len({param_str(fields[cid].get(k)) for cid in members}) > 1}
    out = {}
    for cid, label in base.items():
        extra = [f"{k}={_qualifier_value(k, fields[cid].get(k))}" for k in sorted(varying[label])]
        out[cid] = f"{label} [{', '.join(extra)}]" if extra else label
    return out


def _method_order(label: str) -> tuple:
    """Paper order: Fine-tuning, Prompt Tuning, Prefix Tuning, PPT, Structured PT, then PT + IPT
    (Random, Pretrained, Encoder cnn/rnn/mlp), then Prefix + IPT; qualified variants after their base."""
    head, _, _ = label.partition(" [")
    fixed = ["Fine-tuning", "Prompt Tuning", "Prefix Tuning", "PPT", "PPT (prefix)", "Structured PT",
             "Structured PT (prefix)"]
    if head in fixed:
        return (0, fixed.index(head), 0, label)
    family, _, rest = head.partition(" + ")
    names = list(_IPT_NAMES.values())
    name, _, enc = rest.partition(" (")
    enc = enc.rstrip(")")
    return (1 + (family == "Prefix"), names.index(name) if name in names else 9,
            _ENCODER_ORDER.index(enc) if enc in _ENCODER_ORDER else 0, label)


def _task_order(task: str) -> tuple:
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


# ---------------------------------------------------------------- cells


@dataclass
class Cell:
    """One table cell (or plot point): the best hyper-parameter group of ``(method, task[, x])``.

    ``values``: per seed (mean over folds when cross-validated); ``n_folds``: 0 without folds;
    ``hyper``: the params that were selected over, with the winning values.
    """

    method: str
    task: str
    metric: str
    x: Any
    mean: float
    std: float
    values: dict[int, float]
    n_folds: int
    config_ids: list[str]
    hyper: dict[str, Any]
    best: bool = False

    @property
    def n_seeds(self) -> int:
        return len(self.values)


@dataclass
class PaperTable:
    """Cells keyed ``(method, task, x)`` (``x`` is None for tables), rows/columns in paper order."""

    cells: dict[tuple[str, str, Any], Cell]
    methods: list[str]
    tasks: list[str]
    metrics: dict[str, str]
    mode: Mode
    pct: dict[str, bool]
    settings: dict[str, str]
    selected_over: list[str]
    backbones: list[str]
    x_key: str | None = None
    epoch: str = "last"
    notes: list[str] = field(default_factory=list)

    def cell(self, method: str, task: str, x: Any = None) -> Cell | None:
        return self.cells.get((method, task, x))

    @property
    def compares(self) -> bool:
        """Whether this is a comparison worth a paper-style table: several methods and/or tasks."""
        return len(self.methods) > 1 or len(self.tasks) > 1


def parse_task_metrics(items: Iterable[str]) -> dict[str, str]:
    """``["multirc=em"]`` -> ``{"multirc": "em"}`` over :data:`DEFAULT_TASK_METRICS`."""
    out = dict(DEFAULT_TASK_METRICS)
    for item in items:
        task, sep, metric = item.partition("=")
        if not sep or not task.strip() or not metric.strip():
            raise ValueError(f"--task-metric {item!r}: expected TASK=METRIC, e.g. multirc=em")
        out[task.strip().lower()] = metric.strip()
    return out


def tasks_of(summary: SweepSummary) -> list[str]:
    """The task names a summary's configs ran on (``?`` for configs without ``task.name``)."""
    return sorted({str(expand_sections(c.params).get("task.name", "?")) for c in summary.configs}, key=_task_order)


def _better(a: float, b: float, mode: Mode) -> bool:
    return a > b if mode == "max" else a < b


def build_table(summaries: Mapping[str, SweepSummary] | SweepSummary, task_metrics: Mapping[str, str] | None = None,
                x_key: str | None = None, epoch: str = "last") -> PaperTable:
    """Methods x tasks cells (x ``x_key`` values for plots) from one summary per metric.

    ``summaries``: metric name -> summary of the same results for that metric (a single summary is its
    own metric's); a task uses ``task_metrics.get(task)`` when that summary is present, else the first.
    """
    if isinstance(summaries, SweepSummary):
        summaries = {summaries.metric: summaries}
    primary = next(iter(summaries.values()))
    mode: Mode = primary.mode
    task_metrics = dict(task_metrics or {})
    tasks = tasks_of(primary)
    metrics = {t: (task_metrics[t] if task_metrics.get(t) in summaries else primary.metric) for t in tasks}

    groups: dict[tuple[str, str, Any, str], list[ConfigSummary]] = {}
    hyper_of: dict[tuple[str, str, Any, str], dict[str, Any]] = {}
    settings: dict[str, str] = {}
    backbones: set[str] = set()
    labels = method_labels(primary.configs)  # over all tasks, so a method's row has one name in every column
    for task in tasks:
        summary = summaries[metrics[task]]
        mine = [c for c in summary.configs if str(expand_sections(c.params).get("task.name", "?")) == task]
        missing = [c for c in mine if c.config_id not in labels]
        if missing:  # a config only this metric's summary has (not expected: they share their results)
            labels.update(method_labels(missing))
        for c in mine:
            flat = expand_sections(c.params)
            if flat.get("task.few_shot_k") is not None:
                settings[task] = "few-shot"
            settings.setdefault(task, "full")
            if flat.get("backbone.name"):
                backbones.add(str(flat["backbone.name"]))
            if not c.eligible:
                continue
            x = None
            if x_key is not None:
                x = flat.get(x_key)
                if x is None and x_key.startswith("method."):
                    x = effective_method(flat).get(x_key[len("method."):])  # the default it ran with
            hyper = {k: v for k, v in flat.items() if k not in _IDENTITY and k != x_key}
            hkey = json.dumps({k: param_str(v) for k, v in hyper.items()}, sort_keys=True)
            key = (labels[c.config_id], task, x, hkey)
            groups.setdefault(key, []).append(c)
            hyper_of[key] = hyper

    candidates: dict[tuple[str, str, Any], list[Cell]] = {}
    for key, members in groups.items():
        label, task, x, _ = key
        folds = sorted({expand_sections(c.params).get("task.cv_fold") for c in members}, key=str)
        per_seed: dict[int, list[float]] = {}
        for c in members:
            for s, v in c.values.items():
                per_seed.setdefault(s, []).append(v)
        values = {s: math.fsum(vs) / len(vs) for s, vs in sorted(per_seed.items())}
        mean, std = mean_std(list(values.values()))
        n_folds = len([f for f in folds if f is not None])
        candidates.setdefault((label, task, x), []).append(Cell(
            method=label, task=task, metric=metrics[task], x=x, mean=mean, std=std, values=values,
            n_folds=n_folds, config_ids=sorted(c.config_id for c in members), hyper=hyper_of[key]))

    cells: dict[tuple[str, str, Any], Cell] = {}
    selected: set[str] = set()
    for key, options in candidates.items():
        ranked = sorted(options, key=lambda c: (-c.mean if mode == "max" else c.mean, c.std, -c.n_seeds,
                                                json.dumps({k: param_str(v) for k, v in c.hyper.items()},
                                                           sort_keys=True)))
        cells[key] = ranked[0]
        if len(options) > 1:
            keys = {k for c in options for k in c.hyper}
            selected |= {k for k in keys if len({param_str(c.hyper.get(k)) for c in options}) > 1}
    # bold: the best cell of each task (of each (task, x) for plots)
    for task in tasks:
        for x in {k[2] for k in cells if k[1] == task}:
            column = [c for k, c in cells.items() if k[1] == task and k[2] == x and c.n_seeds]
            if not column:
                continue
            top = column[0].mean
            for c in column:
                if _better(c.mean, top, mode):
                    top = c.mean
            for c in column:
                c.best = c.mean == top

    methods = sorted({k[0] for k in cells}, key=_method_order)
    pct = {t: is_fraction(metrics[t], [v for k, c in cells.items() if k[1] == t for v in c.values.values()])
           for t in tasks}
    return PaperTable(cells=cells, methods=methods, tasks=[t for t in tasks if any(k[1] == t for k in cells)],
                      metrics=metrics, mode=mode, pct=pct, settings=settings, selected_over=sorted(selected),
                      backbones=sorted(backbones), x_key=x_key, epoch=epoch)


# ---------------------------------------------------------------- rendering


def _cell_text(c: Cell | None, pct: bool, seeds: int, folds: int) -> str:
    if c is None or not c.n_seeds:
        return "-"
    text = f"{fmt_value(c.mean, pct)} ± {fmt_value(c.std, pct)}"
    notes = []
    if c.n_seeds < seeds:
        notes.append(f"n={c.n_seeds}")
    if c.n_folds and c.n_folds < folds:
        notes.append(f"{c.n_folds} folds")
    return text + (f" ({', '.join(notes)})" if notes else "")


def _header(table: PaperTable, task: str) -> str:
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


def _paper_cells(table: PaperTable) -> dict[tuple[str, str], PaperValue]:
    out = {}
    for m in table.methods:
        for t in table.tasks:
            v = paper_value(m, t, table.metrics[t], table.settings.get(t, "full"))
            if v is not None:
                out[(m, t)] = v
    return out


def to_markdown(table: PaperTable, title: str | None = None) -> str:
    """The methods x tasks table in Markdown: ``mean ± std`` (percent for accuracy-like metrics), the best
    per task in bold, "(paper)" columns with quoted numbers where any exist, and the notes under it."""
    seeds = max((c.n_seeds for c in table.cells.values()), default=0)
    folds = max((c.n_folds for c in table.cells.values()), default=0)
    quoted = _paper_cells(table)
    sources = sorted({v.source for v in quoted.values()}, key=list(SOURCES).index)
    mark = {s: i + 1 for i, s in enumerate(sources)}
    quoted_tasks = {t for _, t in quoted}
    averages = _averages(table)
    header = ["method"]
    for t in table.tasks:
        header.append(_header(table, t))
        if t in quoted_tasks:
            header.append(f"{task_name(t)} (paper)")
    if averages:
        header.append("avg")
    best_avg = (max if table.mode == "max" else min)(averages.values()) if averages else None
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for m in table.methods:
        row = [m.replace("|", "\\|")]
        for t in table.tasks:
            c = table.cell(m, t)
            text = _cell_text(c, table.pct[t], seeds, folds)
            row.append(f"**{text}**" if c is not None and c.best and c.n_seeds else text)
            if t in quoted_tasks:
                v = quoted.get((m, t))
                row.append(f"{v.value:.1f} [{mark[v.source]}]" if v else "")
        if averages:
            a = averages.get(m)
            if a is None:
                row.append("-")
            else:
                text = fmt_value(a, all(table.pct.values()))
                row.append(f"**{text}**" if a == best_avg else text)
        lines.append("| " + " | ".join(row) + " |")
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
                     "(`ipt_ray.paper.PAPER_VALUES`), so no '(paper)' column is shown.")
    return notes + table.notes


def to_csv(table: PaperTable, path: str | Path) -> Path:
    """One row per cell: method, task, (x), metric, mean, std, seeds, folds, best, per-seed values (JSON),
    the selected hyper-parameters (JSON), config ids, and the quoted number with its source."""
    path = Path(path)
    seeds = sorted({s for c in table.cells.values() for s in c.values})
    header = ["method", "task", *([table.x_key] if table.x_key else []), "metric", "setting", "mean", "std",
              "n_seeds", "n_folds", "best", *(f"seed_{s}" for s in seeds), "hyper_params", "config_ids",
              "paper_value", "paper_source"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for key in sorted(table.cells, key=lambda k: (_method_order(k[0]), _task_order(k[1]), str(k[2]))):
            c = table.cells[key]
            v = paper_value(c.method, c.task, c.metric, table.settings.get(c.task, "full"))
            w.writerow([c.method, c.task, *([display_str(c.x)] if table.x_key else []), c.metric,
                        table.settings.get(c.task, "full"), repr(c.mean), repr(c.std), c.n_seeds, c.n_folds,
                        int(c.best), *(repr(c.values[s]) if s in c.values else "" for s in seeds),
                        json.dumps({k: c.hyper[k] for k in sorted(c.hyper)}, default=str),
                        ";".join(c.config_ids), "" if v is None else v.value,
                        "" if v is None else f"{SOURCES[v.source].citation}; {SOURCES[v.source].url}"])
    return path


#: Hyper-parameters plotted against (x axis) when a summary varies them.
PLOT_KEYS = {"method.prompt_length": "prompt length", "method.seq_util_rate": "sequence utilisation rate"}


def plot_keys(summary: SweepSummary) -> list[str]:
    """The :data:`PLOT_KEYS` that take at least two values among the summary's configs."""
    out = []
    for key in PLOT_KEYS:
        values = {param_str(expand_sections(c.params).get(key)) for c in summary.configs
                  if key in expand_sections(c.params)}
        if len(values) > 1:
            out.append(key)
    return out


def plot(table: PaperTable, path: str | Path) -> Path:
    """Metric vs ``table.x_key``: one panel per task, one line per method, error bars = std over seeds.

    Uses ``Figure`` + ``FigureCanvasAgg`` (no pyplot state), like :func:`ipt_ray.report.plot`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if table.x_key is None:
        raise ValueError("plot() needs a table built with x_key")
    path = Path(path)
    n = max(1, len(table.tasks))
    fig = Figure(figsize=(4.2 * n + 1.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    for ax, task in zip(axes, table.tasks):
        scale = 100.0 if table.pct[task] else 1.0
        for method in table.methods:
            points = sorted(((k[2], c) for k, c in table.cells.items() if k[0] == method and k[1] == task
                             and c.n_seeds and isinstance(k[2], (int, float))), key=lambda p: p[0])
            if not points:
                continue
            ax.errorbar([p[0] for p in points], [p[1].mean * scale for p in points],
                        yerr=[p[1].std * scale for p in points], marker="o", capsize=3, label=method)
        ax.set_xlabel(PLOT_KEYS.get(table.x_key, table.x_key))
        ax.set_ylabel(f"dev {table.metrics[task]}" + (" (%)" if table.pct[task] else ""))
        ax.set_title(task_name(task), fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[-1].legend(handles, labels, fontsize=7, loc="best")
    fig.suptitle(f"{PLOT_KEYS.get(table.x_key, table.x_key)}: mean ± std over seeds", fontsize=10)
    fig.savefig(path, dpi=120)
    return path


def write_artifacts(summaries: Mapping[str, SweepSummary] | SweepSummary, out_dir: str | Path,
                    task_metrics: Mapping[str, str] | None = None, epoch: str = "last",
                    table: PaperTable | None = None) -> dict[str, Path]:
    """``paper.md`` / ``paper.csv`` (methods x tasks) and, for each :data:`PLOT_KEYS` the results vary,
    ``<key>.png`` / ``<key>.csv`` (e.g. ``prompt_length.png``) in ``out_dir``. ``table``: the methods x
    tasks table of these arguments when the caller has built it already."""
    if isinstance(summaries, SweepSummary):
        summaries = {summaries.metric: summaries}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = table or build_table(summaries, task_metrics, epoch=epoch)
    md = out / "paper.md"
    md.write_text(to_markdown(table, title=table_title(table)), encoding="utf-8")
    paths = {"paper_md": md, "paper_csv": to_csv(table, out / "paper.csv")}
    tests = significance_markdown(table)
    if tests:
        (out / "significance.md").write_text(tests, encoding="utf-8")
        paths["significance_md"] = out / "significance.md"
    primary = next(iter(summaries.values()))
    for key in plot_keys(primary):
        name = key.partition(".")[2]
        curve = build_table(summaries, task_metrics, x_key=key, epoch=epoch)
        paths[f"{name}_png"] = plot(curve, out / f"{name}.png")
        paths[f"{name}_csv"] = to_csv(curve, out / f"{name}.csv")
    return paths


def significance(table: PaperTable) -> list[dict[str, Any]]:
    """Each IPT variant against its base method, per task, over seeds: Welch's t-test (unequal variances).

    The base of ``PT + ...`` is Prompt Tuning, of ``Prefix + ...`` Prefix Tuning. Seeds are independent
    runs (seed s of two methods shares nothing but the number), so the test is unpaired.
    """
    from scipy import stats

    rows = []
    for method in table.methods:
        if "IPT" not in method:
            continue
        base = "Prefix Tuning" if method.startswith("Prefix") else "Prompt Tuning"
        for task in table.tasks:
            a, b = table.cell(method, task), table.cell(base, task)
            if a is None or b is None or a.n_seeds < 2 or b.n_seeds < 2:
                continue
            va, vb = list(a.values.values()), list(b.values.values())
            if np.std(va) == 0 and np.std(vb) == 0:
                p = 1.0 if np.mean(va) == np.mean(vb) else 0.0
                t = float("nan")
            else:
                t, p = stats.ttest_ind(va, vb, equal_var=False)
            rows.append({"method": method, "base": base, "task": task, "delta": a.mean - b.mean,
                         "t": float(t), "p": float(p), "n": (a.n_seeds, b.n_seeds)})
    return rows


def significance_markdown(table: PaperTable, alpha: float = 0.05) -> str:
    rows = significance(table)
    if not rows:
        return ""
    lines = ["| IPT variant | vs | task | difference (points) | Welch t | p | at 5% |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        scale = 100.0 if table.pct.get(r["task"]) else 1.0
        verdict = ("better" if r["delta"] > 0 else "worse") if r["p"] < alpha else "no significant difference"
        lines.append(f"| {r['method']} | {r['base']} | {task_name(r['task'])} | {scale * r['delta']:+.1f} | "
                     f"{r['t']:.2f} | {r['p']:.3f} | {verdict} |")
    n = {x for r in rows for x in r["n"]}
    lines += ["", f"- Welch's two-sample t-test over seeds (n = {', '.join(map(str, sorted(n)))} per method), "
              "two-sided; no correction for multiple comparisons."]
    return "\n".join(lines) + "\n"


def table_title(table: PaperTable) -> str:
    setting = sorted(set(table.settings.values()))
    kind = {"full": "full data", "few-shot": "few-shot"}
    return (f"Methods x tasks ({', '.join(kind.get(s, s) for s in setting)}; "
            f"{', '.join(table.backbones) or 'backbone ?'})")


# ---------------------------------------------------------------- ipt-ray report


def report_sweeps(client: Any, sweeps: Sequence[Sequence[Any]], *, metric: str = "accuracy", mode: Mode = "max",
                  out: str | Path | None = None, force_paper: bool = False,
                  task_metrics: Mapping[str, str] | None = None, epoch: str = "last", log: bool = True,
                  echo: Any = print) -> dict[str, Any]:
    """What ``ipt-ray report SWEEP...`` does once it has each sweep's child runs.

    - The results table of the configs (as before): one sweep keeps its MLflow config ids; several are
      combined (:func:`ipt_ray.report.combine_results`), ``task.name`` telling their tasks apart.
    - When the results compare methods and/or tasks, or ``force_paper``: the methods x tasks table
      (printed), written with the plots as ``paper.*`` / ``<key>.*`` under ``out``, and uploaded into each
      sweep's aggregate run under ``paper/`` (unless ``log`` is false).

    ``client`` is duck-typed like ``MlflowClient``. Returns ``summary``, ``table`` and ``paths``.
    """
    import tempfile

    from ipt_ray import results as report

    history = client.get_metric_history if epoch == "best" else None
    contexts = [report.sweep_context_from_mlflow(client, runs) for runs in sweeps]

    def read(name: str) -> list[list[Any]]:
        return [report.results_from_mlflow(runs, name, epoch=epoch, history=history,  # type: ignore[arg-type]
                                           mode=mode) for runs in sweeps]

    raw = read(metric)
    combined = report.combine_results(list(zip(contexts, raw)))
    summary = report.aggregate(raw[0] if len(sweeps) == 1 else combined, metric, mode)
    echo(report.render_console(summary))
    summaries = {metric: summary if len(sweeps) > 1 else report.aggregate(combined, metric, mode)}
    task_metrics = dict(DEFAULT_TASK_METRICS if task_metrics is None else task_metrics)
    for task in tasks_of(summaries[metric]):
        wanted = task_metrics.get(task)
        if wanted and wanted not in summaries:
            results = report.combine_results(list(zip(contexts, read(wanted))))
            summaries[wanted] = report.aggregate(results, wanted, mode)
    table = build_table(summaries, task_metrics, epoch=epoch)
    paths: dict[str, Path] = {}
    if out:
        paths.update(report.write_artifacts(summary, Path(out)))
    if force_paper or table.compares:
        echo(to_markdown(table, title=table_title(table)))
        tests = significance_markdown(table)
        if tests:
            echo(tests)
        with tempfile.TemporaryDirectory(prefix="ipt-paper-") as tmp:
            written = write_artifacts(summaries, Path(out) if out else Path(tmp), task_metrics, epoch=epoch,
                                      table=table)
            if log:
                for ctx, runs in zip(contexts, sweeps):
                    run_id = report.log_report_artifacts(client, runs, written.values(), "paper")
                    echo(f"logged {', '.join(p.name for p in written.values())} to the aggregate run {run_id} "
                         f"of sweep {ctx.name} (artifacts: paper/)" if run_id else
                         f"sweep {ctx.name} has no aggregate run: paper artifacts not logged")
            if out:
                paths.update(written)
    if paths:
        echo(f"written: {', '.join(str(p) for p in paths.values())}")
    return {"summary": summary, "table": table, "paths": paths}
