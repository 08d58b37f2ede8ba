"""Several sweeps as one set of results: what each sweep's parent run knows, added to its seeds' params.

A sweep that did not search the task (or part of the method) has those only in its parent run: its
params (``task``, ``backbone``) and the experiment YAML it stored. :class:`SweepContext` holds them
(``ipt_ray.tracking.sweep_context_from_mlflow`` reads it), :func:`combine_results` merges sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

from ipt_ray.results.ids import config_id, expand_sections
from ipt_ray.results.summaries import SeedResult

#: Base-YAML fields a sweep's trials share that :meth:`SweepContext.shared_params` adds to their params.
_SHARED_FIELDS: dict[str, tuple[str, ...] | None] = {
    "task": None, "method": None, "backbone": ("name",), "train": ("lr", "epochs", "batch_size")}
_NOT_SHARED = {"task.data_dir", "task.source"}  # where the data came from, not what was run


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
        and ``backbone.name`` come from the parent run's params when it has them. Keys the sweep searched
        (``sweep.search_space``) are left out."""
        out: dict[str, Any] = {}
        # A dotted key the sweep searched is not shared: every trial has its own value (in its params), and a
        # few-shot final run has the one selection chose for its data seed (``ipt.chosen.*``), not the YAML's.
        sweep = self.base.get("sweep")
        searched = set((sweep.get("search_space") or {}) if isinstance(sweep, dict) else ())
        for section, keys in _SHARED_FIELDS.items():
            values = self.base.get(section)
            if not isinstance(values, dict):
                continue
            for k, v in values.items():
                name = f"{section}.{k}"
                if ((keys is None or k in keys) and name not in _NOT_SHARED and name not in searched
                        and not isinstance(v, (dict, list))):
                    out[name] = v
        task = self.base.get("task")
        dataset = task.get("dataset") if isinstance(task, dict) else None
        if isinstance(dataset, dict) and dataset.get("stands_for"):  # own files drawn from a paper task
            out["task.dataset.stands_for"] = dataset["stands_for"]
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
