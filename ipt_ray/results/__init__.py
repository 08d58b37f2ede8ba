"""The shared results vocabulary: config ids, the params codec, seed/config/sweep summaries, aggregation,
several sweeps combined, the table renderer and the results plot. Imports neither Ray nor MLflow."""

from ipt_ray.results.context import SweepContext, combine_results, with_context
from ipt_ray.results.ids import (
    SECTIONS,
    config_id,
    display_str,
    expand_sections,
    flatten_params,
    jsonable,
    param_str,
    parse_param,
)
from ipt_ray.results.plots import DPI, MAX_PLOT_CONFIGS, agg_figure, plot, write_artifacts
from ipt_ray.results.summaries import (
    STATUSES,
    ConfigSummary,
    Epoch,
    Mode,
    SeedResult,
    SweepSummary,
    aggregate,
    at_best_epoch,
    better,
    chosen_text,
    dev_key,
    mean_std,
    result_epoch,
    results_from_tune,
    split_key,
    summary_from_json,
    summary_record,
    summary_to_json,
    to_float,
)
from ipt_ray.results.tables import (
    BEST_MARK,
    console_table,
    fmt_value,
    is_fraction,
    markdown_lines,
    mean_std_text,
    read_csv,
    render_console,
    shows_percent,
    to_csv,
    to_markdown,
    write_csv,
)

__all__ = [
    "SECTIONS", "config_id", "display_str", "expand_sections", "flatten_params", "jsonable", "param_str",
    "parse_param",
    "STATUSES", "ConfigSummary", "Epoch", "Mode", "SeedResult", "SweepSummary", "aggregate", "at_best_epoch",
    "better", "chosen_text", "dev_key", "mean_std", "result_epoch", "results_from_tune", "split_key", "summary_from_json",
    "summary_record",
    "summary_to_json", "to_float",
    "SweepContext", "combine_results", "with_context",
    "BEST_MARK", "console_table", "fmt_value", "is_fraction", "markdown_lines", "mean_std_text", "read_csv",
    "render_console", "shows_percent", "to_csv", "to_markdown", "write_csv",
    "DPI", "MAX_PLOT_CONFIGS", "agg_figure", "plot", "write_artifacts",
]
