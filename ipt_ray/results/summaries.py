"""Seed aggregation and result tables: mean and sample std per config, the best config, CSV/Markdown/PNG.

The unit of comparison is a *config* (one Tune trial's sampled search-space values); its seeds train
inside the trial, so every config has one value per seed: the dev metric at its last reported epoch.
A config is summarised by the mean and the sample standard deviation (ddof=1) over those values, and
the best config is chosen on the mean, as the paper does.

Inputs come from Tune (:func:`results_from_tune`, while the driver still holds the ``ResultGrid``) or
from MLflow alone (:func:`results_from_mlflow`, what ``ipt-ray report SWEEP...`` uses). Several sweeps
are combined by :func:`combine_results`, which adds what each sweep's parent run knows (its task, the
YAML's base sections: :class:`SweepContext`) to every seed's params. This module imports neither Ray
nor MLflow: the readers and :func:`log_report_artifacts` are duck-typed, and matplotlib is imported
only to plot. Paper-style tables (methods x tasks) live in :mod:`ipt_ray.paper`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

Mode = Literal["max", "min"]

#: Trial statuses, as the tracking tags (``ipt.status``) spell them.
STATUSES = ("completed", "early_stopped", "running", "failed")
# When one config ran in several trials, the most successful trial's status describes it.
_STATUS_RANK = {s: i for i, s in enumerate(STATUSES)}

_FIXED_CSV = ("config_id", "best", "status", "n_seeds")


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class SeedResult:
    """One seed of one trial: the dev metric at the trial's last reported epoch.

    ``value`` is NaN when the seed never reported; ``status`` is one of :data:`STATUSES`.
    """

    config_id: str
    trial_id: str
    seed: int
    value: float
    params: dict[str, Any]
    status: str


@dataclass
class ConfigSummary:
    """One config over its seeds. ``mean``/``std`` are NaN when no seed has a value (e.g. it failed)."""

    config_id: str
    trial_ids: list[str]
    params: dict[str, Any]
    values: dict[int, float]
    mean: float
    std: float
    n_seeds: int
    status: str
    best: bool = False

    @property
    def eligible(self) -> bool:
        """Whether this config may be the best: it has values and its trial did not fail."""
        return self.n_seeds > 0 and self.status != "failed"


@dataclass
class SweepSummary:
    """All configs of a sweep, best first; ``metric`` is the task metric name (e.g. ``accuracy``)."""

    metric: str
    mode: Mode
    configs: list[ConfigSummary] = field(default_factory=list)

    @property
    def best(self) -> ConfigSummary | None:
        return next((c for c in self.configs if c.best), None)


# ---------------------------------------------------------------- ids and params


def config_id(params: dict[str, Any]) -> str:
    """Stable short id of a config: 8 hex chars of sha1 over its sorted JSON.

    Stable across processes and restarts (unlike ``hash``), so MLflow runs of a resumed sweep and the
    report agree on which seeds belong together.
    """
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:8]


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``); flat dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def parse_param(text: str) -> Any:
    """Undo MLflow's/CSV's stringification of a param value: int, float, bool, None, JSON list/dict, else str."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def param_str(value: Any) -> str:
    """A param value as text that :func:`parse_param` reads back (JSON for lists and dicts)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def display_str(value: Any) -> str:
    """A param value for tables: floats to 4 significant digits (``0.01014``), the rest as ``param_str``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return param_str(value)


# ---------------------------------------------------------------- aggregation


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0.0 for one value). ``fsum`` keeps them independent of seed order."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))




def _rank_key(c: ConfigSummary, mode: Mode) -> tuple:
    """Best first: better mean, then lower std, then more seeds, then smaller config id (deterministic)."""
    return (-c.mean if mode == "max" else c.mean, c.std, -c.n_seeds, c.config_id)


def aggregate(results: Iterable[SeedResult], metric: str, mode: Mode = "max") -> SweepSummary:
    """Group seed results by config into a :class:`SweepSummary`, best config first.

    - Values of failed trials and non-finite values are dropped: a config whose trials all failed is
      listed (status ``failed``, ``n_seeds`` 0, NaN mean) but is never the best.
    - An early-stopped (or still running) config is eligible only through the seeds it reported; its
      last value is compared as is (schedulers stop the weak ones, so it rarely wins).
    - If one config ran in several trials and a seed appears twice, the seed of the most successful
      trial is kept (then the smaller trial id), so repeated configs are not double counted.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
    groups: dict[str, list[SeedResult]] = {}
    for r in results:
        groups.setdefault(r.config_id, []).append(r)

    configs: list[ConfigSummary] = []
    for cid, rows in groups.items():
        rows = sorted(rows, key=lambda r: (_STATUS_RANK.get(r.status, len(STATUSES)), r.trial_id, r.seed))
        values: dict[int, float] = {}
        for r in rows:
            if r.status != "failed" and math.isfinite(r.value) and r.seed not in values:
                values[r.seed] = float(r.value)
        values = dict(sorted(values.items()))
        mean, std = mean_std(list(values.values()))
        configs.append(ConfigSummary(
            config_id=cid,
            trial_ids=sorted({r.trial_id for r in rows}),
            params=dict(rows[0].params),
            values=values,
            mean=mean,
            std=std,
            n_seeds=len(values),
            status=rows[0].status,
            best=False,
        ))

    eligible = sorted((c for c in configs if c.eligible), key=lambda c: _rank_key(c, mode))
    rest = sorted((c for c in configs if not c.eligible), key=lambda c: c.config_id)
    if eligible:
        eligible[0].best = True
    return SweepSummary(metric=metric, mode=mode, configs=eligible + rest)


# ---------------------------------------------------------------- readers


def _dev_key(metric: str) -> str:
    """``accuracy`` -> ``dev_accuracy`` (the trial reports dev metrics); an explicit ``dev_`` name stays."""
    return metric if metric.startswith("dev_") else f"dev_{metric}"


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def result_epoch(result: dict[str, Any]) -> int:
    """The epoch a Tune result reports (our loop's ``epoch``; Tune's ``training_iteration`` otherwise)."""
    return int(result.get("epoch", result.get("training_iteration", 0)))


def results_from_tune(result_grid: Iterable[Any], metric: str, seeds: Sequence[int],
                      max_epochs: int | None = None) -> list[SeedResult]:
    """Seed results from a ``ray.tune.ResultGrid`` (or anything yielding objects with ``metrics``,
    ``config``, ``error`` and optionally ``path``).

    Reads ``dev_<metric>/seed_<s>`` from each trial's last result. Status: ``failed`` when the trial
    has an error or never reported; else ``completed`` when its last epoch reached ``max_epochs``
    (or ``max_epochs`` is None), ``early_stopped`` otherwise.
    """
    key = _dev_key(metric)
    out: list[SeedResult] = []
    for res in result_grid:
        metrics = dict(getattr(res, "metrics", None) or {})
        config = dict(getattr(res, "config", None) or metrics.get("config") or {})
        trial_id = str(metrics.get("trial_id") or Path(str(getattr(res, "path", "") or "")).name or "?")
        if getattr(res, "error", None) is not None or not metrics:
            status = "failed"
        elif max_epochs is None or result_epoch(metrics) >= max_epochs:
            status = "completed"
        else:
            status = "early_stopped"
        cid = config_id(config)
        params = flatten_params(config)
        for s in seeds:
            out.append(SeedResult(cid, trial_id, int(s), _float(metrics.get(f"{key}/seed_{s}")), params, status))
    return out


Epoch = Literal["last", "best"]


def results_from_mlflow(runs: Iterable[Any], metric: str, *, epoch: Epoch = "last",
                        history: Callable[[str, str], Iterable[Any]] | None = None,
                        mode: Mode = "max") -> list[SeedResult]:
    """Seed results from the child runs of a sweep (``tracking.find_sweep_runs``), MLflow alone.

    ``epoch="last"`` (default): the value is ``run.data.metrics["dev_<metric>"]``, which MLflow keeps
    as the value at the largest step, i.e. the last epoch (the tracker never logs a step twice): no
    metric-history calls needed.

    ``epoch="best"``: early stopping on dev, as P-tuning v2 reports. ``history(run_id, key)`` (e.g.
    ``MlflowClient.get_metric_history``) gives each run's per-epoch values; per config, the epoch with
    the best seed mean (``mode``; the earliest on ties) is chosen, and every seed reports its value at
    that epoch, so all seeds of a config are read at the same epoch.

    Params come back as text and are parsed to int/float/bool where they look like one.
    """
    if epoch not in ("last", "best"):
        raise ValueError(f"epoch must be 'last' or 'best', not {epoch!r}")
    if epoch == "best" and history is None:
        raise ValueError("epoch 'best' needs history(run_id, key), e.g. MlflowClient.get_metric_history")
    key = _dev_key(metric)
    out: list[SeedResult] = []
    curves: list[dict[int, float]] = []
    for run in runs:
        tags = run.data.tags
        if "ipt.config_id" not in tags or "ipt.seed" not in tags:
            continue
        params = {k: parse_param(v) for k, v in run.data.params.items() if k != "seed"}
        status = tags.get("ipt.status", "running")
        out.append(SeedResult(
            config_id=tags["ipt.config_id"],
            trial_id=tags.get("ipt.trial_id", run.info.run_id),
            seed=int(tags["ipt.seed"]),
            value=_float(run.data.metrics.get(key)),
            params=params,
            status=status,
        ))
        if epoch == "best":
            points = {int(m.step): _float(m.value) for m in history(run.info.run_id, key)}  # type: ignore[misc]
            curves.append({s: v for s, v in points.items() if math.isfinite(v)})
    if epoch == "best":
        out = _at_best_epoch(out, curves, mode)
    return out


def _at_best_epoch(results: list[SeedResult], curves: list[dict[int, float]], mode: Mode) -> list[SeedResult]:
    """Each config's seeds read at the epoch with the best seed mean (ties: the earliest epoch)."""
    by_config: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        by_config.setdefault(r.config_id, []).append(i)
    out = list(results)
    for members in by_config.values():
        steps = sorted({s for i in members for s in curves[i]})
        scored = []
        for step in steps:
            values = [curves[i][step] for i in members if step in curves[i]]
            mean = math.fsum(values) / len(values)
            scored.append((-mean if mode == "max" else mean, step))
        if not scored:
            continue
        best_step = min(scored)[1]
        for i in members:
            out[i] = replace(results[i], value=curves[i].get(best_step, math.nan))
    return out


# ---------------------------------------------------------------- several sweeps


SECTIONS = ("task", "backbone", "method", "train")
#: Base-YAML fields a sweep's trials share that :meth:`SweepContext.shared_params` adds to their params.
_SHARED_FIELDS: dict[str, tuple[str, ...] | None] = {
    "task": None, "method": None, "backbone": ("name",), "train": ("lr", "epochs", "batch_size")}
_NOT_SHARED = {"task.data_dir", "task.source"}  # where the data came from, not what was run


def expand_sections(params: dict[str, Any]) -> dict[str, Any]:
    """Section-valued params (``{"method": {"strategy": ...}}``, or that mapping as JSON text, as Tune and
    MLflow hold a ``method`` search dimension) become dotted keys (``method.strategy``); others pass."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in SECTIONS and isinstance(value, str) and value[:1] == "{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if key in SECTIONS and isinstance(value, dict):
            out.update(flatten_params(value, prefix=f"{key}."))
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class SweepContext:
    """What a sweep's parent run knows about all of its trials.

    ``params``: the parent run's params (``task``, ``backbone``, ``seeds``, ...); ``base``: the experiment
    YAML it stored (sections as mappings; ``{}`` when the artifact is unavailable).
    """

    name: str
    sweep_id: str
    params: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)

    def shared_params(self) -> dict[str, Any]:
        """Dotted params every trial of this sweep shares: the YAML's explicit ``task`` and ``method``
        fields, ``backbone.name`` and ``train.lr/epochs/batch_size`` (so the task of a sweep that did
        not search it, and the base method of one that searched part of it, are known). ``task.name``
        and ``backbone.name`` come from the parent run's params when it has them."""
        out: dict[str, Any] = {}
        for section, keys in _SHARED_FIELDS.items():
            values = self.base.get(section)
            if not isinstance(values, dict):
                continue
            for k, v in values.items():
                name = f"{section}.{k}"
                if (keys is None or k in keys) and name not in _NOT_SHARED and not isinstance(v, (dict, list)):
                    out[name] = v
        # The parent's params come from the effective config, the stored YAML from the file as written
        # (before any --set): for the task and backbone, the params win.
        for name, param in (("task.name", "task"), ("backbone.name", "backbone")):
            if param in self.params:
                out[name] = self.params[param]
        return out


def with_context(results: Iterable[SeedResult], context: SweepContext, reid: bool = False) -> list[SeedResult]:
    """``results`` with the sweep's :meth:`~SweepContext.shared_params` under their own params (section
    params expanded to dotted keys). ``reid``: recompute config ids from the merged params, so that the
    same sampled values in sweeps of different tasks stay apart (and equal configs of two sweeps of the
    same task merge, one value per seed)."""
    shared = context.shared_params()
    out = []
    for r in results:
        params = {**shared, **expand_sections(r.params)}
        out.append(replace(r, config_id=config_id(params) if reid else r.config_id, params=params))
    return out


def combine_results(per_sweep: Sequence[tuple[SweepContext, Iterable[SeedResult]]]) -> list[SeedResult]:
    """The seed results of several sweeps as one set (:func:`with_context` each; ids recomputed when
    there is more than one sweep). One sweep keeps its MLflow config ids."""
    reid = len(per_sweep) > 1
    return [r for ctx, results in per_sweep for r in with_context(results, ctx, reid=reid)]


def sweep_context_from_mlflow(client: Any, runs: Sequence[Any]) -> SweepContext:
    """The :class:`SweepContext` of the sweep that ``runs`` (its child runs) belong to.

    ``client`` is duck-typed like ``MlflowClient`` (``get_run``, ``download_artifacts``). The parent is
    the child's ``mlflow.parentRunId``; a missing parent or YAML artifact leaves those fields empty.
    """
    import yaml

    tags = runs[0].data.tags if runs else {}
    sweep_id = str(tags.get("ipt.sweep_id", ""))
    parent_id = tags.get("mlflow.parentRunId")
    if not parent_id:
        return SweepContext(name=sweep_id, sweep_id=sweep_id)
    parent = client.get_run(parent_id)
    params = {k: parse_param(v) for k, v in parent.data.params.items()}
    name = str(parent.data.tags.get("mlflow.runName") or getattr(parent.info, "run_name", "") or sweep_id)
    base: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ipt-report-") as tmp:
            path = client.download_artifacts(parent_id, "experiment.yaml", tmp)
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        base = loaded if isinstance(loaded, dict) else {}
    except Exception:  # noqa: BLE001 - no artifact / unreadable YAML: labels fall back to the trial params
        base = {}
    return SweepContext(name=name, sweep_id=sweep_id, params=params, base=base)


def log_report_artifacts(client: Any, runs: Sequence[Any], paths: Iterable[Path],
                         artifact_path: str = "paper") -> str | None:
    """Upload report files into the sweep's aggregate run (under ``artifact_path``); its run id, or None
    when the sweep has no aggregate run (e.g. its driver stopped before aggregating).

    ``client`` is duck-typed like ``MlflowClient`` (``search_runs``, ``log_artifact``).
    """
    if not runs:
        return None
    sweep_id = runs[0].data.tags.get("ipt.sweep_id")
    if not sweep_id or "'" in sweep_id:
        return None
    found = client.search_runs([runs[0].info.experiment_id],
                               f"tags.`ipt.sweep_id` = '{sweep_id}' and tags.`ipt.kind` = 'aggregate'",
                               max_results=1)
    if not found:
        return None
    run_id = found[0].info.run_id
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)
    return run_id


# ---------------------------------------------------------------- tables


def is_fraction(metric: str, values: Iterable[float]) -> bool:
    """Accuracy-like metrics (all values in [0, 1], not a loss) are shown in percent, as papers do."""
    values = list(values)
    return "loss" not in metric and bool(values) and all(0.0 <= v <= 1.0 for v in values)


def _is_fraction(summary: SweepSummary) -> bool:
    return is_fraction(summary.metric, (v for c in summary.configs for v in c.values.values()))


def fmt_value(x: float, pct: bool) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.4g}"


def _fmt_mean_std(c: ConfigSummary, pct: bool) -> str:
    if c.n_seeds == 0:
        return "-"
    return f"{fmt_value(c.mean, pct)} ± {fmt_value(c.std, pct)}"


def _param_columns(summary: SweepSummary) -> list[str]:
    """Params that vary across configs (the informative ones); all of them when nothing varies."""
    keys = sorted({k for c in summary.configs for k in c.params})
    varying = [k for k in keys if len({param_str(c.params.get(k, "")) for c in summary.configs}) > 1]
    return varying or keys


def _rows(summary: SweepSummary) -> tuple[list[str], list[list[str]]]:
    """Header and text cells shared by the Markdown and the console tables."""
    pct = _is_fraction(summary)
    keys = _param_columns(summary)
    header = ["config", *keys, "seeds", f"{summary.metric} mean ± std" + (" (%)" if pct else ""), "status"]
    rows = [[c.config_id, *(display_str(c.params.get(k, "")) for k in keys), str(c.n_seeds),
             _fmt_mean_std(c, pct), c.status] for c in summary.configs]
    return header, rows


def to_markdown(summary: SweepSummary) -> str:
    """A Markdown table, best config first; the best row is bold and starred."""
    header, rows = _rows(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for c, cells in zip(summary.configs, rows):
        cells = [x.replace("|", "\\|") for x in cells]
        if c.best:
            cells[0] = f"★ {cells[0]}"
            cells = [f"**{x}**" for x in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_console(summary: SweepSummary) -> str:
    """The Markdown table's content as a fixed-width table for the terminal; the best row is starred."""
    header, rows = _rows(summary)
    rows = [[("★ " if c.best else "  ") + cells[0], *cells[1:]] for c, cells in zip(summary.configs, rows)]
    header = ["  " + header[0], *header[1:]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda cells: "  ".join(x.ljust(w) for x, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- files


def _seeds(summary: SweepSummary) -> list[int]:
    return sorted({s for c in summary.configs for s in c.values})


def to_csv(summary: SweepSummary, path: str | Path) -> Path:
    """One row per config: id, best flag, status, n, ``<metric>_mean``/``_std``, params, ``seed_<s>``, trials.

    Floats are written in full precision (``repr``) so that :func:`read_csv` gives the same numbers.
    """
    path = Path(path)
    keys = sorted({k for c in summary.configs for k in c.params})
    seeds = _seeds(summary)
    m = summary.metric
    header = [*_FIXED_CSV, f"{m}_mean", f"{m}_std", *keys, *(f"seed_{s}" for s in seeds), "trial_ids"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for c in summary.configs:
            w.writerow([c.config_id, int(c.best), c.status, c.n_seeds, repr(c.mean), repr(c.std),
                        *(display_str(c.params[k]) if k in c.params else "" for k in keys),
                        *(repr(c.values[s]) if s in c.values else "" for s in seeds),
                        ";".join(c.trial_ids)])
    return path


def read_csv(path: str | Path, mode: Mode = "max") -> SweepSummary:
    """Read a :func:`to_csv` file back (the metric from the ``*_mean`` column, best flag as written)."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    mean_col = next(c for c in columns if c.endswith("_mean") and c not in _FIXED_CSV)
    metric = mean_col[: -len("_mean")]
    std_col = f"{metric}_std"
    seed_cols = [c for c in columns if c.startswith("seed_") and c[5:].isdigit()]
    param_cols = [c for c in columns if c not in {*_FIXED_CSV, mean_col, std_col, "trial_ids", *seed_cols}]
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
    ) for r in rows]
    return SweepSummary(metric=metric, mode=mode, configs=configs)


MAX_PLOT_CONFIGS = 40


def plot(summary: SweepSummary, path: str | Path) -> Path:
    """Bar chart of mean ± std (error bar) per config, best first and highlighted; PNG via Agg.

    Uses ``Figure`` + ``FigureCanvasAgg`` directly rather than pyplot, so that no global backend or
    figure state changes in the calling process (the Tune driver). Shows the best
    :data:`MAX_PLOT_CONFIGS` configs at most.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    configs = summary.configs[:MAX_PLOT_CONFIGS]
    pct = _is_fraction(summary)
    scale = 100.0 if pct else 1.0
    fig = Figure(figsize=(max(4.0, 0.55 * len(configs) + 1.5), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = list(range(len(configs)))
    means = [c.mean * scale if c.n_seeds else 0.0 for c in configs]
    stds = [c.std * scale if c.n_seeds else 0.0 for c in configs]
    colors = ["tab:orange" if c.best else ("lightgray" if not c.eligible else "tab:blue") for c in configs]
    ax.bar(xs, means, yerr=stds, color=colors, capsize=3, edgecolor="black", linewidth=0.5)
    for x, c in zip(xs, configs):
        if c.n_seeds == 0:
            ax.text(x, 0, c.status, rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [("★ " if c.best else "") + c.config_id for c in configs], rotation=45, ha="right",
                  fontsize=7)
    ax.set_ylabel(f"dev {summary.metric}" + (" (%)" if pct else ""))
    shown = f" (best {len(configs)} of {len(summary.configs)})" if len(configs) < len(summary.configs) else ""
    ax.set_title(f"{summary.metric}: mean ± std over seeds{shown}", fontsize=9)
    fig.savefig(path, dpi=120)
    return path


def write_artifacts(summary: SweepSummary, out_dir: str | Path) -> dict[str, Path]:
    """``results.csv``, ``results.md`` and ``results.png`` in ``out_dir``: what the aggregate run stores."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "results.md"
    md.write_text(to_markdown(summary), encoding="utf-8")
    return {"csv": to_csv(summary, out / "results.csv"), "md": md, "png": plot(summary, out / "results.png")}
