"""``ipt-ray report SWEEP...``: the results table of one or more sweeps and, when they compare methods or
tasks, the paper-style table, significance tests and plots, written and logged to MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ipt_ray import results
from ipt_ray.report.labels import DEFAULT_TASK_METRICS
from ipt_ray.report.plots import plot, plot_keys
from ipt_ray.report.render import table_title, to_csv, to_markdown
from ipt_ray.report.significance import significance_markdown
from ipt_ray.report.table import PaperTable, build_table, tasks_of
from ipt_ray.results import Mode, SweepContext, SweepSummary
from ipt_ray.tracking import log_report_artifacts, results_from_mlflow, sweep_context_from_mlflow


def write_artifacts(summaries: Mapping[str, SweepSummary] | SweepSummary, out_dir: str | Path,
                    task_metrics: Mapping[str, str] | None = None, epoch: str = "last",
                    table: PaperTable | None = None) -> dict[str, Path]:
    """``paper.md`` / ``paper.csv`` (methods x tasks), ``significance.md`` when a test applies, and, for each
    :data:`~ipt_ray.report.plots.PLOT_KEYS` the results vary, ``<key>.png`` / ``<key>.csv`` (e.g.
    ``prompt_length.png``) and, where a variant meets its base, ``<key>_significance.md`` (a test at each
    value) in ``out_dir``. ``table``: the methods x tasks table of these arguments when the
    caller has built it already."""
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
        tests = significance_markdown(curve)  # each variant against its base at each value of the key
        if tests:
            (out / f"{name}_significance.md").write_text(tests, encoding="utf-8")
            paths[f"{name}_significance_md"] = out / f"{name}_significance.md"
    return paths


def _summaries(client: Any, sweeps: Sequence[Sequence[Any]], contexts: list[SweepContext], metric: str,
               mode: Mode, epoch: str, task_metrics: Mapping[str, str]) -> tuple[SweepSummary, dict[str, SweepSummary]]:
    """The results table's summary (one sweep keeps its MLflow config ids), and one summary of the combined
    sweeps per metric a task column shows."""
    history = client.get_metric_history if epoch == "best" else None

    def read(name: str) -> list[list[Any]]:
        return [results_from_mlflow(runs, name, epoch=epoch, history=history,  # type: ignore[arg-type]
                                    mode=mode) for runs in sweeps]

    raw = read(metric)
    combined = results.combine_results(list(zip(contexts, raw)))
    summary = results.aggregate(raw[0] if len(sweeps) == 1 else combined, metric, mode)
    summaries = {metric: summary if len(sweeps) > 1 else results.aggregate(combined, metric, mode)}
    for task in tasks_of(summaries[metric]):
        wanted = task_metrics.get(task)
        if wanted and wanted not in summaries:
            summaries[wanted] = results.aggregate(results.combine_results(list(zip(contexts, read(wanted)))),
                                                  wanted, mode)
    return summary, summaries


def _log_paper_files(client: Any, sweeps: Sequence[Sequence[Any]], contexts: list[SweepContext],
                     written: dict[str, Path], echo: Callable[[str], Any]) -> None:
    """Upload the paper files into each sweep's aggregate run, under ``paper/``."""
    for ctx, runs in zip(contexts, sweeps):
        run_id = log_report_artifacts(client, runs, written.values(), "paper")
        echo(f"logged {', '.join(p.name for p in written.values())} to the aggregate run {run_id} "
             f"of sweep {ctx.name} (artifacts: paper/)" if run_id else
             f"sweep {ctx.name} has no aggregate run: paper artifacts not logged")


def report_sweeps(client: Any, sweeps: Sequence[Sequence[Any]], *, metric: str = "accuracy", mode: Mode = "max",
                  out: str | Path | None = None, force_paper: bool = False,
                  task_metrics: Mapping[str, str] | None = None, epoch: str = "last", log: bool = True,
                  echo: Any = print) -> dict[str, Any]:
    """What ``ipt-ray report SWEEP...`` does once it has each sweep's child runs.

    - The results table of the configs (as before): one sweep keeps its MLflow config ids; several are
      combined (``ipt_ray.results.combine_results``), ``task.name`` telling their tasks apart.
    - When the results compare methods and/or tasks, or ``force_paper``: the methods x tasks table
      (printed), written with the plots as ``paper.*`` / ``<key>.*`` under ``out``, and uploaded into each
      sweep's aggregate run under ``paper/`` (unless ``log`` is false).

    ``client`` is duck-typed like ``MlflowClient``. Returns ``summary``, ``table`` and ``paths``.
    """
    contexts = [sweep_context_from_mlflow(client, runs) for runs in sweeps]
    task_metrics = dict(DEFAULT_TASK_METRICS if task_metrics is None else task_metrics)
    summary, summaries = _summaries(client, sweeps, contexts, metric, mode, epoch, task_metrics)
    echo(results.render_console(summary))
    table = build_table(summaries, task_metrics, epoch=epoch)
    paths: dict[str, Path] = {}
    if out:
        paths.update(results.write_artifacts(summary, Path(out)))
    if force_paper or table.compares:
        echo(to_markdown(table, title=table_title(table)))
        tests = significance_markdown(table)
        if tests:
            echo(tests)
        with tempfile.TemporaryDirectory(prefix="ipt-paper-") as tmp:
            written = write_artifacts(summaries, Path(out) if out else Path(tmp), task_metrics, epoch=epoch,
                                      table=table)
            if log:
                _log_paper_files(client, sweeps, contexts, written, echo)
            if out:
                paths.update(written)
    if paths:
        echo(f"written: {', '.join(str(p) for p in paths.values())}")
    return {"summary": summary, "table": table, "paths": paths}
