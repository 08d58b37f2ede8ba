"""The paper-style report in one namespace (``from ipt_ray.report import paper``): labels, the methods x
tasks table, its rendering, published numbers, significance tests, plots and ``ipt-ray report``.

How a cell is made: :mod:`ipt_ray.report.table`; how a config is named: :mod:`ipt_ray.report.labels`;
which numbers are quoted and from where: :mod:`ipt_ray.report.published`; how our runs differ from the
paper's: :mod:`ipt_ray.report.differences`.
"""

from ipt_ray.report.labels import (
    DEFAULT_TASK_METRICS,
    METRIC_NAMES,
    SHARED_QUALIFIERS,
    TASK_NAMES,
    TASK_ORDER,
    MethodRow,
    base_label,
    effective_method,
    identity_params,
    method_label,
    method_labels,
    method_order,
    method_rows,
    task_name,
    task_of,
    task_order,
)
from ipt_ray.report.plots import PLOT_KEYS, plot, plot_keys
from ipt_ray.report.differences import Comparison, Difference, compare, differences
from ipt_ray.report.published import (
    HARD_PROMPTS,
    OTHER_PUBLISHED,
    PAPER,
    SOURCES,
    TABLES,
    MethodIdentity,
    PaperTableInfo,
    PublishedValue,
    QuotedValue,
    Source,
    other_published,
    paper_identity,
    paper_table_of,
    paper_value,
    published_values,
)
from ipt_ray.report.render import table_title, to_csv, to_markdown
from ipt_ray.report.significance import significance, significance_markdown, welch
from ipt_ray.report.sweeps import report_sweeps, write_artifacts
from ipt_ray.report.table import Cell, PaperTable, build_table, parse_task_metrics, tasks_of

__all__ = [
    "DEFAULT_TASK_METRICS", "METRIC_NAMES", "SHARED_QUALIFIERS", "TASK_NAMES", "TASK_ORDER", "MethodRow",
    "base_label", "effective_method", "identity_params", "method_label", "method_labels", "method_order",
    "method_rows", "task_name", "task_of", "task_order",
    "PLOT_KEYS", "plot", "plot_keys",
    "Comparison", "Difference", "compare", "differences",
    "HARD_PROMPTS", "OTHER_PUBLISHED", "PAPER", "SOURCES", "TABLES", "MethodIdentity", "PaperTableInfo",
    "PublishedValue", "QuotedValue", "Source", "other_published", "paper_identity", "paper_table_of",
    "paper_value", "published_values",
    "table_title", "to_csv", "to_markdown",
    "significance", "significance_markdown", "welch",
    "report_sweeps", "write_artifacts",
    "Cell", "PaperTable", "build_table", "parse_task_metrics", "tasks_of",
]
