"""The methods x tasks table: one cell per ``(method, task)`` (for plots ``(method, task, x)``).

The input is a :class:`~ipt_ray.results.SweepSummary` per metric whose config params carry ``task.name``
and the method fields (``ipt_ray.results.combine_results`` adds what a sweep did not search from its
parent run). How a cell is made:

1. A config's row is its method label (:func:`~ipt_ray.report.labels.method_rows`).
2. Configs that differ only in ``task.cv_fold`` are one group: a seed's value is its mean over the folds
   (the few-shot cross-validation protocol).
3. Among the groups of one cell, which differ in the remaining params (learning rate, prompt length,
   ...: the hyper-parameters), the best seed mean wins (``mode``), as the paper selects on dev.
4. The cell shows that group's mean ± sample std over seeds; the best cell of a task is bold.
5. Where the protocol has a test split, the cell also carries the same group's test values (the seeds'
   test metric at their dev-selected epochs, averaged over folds the same way); they never select.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ipt_ray.report.labels import (
    DEFAULT_TASK_METRICS,
    MethodRow,
    effective_method,
    identity_params,
    method_rows,
    task_of,
    task_order,
)
from ipt_ray.results import ConfigSummary, Mode, SweepSummary, better, expand_sections, is_fraction, mean_std, param_str

CellKey = tuple[str, str, Any]  # (method label, task, x)


@dataclass
class Cell:
    """One table cell (or plot point): the best hyper-parameter group of ``(method, task[, x])``.

    ``values``: per seed (mean over folds when cross-validated); ``n_folds``: 0 without folds;
    ``hyper``: the params that were selected over, with the winning values. ``test_values`` /
    ``test_mean`` / ``test_std``: the same on the test split (empty / NaN without one). ``config``: the
    flat params its configs share (all but ``task.cv_fold``): what the paper comparison reads. ``chosen``:
    seed -> the hyper-parameters a few-shot select phase chose for that data seed.
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
    test_values: dict[int, float] = field(default_factory=dict)
    test_mean: float = math.nan
    test_std: float = math.nan
    best: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    chosen: dict[int, dict[str, Any]] = field(default_factory=dict)  # few-shot: seed -> what selection chose

    @property
    def n_seeds(self) -> int:
        return len(self.values)


@dataclass
class PaperTable:
    """Cells keyed ``(method, task, x)`` (``x`` is None for tables), rows/columns in paper order.

    ``bases``: method label -> the label of the method its significance test compares it with.
    ``protocols``: the ``task.protocol`` values of the configs (``paper`` where they did not set it).
    """

    cells: dict[CellKey, Cell]
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
    bases: dict[str, str] = field(default_factory=dict)
    protocols: list[str] = field(default_factory=list)

    def cell(self, method: str, task: str, x: Any = None) -> Cell | None:
        return self.cells.get((method, task, x))

    @property
    def has_test(self) -> bool:
        """Whether any cell has test values (its protocol had a test split): the tables show them."""
        return any(c.test_values for c in self.cells.values())

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
    return sorted({task_of(c) for c in summary.configs}, key=task_order)


# ---------------------------------------------------------------- the steps of build_table


def _hyper_key(hyper: Mapping[str, Any]) -> str:
    return json.dumps({k: param_str(v) for k, v in hyper.items()}, sort_keys=True)


@dataclass
class _Groups:
    """Eligible configs grouped by ``(label, task, x, hyper-parameters)``, and what the configs tell."""

    members: dict[tuple[str, str, Any, str], list[ConfigSummary]] = field(default_factory=dict)
    hyper: dict[tuple[str, str, Any, str], dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, MethodRow] = field(default_factory=dict)  # config id -> row
    settings: dict[str, str] = field(default_factory=dict)  # task -> full / few-shot
    backbones: set[str] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)

    def add(self, c: ConfigSummary, task: str, x_key: str | None, identity: set[str]) -> None:
        flat = expand_sections(c.params)
        if flat.get("task.few_shot_k") is not None:
            self.settings[task] = "few-shot"
        self.settings.setdefault(task, "full")
        if flat.get("backbone.name"):
            self.backbones.add(str(flat["backbone.name"]))
        self.protocols.add(str(flat.get("task.protocol") or "paper"))
        if not c.eligible:
            return
        x = None
        if x_key is not None:
            x = flat.get(x_key)
            if x is None and x_key.startswith("method."):
                x = effective_method(flat).get(x_key[len("method."):])  # the default it ran with
        hyper = {k: v for k, v in flat.items() if k not in identity and k != x_key}
        key = (self.rows[c.config_id].label, task, x, _hyper_key(hyper))
        self.members.setdefault(key, []).append(c)
        self.hyper[key] = hyper


def _group(summaries: Mapping[str, SweepSummary], primary: SweepSummary, metrics: Mapping[str, str],
           x_key: str | None) -> _Groups:
    groups = _Groups(rows=method_rows(primary.configs))  # over all tasks: a row has one name in every column
    identity = identity_params()
    for task, metric in metrics.items():
        mine = [c for c in summaries[metric].configs if task_of(c) == task]
        missing = [c for c in mine if c.config_id not in groups.rows]
        if missing:  # a config only this metric's summary has (not expected: they share their results)
            groups.rows.update(method_rows(missing))
        for c in mine:
            groups.add(c, task, x_key, identity)
    return groups


def _candidates(groups: _Groups, metrics: Mapping[str, str]) -> dict[CellKey, list[Cell]]:
    """One candidate cell per hyper-parameter group: per-seed values averaged over its folds."""
    candidates: dict[CellKey, list[Cell]] = {}
    for key, members in groups.members.items():
        label, task, x, _ = key
        folds = {expand_sections(c.params).get("task.cv_fold") for c in members}
        values, tests = _fold_means(c.values for c in members), _fold_means(c.test_values for c in members)
        mean, std = mean_std(list(values.values()))
        test_mean, test_std = mean_std(list(tests.values()))
        candidates.setdefault((label, task, x), []).append(Cell(
            method=label, task=task, metric=metrics[task], x=x, mean=mean, std=std, values=values,
            n_folds=len([f for f in folds if f is not None]), config_ids=sorted(c.config_id for c in members),
            hyper=groups.hyper[key], test_values=tests, test_mean=test_mean, test_std=test_std,
            config={k: v for k, v in expand_sections(members[0].params).items() if k != "task.cv_fold"},
            chosen={s: v for c in members for s, v in c.chosen.items()}))
    return candidates


def _fold_means(per_config: Iterable[Mapping[int, float]]) -> dict[int, float]:
    """Seed -> the mean of its values over the configs (folds) that have one."""
    per_seed: dict[int, list[float]] = {}
    for values in per_config:
        for s, v in values.items():
            per_seed.setdefault(s, []).append(v)
    return {s: math.fsum(vs) / len(vs) for s, vs in sorted(per_seed.items())}


def _select(candidates: dict[CellKey, list[Cell]], mode: Mode) -> tuple[dict[CellKey, Cell], set[str]]:
    """The best candidate of each cell, and the hyper-parameters that took several values among candidates."""
    cells: dict[CellKey, Cell] = {}
    selected: set[str] = set()
    for key, options in candidates.items():
        ranked = sorted(options, key=lambda c: (-c.mean if mode == "max" else c.mean, c.std, -c.n_seeds,
                                                _hyper_key(c.hyper)))
        cells[key] = ranked[0]
        if len(options) > 1:
            keys = {k for c in options for k in c.hyper}
            selected |= {k for k in keys if len({param_str(c.hyper.get(k)) for c in options}) > 1}
    return cells, selected


def _mark_best(cells: dict[CellKey, Cell], tasks: Iterable[str], mode: Mode) -> None:
    """Bold: the best cell of each task (of each (task, x) for plots)."""
    for task in tasks:
        for x in {k[2] for k in cells if k[1] == task}:
            column = [c for k, c in cells.items() if k[1] == task and k[2] == x and c.n_seeds]
            if not column:
                continue
            top = column[0].mean
            for c in column:
                if better(c.mean, top, mode):
                    top = c.mean
            for c in column:
                c.best = c.mean == top


def build_table(summaries: Mapping[str, SweepSummary] | SweepSummary, task_metrics: Mapping[str, str] | None = None,
                x_key: str | None = None, epoch: str = "last") -> PaperTable:
    """Methods x tasks cells (x ``x_key`` values for plots) from one summary per metric.

    ``summaries``: metric name -> summary of the same results for that metric (a single summary is its
    own metric's); a task uses ``task_metrics.get(task)`` when that summary is present, else the first.
    """
    if isinstance(summaries, SweepSummary):
        summaries = {summaries.metric: summaries}
    primary = next(iter(summaries.values()))
    task_metrics = dict(task_metrics or {})
    tasks = tasks_of(primary)
    metrics = {t: (task_metrics[t] if task_metrics.get(t) in summaries else primary.metric) for t in tasks}
    groups = _group(summaries, primary, metrics, x_key)
    cells, selected = _select(_candidates(groups, metrics), primary.mode)
    _mark_best(cells, tasks, primary.mode)
    rows = {row.label: row for row in groups.rows.values()}
    methods = sorted({k[0] for k in cells}, key=lambda label: rows[label].order)
    pct = {t: is_fraction(metrics[t], [v for k, c in cells.items() if k[1] == t for v in c.values.values()])
           for t in tasks}
    return PaperTable(cells=cells, methods=methods, tasks=[t for t in tasks if any(k[1] == t for k in cells)],
                      metrics=metrics, mode=primary.mode, pct=pct, settings=groups.settings,
                      selected_over=sorted(selected), backbones=sorted(groups.backbones), x_key=x_key, epoch=epoch,
                      bases={m: base for m in methods if (base := rows[m].base) is not None},
                      protocols=sorted(groups.protocols))
