"""Metric vs a hyper-parameter (prompt length, sequence utilisation rate): one panel per task, one line
per method, error bars = std over seeds."""

from __future__ import annotations

from pathlib import Path

from ipt_ray.report.labels import task_name
from ipt_ray.report.table import PaperTable
from ipt_ray.results import DPI, SweepSummary, agg_figure, expand_sections, param_str

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

    Drawn on ``ipt_ray.results.agg_figure`` (no pyplot state), like the sweep results plot.
    """
    if table.x_key is None:
        raise ValueError("plot() needs a table built with x_key")
    path = Path(path)
    n = max(1, len(table.tasks))
    fig = agg_figure(4.2 * n + 1.0, 3.6)
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
    fig.savefig(path, dpi=DPI)
    return path
