"""Seed aggregation: mean and sample std per config over its seeds, and the best config.

The unit of comparison is a *config* (one Tune trial's sampled search-space values); its seeds train
inside the trial, so every config has one value per seed: the dev metric at its last reported epoch
(or at its best epoch: :func:`at_best_epoch`). A config is summarised by the mean and the sample standard
deviation (ddof=1) over those values, and the best config is chosen on the mean, as the paper does.

Where the protocol has a test split, each seed also carries its test metric at the same (dev-selected)
epoch, summarised the same way; it is reported beside dev and never ranks anything.

Inputs come from Tune (:func:`results_from_tune`, while the driver still holds the ``ResultGrid``;
duck-typed, no Ray import) or from MLflow alone (``ipt_ray.tracking.results_from_mlflow``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from ipt_ray.results.ids import config_id, display_str, flatten_params, jsonable

Mode = Literal["max", "min"]
#: Which epoch of a run a seed's value is read at: its last, or the one with the best seed mean.
Epoch = Literal["last", "best"]

#: Trial statuses, as the tracking tags (``ipt.status``) spell them.
STATUSES = ("completed", "early_stopped", "running", "failed")
# When one config ran in several trials, the most successful trial's status describes it.
_STATUS_RANK = {s: i for i, s in enumerate(STATUSES)}


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class SeedResult:
    """One seed of one trial: the dev metric at the trial's last reported epoch (or its dev-selected one).

    ``value`` is NaN when the seed never reported; ``status`` is one of :data:`STATUSES`. ``test``: the
    test metric at the same epoch, NaN when the protocol has no test split (reported only).
    """

    config_id: str
    trial_id: str
    seed: int
    value: float
    params: dict[str, Any]
    status: str
    test: float = math.nan
    chosen: dict[str, Any] = field(default_factory=dict)  # few-shot: the values selection chose for this seed


@dataclass
class ConfigSummary:
    """One config over its seeds. ``mean``/``std`` are NaN when no seed has a value (e.g. it failed).

    ``values``/``mean``/``std`` are dev (what ranks the configs); ``test_values``/``test_mean``/``test_std``
    the test metric of the same seeds at the same epochs, empty / NaN without a test split.
    """

    config_id: str
    trial_ids: list[str]
    params: dict[str, Any]
    values: dict[int, float]
    mean: float
    std: float
    n_seeds: int
    status: str
    best: bool = False
    test_values: dict[int, float] = field(default_factory=dict)
    test_mean: float = math.nan
    test_std: float = math.nan
    #: seed -> the hyper-parameters selection chose for that seed (few-shot: per data seed, by
    #: cross-validation); empty when the config's own params are what ran.
    chosen: dict[int, dict[str, Any]] = field(default_factory=dict)

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

    @property
    def seeds(self) -> list[int]:
        """Every seed any config has a value for, in order."""
        return sorted({s for c in self.configs for s in c.values})

    @property
    def has_test(self) -> bool:
        """Whether any config has test values (its protocol had a test split)."""
        return any(c.test_values for c in self.configs)

    @property
    def test_seeds(self) -> list[int]:
        """Every seed any config has a test value for, in order."""
        return sorted({s for c in self.configs for s in c.test_values})


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


def better(a: float, b: float, mode: Mode) -> bool:
    """Whether ``a`` beats ``b`` under ``mode``."""
    return a > b if mode == "max" else a < b


def _rank_key(c: ConfigSummary, mode: Mode) -> tuple:
    """Best first: better mean, then lower std, then more seeds, then smaller config id (deterministic)."""
    return (-c.mean if mode == "max" else c.mean, c.std, -c.n_seeds, c.config_id)


def _summarise(cid: str, rows: list[SeedResult]) -> ConfigSummary:
    """One config's seeds: the most successful trial's seed wins a duplicate; failed and non-finite dropped.
    A seed's test value comes from the row its dev value came from (the same trial and epoch)."""
    rows = sorted(rows, key=lambda r: (_STATUS_RANK.get(r.status, len(STATUSES)), r.trial_id, r.seed))
    values: dict[int, float] = {}
    tests: dict[int, float] = {}
    chosen: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r.status != "failed" and math.isfinite(r.value) and r.seed not in values:
            values[r.seed] = float(r.value)
            if math.isfinite(r.test):
                tests[r.seed] = float(r.test)
            if r.chosen:
                chosen[r.seed] = dict(r.chosen)
    values, tests = dict(sorted(values.items())), dict(sorted(tests.items()))
    mean, std = mean_std(list(values.values()))
    test_mean, test_std = mean_std(list(tests.values()))
    return ConfigSummary(config_id=cid, trial_ids=sorted({r.trial_id for r in rows}), params=dict(rows[0].params),
                         values=values, mean=mean, std=std, n_seeds=len(values), status=rows[0].status,
                         test_values=tests, test_mean=test_mean, test_std=test_std, chosen=dict(sorted(chosen.items())))


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
    configs = [_summarise(cid, rows) for cid, rows in groups.items()]
    eligible = sorted((c for c in configs if c.eligible), key=lambda c: _rank_key(c, mode))
    rest = sorted((c for c in configs if not c.eligible), key=lambda c: c.config_id)
    if eligible:
        eligible[0].best = True
    return SweepSummary(metric=metric, mode=mode, configs=eligible + rest)


def at_best_epoch(results: list[SeedResult], curves: list[dict[int, float]], mode: Mode,
                  test_curves: list[dict[int, float]] | None = None) -> list[SeedResult]:
    """Each config's seeds read at the epoch with the best seed mean (ties: the earliest epoch).

    ``curves[i]``: epoch -> finite dev value of ``results[i]``'s run. All seeds of a config are read at
    the same epoch (early stopping on dev, as P-tuning v2 reports); a seed without that epoch gets NaN.
    ``test_curves[i]`` (optional, same form): the test values, read at that dev-chosen epoch (NaN where
    missing); they never choose the epoch.
    """
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
            test = test_curves[i].get(best_step, math.nan) if test_curves is not None else results[i].test
            out[i] = replace(results[i], value=curves[i].get(best_step, math.nan), test=test)
    return out


# ---------------------------------------------------------------- reading Tune results


def dev_key(metric: str) -> str:
    """``accuracy`` -> ``dev_accuracy`` (the trial reports dev metrics); an explicit ``dev_`` name stays."""
    return metric if metric.startswith("dev_") else f"dev_{metric}"


def split_key(metric: str, split: str = "test") -> str:
    """``accuracy`` (or ``dev_accuracy``) -> ``test_accuracy``: the same metric on another split."""
    return f"{split}_{dev_key(metric)[len('dev_'):]}"


def to_float(value: Any) -> float:
    """``value`` as a float; NaN when it is missing or not a number."""
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

    Reads ``dev_<metric>/seed_<s>`` (and ``test_<metric>/seed_<s>`` where reported) from each trial's
    last result. Status: ``failed`` when the trial has an error or never reported; else ``completed``
    when its last epoch reached ``max_epochs`` (or ``max_epochs`` is None), ``early_stopped`` otherwise.
    """
    key, test = dev_key(metric), split_key(metric)
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
            out.append(SeedResult(cid, trial_id, int(s), to_float(metrics.get(f"{key}/seed_{s}")), params, status,
                                  test=to_float(metrics.get(f"{test}/seed_{s}"))))
    return out


# ---------------------------------------------------------------- summaries as JSON


def summary_to_json(summary: SweepSummary) -> dict[str, Any]:
    """A lossless JSON form of ``summary`` (what the tracker journals); :func:`summary_from_json` reads it."""
    configs = []
    for c in summary.configs:
        d = dataclasses.asdict(c)
        d["values"] = {str(k): v for k, v in c.values.items()}
        d["test_values"] = {str(k): v for k, v in c.test_values.items()}
        d["chosen"] = {str(k): v for k, v in c.chosen.items()}
        configs.append(d)
    return jsonable({"metric": summary.metric, "mode": summary.mode, "configs": configs})


def summary_from_json(data: dict[str, Any]) -> SweepSummary:
    configs = [ConfigSummary(**{**c, "values": {int(k): float(v) for k, v in c["values"].items()},
                                **_test_fields(c)}) for c in data["configs"]]
    return SweepSummary(metric=data["metric"], mode=data["mode"], configs=configs)


def _test_fields(c: dict[str, Any]) -> dict[str, Any]:
    """A JSON config's test fields (absent in journals written before there were any): NaN as null."""
    return {"test_values": {int(k): float(v) for k, v in (c.get("test_values") or {}).items()},
            "test_mean": to_float(c.get("test_mean", math.nan)), "test_std": to_float(c.get("test_std", math.nan)),
            "chosen": {int(k): dict(v) for k, v in (c.get("chosen") or {}).items()}}


def chosen_text(chosen: dict[int, dict[str, Any]]) -> str:
    """What selection chose over the seeds, per key, most frequent first: ``train.lr 0.01 x3, 0.03 x2``."""
    keys = sorted({k for values in chosen.values() for k in values})
    parts = []
    for key in keys:
        counts: dict[str, int] = {}
        for values in chosen.values():
            if key in values:
                text = display_str(values[key])
                counts[text] = counts.get(text, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(f"{key} " + ", ".join(f"{v} x{n}" for v, n in ranked))
    return "; ".join(parts)


def summary_record(summary: SweepSummary) -> dict[str, Any]:
    """``summary.json`` of the aggregate run: the summary with its best config id, NaN as null."""
    def finite(x: float) -> float | None:  # JSON has no NaN
        return None if not math.isfinite(x) else x

    configs = [{"config_id": c.config_id, "trial_ids": c.trial_ids, "params": c.params,
                "values": {str(s): v for s, v in c.values.items()}, "mean": finite(c.mean), "std": finite(c.std),
                "n_seeds": c.n_seeds, "status": c.status, "best": c.best,
                **({"chosen": {str(s): v for s, v in c.chosen.items()}} if c.chosen else {})} for c in summary.configs]
    if summary.has_test:  # which split each number is from: values/mean/std are dev
        for row, c in zip(configs, summary.configs):
            row.update(test_values={str(s): v for s, v in c.test_values.items()}, test_mean=finite(c.test_mean),
                          test_std=finite(c.test_std))
    record = {"metric": summary.metric, "mode": summary.mode,
              "best": summary.best.config_id if summary.best else None, "configs": configs}
    return json.loads(json.dumps(record, default=str))
