"""The sweep results plot (mean ± std per config) and the figure every results plot is drawn on.

Plots use ``Figure`` + ``FigureCanvasAgg`` directly rather than pyplot, so that no global backend or
figure state changes in the calling process (the Tune driver); matplotlib is imported only to plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ipt_ray.results.summaries import SweepSummary
from ipt_ray.results.tables import BEST_MARK, shows_percent, to_csv, to_markdown

MAX_PLOT_CONFIGS = 40
DPI = 120


def agg_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` (constrained layout) on its own Agg canvas: no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: only when plotting
    from matplotlib.figure import Figure  # heavy: only when plotting

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot(summary: SweepSummary, path: str | Path) -> Path:
    """Bar chart of mean ± std (error bar) per config, best first and highlighted; a PNG.

    Shows the best :data:`MAX_PLOT_CONFIGS` configs at most.
    """
    path = Path(path)
    configs = summary.configs[:MAX_PLOT_CONFIGS]
    pct = shows_percent(summary)
    scale = 100.0 if pct else 1.0
    fig = agg_figure(max(4.0, 0.55 * len(configs) + 1.5), 3.6)
    ax = fig.add_subplot()
    xs = list(range(len(configs)))
    means = [c.mean * scale if c.n_seeds else 0.0 for c in configs]
    stds = [c.std * scale if c.n_seeds else 0.0 for c in configs]
    colors = ["tab:orange" if c.best else ("lightgray" if not c.eligible else "tab:blue") for c in configs]
    ax.bar(xs, means, yerr=stds, color=colors, capsize=3, edgecolor="black", linewidth=0.5)
    for x, c in zip(xs, configs):
        if c.n_seeds == 0:
            ax.text(x, 0, c.status, rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [(BEST_MARK if c.best else "") + c.config_id for c in configs], rotation=45, ha="right",
                  fontsize=7)
    ax.set_ylabel(f"dev {summary.metric}" + (" (%)" if pct else ""))
    shown = f" (best {len(configs)} of {len(summary.configs)})" if len(configs) < len(summary.configs) else ""
    ax.set_title(f"{summary.metric}: mean ± std over seeds{shown}", fontsize=9)
    fig.savefig(path, dpi=DPI)
    return path


def write_artifacts(summary: SweepSummary, out_dir: str | Path) -> dict[str, Path]:
    """``results.csv``, ``results.md`` and ``results.png`` in ``out_dir``: what the aggregate run stores."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "results.md"
    md.write_text(to_markdown(summary), encoding="utf-8")
    return {"csv": to_csv(summary, out / "results.csv"), "md": md, "png": plot(summary, out / "results.png")}
