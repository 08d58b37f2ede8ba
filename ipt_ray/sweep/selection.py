"""The few-shot protocol's bookkeeping (no Ray, no MLflow): the trials of its two phases as explicit grid
points, each trial's dev-selected epoch, cross validation's choice of hyper-parameters, and the final
phase's seed results.

Vocabulary. A *compare group* is one value of every compare key (``sweep.few_shot.compare``: a table row
and column, e.g. a ``method`` choice and a ``task`` choice); the *hyper-parameters* are the other search
keys. Points hold values as Tune holds them (section choices as JSON text: ``encode_choice``).

- select: every group x hyper-parameter point x data seed x fold (``task.cv_fold``);
- final: every group x data seed, with the hyper-parameters chosen for that (group, data seed).

A trial trains one seed, its data seed, so a trial's dev curve is one run's; its *dev-selected epoch* is
the earliest epoch with the best dev value (early stopping on dev). Test never selects anything: the
select phase has no test split (``ipt_ray.data.protocol_splits``), and the final phase reads test at the
dev-selected epoch.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ipt_ray.config import ExperimentConfig, ParamSpace
from ipt_ray.results import Mode, SeedResult, config_id, dev_key, param_str, result_epoch, split_key, to_float
from ipt_ray.sweep.space import encode_choice

PHASES = ("select", "final")
DATA_SEED, CV_FOLD = "task.data_seed", "task.cv_fold"


# ---------------------------------------------------------------- keys and points


def few_shot_keys(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(compare keys, hyper-parameter keys) of a few-shot sweep, in search-space order."""
    space = cfg.sweep.search_space
    assert cfg.sweep.few_shot is not None
    compare = cfg.sweep.few_shot.compare_keys(space)
    return compare, [k for k in space if k not in compare]


def axis_values(dim: ParamSpace) -> list[Any]:
    """A grid dimension's values as Tune holds them (``searcher: grid`` allows choice and int only)."""
    if dim.type == "choice":
        return [encode_choice(v) for v in dim.values or []]
    if dim.type == "int":
        return list(range(int(dim.low), int(dim.high) + 1, dim.step or 1))
    raise ValueError(f"searcher 'grid' needs choice or int dimensions, not {dim.type!r}")


def crossed(space: dict[str, ParamSpace], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Every combination of ``keys``' values, the first key varying slowest (``[{}]`` for no keys)."""
    axes = [axis_values(space[k]) for k in keys]
    return [dict(zip(keys, values)) for values in itertools.product(*axes)]


def select_points(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """The select phase's trials: group x hyper-parameters x data seed x fold."""
    compare, hyper = few_shot_keys(cfg)
    space, few = cfg.sweep.search_space, cfg.sweep.few_shot
    return [{**g, **h, DATA_SEED: s, CV_FOLD: f} for g in crossed(space, compare) for h in crossed(space, hyper)
            for s in few.data_seeds for f in range(cfg.task.cv_folds)]


def final_points(choices: Sequence[Choice]) -> list[dict[str, Any]]:
    """The final phase's trials: each (group, data seed) with its chosen hyper-parameters."""
    return [{**c.group, **c.hyper, DATA_SEED: c.data_seed} for c in choices]


def group_of(params: dict[str, Any], compare: Sequence[str]) -> dict[str, Any]:
    return {k: params[k] for k in compare if k in params}


def phase_config_id(phase: str, compare: Sequence[str]):
    """The config id function of a phase's trials: the data seed is a config's *seed*, never part of its id.

    select: the trial's point without the data seed (group, hyper-parameters, fold); final: the compare group
    alone, so the data seeds of a group are the seeds of one config, whatever values they chose.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")

    def of(params: dict[str, Any]) -> str:
        if phase == "final":
            return config_id(group_of(params, compare))
        return config_id({k: v for k, v in params.items() if k != DATA_SEED})

    return of


# ---------------------------------------------------------------- a trial's curve


@dataclass(frozen=True)
class TrialCurve:
    """One trial of a phase: its point, data seed and per-epoch dev (and test) values of that seed."""

    trial_id: str
    params: dict[str, Any]
    dev: dict[int, float]
    test: dict[int, float] = field(default_factory=dict)
    status: str = "completed"

    @property
    def data_seed(self) -> int:
        return int(self.params[DATA_SEED])


def selected_epoch(dev: dict[int, float], mode: Mode) -> int | None:
    """The earliest epoch with the best finite dev value; None without one."""
    finite = sorted((e, v) for e, v in dev.items() if math.isfinite(v))
    if not finite:
        return None
    best = max(v for _, v in finite) if mode == "max" else min(v for _, v in finite)
    return next(e for e, v in finite if v == best)


def trial_curves(result_grid: Iterable[Any], metric: str, max_epochs: int,
                 history: Mapping[str, list[dict[str, Any]]] | None = None) -> list[TrialCurve]:
    """The curves of a ``ResultGrid``'s trials: every epoch each reported, from ``history`` (trial id -> rows,
    ``trial_state.read_curves``), else from the result's ``metrics_dataframe`` (Tune's per-trial files, as
    a sweep started before those files were turned off has them), else its last result alone.

    Status: ``failed`` with an error or no report; ``completed`` when it reached ``max_epochs``;
    ``early_stopped`` otherwise (its curve still counts up to where it stopped).
    """
    out = []
    for res in result_grid:
        config = dict(getattr(res, "config", None) or {})
        metrics = dict(getattr(res, "metrics", None) or {})
        seed = config.get(DATA_SEED)
        trial_id = str(metrics.get("trial_id") or "?")
        frame = getattr(res, "metrics_dataframe", None)
        if history and trial_id in history:
            rows = history[trial_id]
        elif frame is not None and len(frame):
            rows = frame.to_dict("records")
        else:
            rows = [metrics] if metrics else []
        dev_col, test_col = f"{dev_key(metric)}/seed_{seed}", f"{split_key(metric)}/seed_{seed}"
        dev = {result_epoch(r): to_float(r.get(dev_col)) for r in rows}
        test = {result_epoch(r): to_float(r.get(test_col)) for r in rows if test_col in r}
        if getattr(res, "error", None) is not None or not rows:
            status = "failed"
        else:
            status = "completed" if max(dev, default=0) >= max_epochs else "early_stopped"
        out.append(TrialCurve(trial_id, config, dev, {e: v for e, v in test.items() if math.isfinite(v)}, status))
    return out


# ---------------------------------------------------------------- cross validation's choice


@dataclass(frozen=True)
class Choice:
    """The hyper-parameters cross validation chose for one (compare group, data seed).

    ``mean``: their dev mean over ``n_folds`` folds (each fold at its trial's dev-selected epoch);
    ``candidates``: every hyper-parameter point with its fold mean, fold count and ``[fold, dev value]``
    pairs, in grid order.
    """

    group: dict[str, Any]
    data_seed: int
    hyper: dict[str, Any]
    mean: float
    n_folds: int
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def group_id(self) -> str:
        return config_id(self.group)


def _key(values: dict[str, Any]) -> str:
    return json.dumps({k: param_str(v) for k, v in values.items()}, sort_keys=True)


def choose_hyper(curves: Iterable[TrialCurve], compare: Sequence[str], hyper: Sequence[str], mode: Mode,
                 order: Sequence[dict[str, Any]] | None = None) -> list[Choice]:
    """Per (compare group, data seed): the hyper-parameter point with the best mean over its folds of the
    dev value at each fold trial's dev-selected epoch.

    Reads dev only. A point with more finite folds ranks first (a failed fold does not make a point look
    better), then the better mean; ties go to the point earlier in ``order`` (the grid order; default: the
    order the points are first seen). Groups and data seeds come out sorted by (group id, data seed).
    """
    folds: dict[tuple[str, int], dict[str, list[tuple[int, float]]]] = {}
    groups: dict[str, dict[str, Any]] = {}
    points: dict[str, dict[str, Any]] = {}
    for curve in curves:
        group, point = group_of(curve.params, compare), group_of(curve.params, hyper)
        gid, pkey = config_id(group), _key(point)
        groups[gid] = group
        points.setdefault(pkey, point)
        scores = folds.setdefault((gid, curve.data_seed), {}).setdefault(pkey, [])
        epoch = selected_epoch(curve.dev, mode) if curve.status != "failed" else None
        if epoch is not None:
            scores.append((int(curve.params.get(CV_FOLD, -1)), curve.dev[epoch]))
    rank = {_key(p): i for i, p in enumerate(order or [])}
    rank.update({k: len(rank) + i for i, k in enumerate(k for k in points if k not in rank)})
    sign = -1.0 if mode == "max" else 1.0
    choices = []
    for (gid, seed), by_point in sorted(folds.items()):
        candidates = []
        for pkey, scored in sorted(by_point.items(), key=lambda item: rank[item[0]]):
            values = [v for _, v in sorted(scored)]
            mean = math.fsum(values) / len(values) if values else math.nan
            candidates.append({"hyper": points[pkey], "mean": mean, "n_folds": len(values),
                               "fold_values": [list(fv) for fv in sorted(scored)]})
        finite = [c for c in candidates if c["n_folds"]]
        if not finite:
            continue  # every fold of every point failed: this (group, seed) has no final run
        best = min(finite, key=lambda c: (-c["n_folds"], sign * c["mean"], rank[_key(c["hyper"])]))
        choices.append(Choice(groups[gid], seed, dict(best["hyper"]), best["mean"], best["n_folds"], candidates))
    return choices


def choices_to_json(choices: Sequence[Choice]) -> list[dict[str, Any]]:
    """The selection file's rows (``group_id`` added for readers); :func:`choices_from_json` reads them."""
    return [{"group_id": c.group_id, **asdict(c)} for c in choices]


def choices_from_json(rows: Sequence[dict[str, Any]]) -> list[Choice]:
    return [Choice(**{k: v for k, v in row.items() if k != "group_id"}) for row in rows]


def choices_csv_rows(choices: Sequence[Choice]) -> list[dict[str, str]]:
    """One CSV row per (group, data seed): the group, the data seed, the chosen values and their fold mean."""
    return [{"group_id": c.group_id, **{k: param_str(v) for k, v in c.group.items()}, "data_seed": str(c.data_seed),
             **{f"chosen.{k}": param_str(v) for k, v in c.hyper.items()}, "cv_dev_mean": f"{c.mean:.6g}",
             "n_folds": str(c.n_folds)} for c in choices]


# ---------------------------------------------------------------- the final phase's results


@dataclass(frozen=True)
class FinalRun:
    """A final trial read at its dev-selected epoch: what the table reports for one (group, data seed)."""

    trial_id: str
    group_id: str
    data_seed: int
    epoch: int | None
    dev: float
    test: float


def final_runs(curves: Iterable[TrialCurve], compare: Sequence[str], mode: Mode) -> list[FinalRun]:
    """Each final trial's dev value and test value at its dev-selected epoch (NaN where there is none)."""
    out = []
    for c in curves:
        epoch = selected_epoch(c.dev, mode) if c.status != "failed" else None
        dev = c.dev[epoch] if epoch is not None else math.nan
        test = c.test.get(epoch, math.nan) if epoch is not None else math.nan
        out.append(FinalRun(c.trial_id, config_id(group_of(c.params, compare)), c.data_seed, epoch, dev, test))
    return out


def final_results(curves: Sequence[TrialCurve], compare: Sequence[str], mode: Mode,
                  chosen: Mapping[tuple[str, int], Mapping[str, Any]] | None = None) -> list[SeedResult]:
    """The final phase as seed results: config = compare group, seed = data seed, value = dev and test =
    test at the trial's dev-selected epoch, ``chosen`` = what selection chose for (group id, data seed).
    ``ipt_ray.results.aggregate`` then gives test mean ± std over data seeds per group (and picks the best
    group on dev)."""
    runs = final_runs(curves, compare, mode)
    chosen = chosen or {}
    return [SeedResult(r.group_id, r.trial_id, r.data_seed, r.dev, group_of(c.params, compare), c.status, test=r.test,
                       chosen=dict(chosen.get((r.group_id, r.data_seed), {})))
            for r, c in zip(runs, curves)]
