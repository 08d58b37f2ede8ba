"""Names and order in paper tables: tasks, metrics, and the method label of a config, from the strategy registry.

A config's *method label* comes from its effective method section (defaults, then the sweep's YAML, then
the sampled values) through its strategy's :class:`~ipt_ray.config.StrategySpec` (``display_label``:
strategy + injection + label field), plus ``key=value`` qualifiers for the spec's variant fields (and
the shared :data:`SHARED_QUALIFIERS`, and the backbone) when those vary among configs with the same label
(:func:`method_labels`). Row order and the base a row is tested against come from the spec too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, get_args, get_origin

from ipt_ray.config import StrategySpec, method_defaults, strategy_names, strategy_spec, strategy_specs
from ipt_ray.results import ConfigSummary, display_str, expand_sections, param_str

TASK_ORDER = ("boolq", "cb", "rte", "multirc", "ag_news", "sst2", "imdb")
TASK_NAMES = {"boolq": "BoolQ", "cb": "CB", "rte": "RTE", "multirc": "MultiRC", "ag_news": "AG News",
              "sst2": "SST-2", "imdb": "IMDB"}
METRIC_NAMES = {"accuracy": "acc", "f1a": "F1a", "em": "EM"}
#: The metric a task's column shows unless ``--task-metric TASK=METRIC`` says otherwise.
DEFAULT_TASK_METRICS = {"multirc": "f1a"}

#: Shared method fields that make a variant of any prompt strategy (named in its label when they vary).
#: ``hard_prompt``: Table 5's "Random IPT + hard prompts" row differs from "Random IPT" only by it (a field
#: of the strategies that have it; None elsewhere), so it must part rows, never be selected over. So must
#: ``prefix_projection`` (P-tuning v2 without the MLP is another method, not a tuned value) and the
#: task-level prompt of "Prefix + IPT".
SHARED_QUALIFIERS = ("head", "hard_prompt", "prefix_projection", "task_prompt_length")
#: Params that name the task or the place of a config, never a hyper-parameter to select over.
_TASK_IDENTITY = ("method.strategy", "method.injection", "task.name", "task.cv_fold", "backbone.name")


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def task_order(task: str) -> tuple:
    """Paper order of the task columns; unknown tasks after, by name."""
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def task_of(config: ConfigSummary) -> str:
    """The task a config ran on (``?`` without ``task.name``)."""
    return str(expand_sections(config.params).get("task.name", "?"))


def identity_params() -> set[str]:
    """Params that name the method or the task of a config: every spec's label field and qualifiers too."""
    fields = set(SHARED_QUALIFIERS)
    for spec in strategy_specs():
        fields.update(spec.qualifiers)
        if spec.label_field:
            fields.add(spec.label_field)
    return {*_TASK_IDENTITY, *(f"method.{f}" for f in fields)}


def effective_method(params: Mapping[str, Any]) -> dict[str, Any]:
    """The method section a config ran with: every ``method.*`` default (``ipt_ray.config.method_defaults``),
    then its ``method.*`` params (a section-valued ``method`` param is expanded first)."""
    method = method_defaults()
    for key, value in expand_sections(dict(params)).items():
        if key.startswith("method."):
            method[key[len("method."):]] = value
    return method


def _spec(method: Mapping[str, Any]) -> StrategySpec | None:
    """The method's registered strategy; None for a name no registered strategy has (e.g. a plugin not loaded)."""
    name = str(method.get("strategy", method_defaults()["strategy"]))
    return strategy_spec(name) if name in strategy_names() else None


def method_label(method: Mapping[str, Any]) -> str:
    """The paper's name of a method section: ``Fine-tuning``, ``Prompt Tuning``, ``Prefix Tuning``,
    ``PPT``, ``Structured PT``, ``PT + Random IPT``, ``Prefix + Encoder IPT (cnn)``, ... (its strategy's
    ``display_label``; an unregistered strategy is shown by its name)."""
    spec = _spec(method)
    return spec.display_label(method) if spec is not None else str(method.get("strategy"))


@dataclass(frozen=True)
class MethodRow:
    """A config's row in a paper table: its label, its sort key, and the label of the row it is tested
    against (its spec's ``base``, same injection; None: not tested)."""

    label: str
    order: tuple
    base: str | None


def _choice_rank(spec: StrategySpec, field: str | None, value: Any) -> int:
    """Where ``value`` stands among a Literal option's choices (``cnn, rnn, mlp``); after them if not one."""
    info = spec.option_fields().get(field or "")
    choices = get_args(info.annotation) if info is not None and get_origin(info.annotation) is Literal else ()
    return choices.index(value) if value in choices else len(choices)


def method_order(method: Mapping[str, Any], label: str) -> tuple:
    """Paper order: the methods no base is tested against by spec order (input, then prefix injection of
    each), then the tested ones with input injection, then with prefix injection, each by spec order and
    label-field choice; qualified variants after their plain label; unregistered strategies last."""
    spec = _spec(method)
    if spec is None:
        return (3, 0, 0, 0, label)
    prefix = int(spec.uses_prompt and method.get("injection", "input") == "prefix")
    rank = _choice_rank(spec, spec.label_field, method.get(spec.label_field or ""))
    if spec.base is None:
        return (0, spec.order, prefix, rank, label)
    return (1 + prefix, spec.order, 0, rank, label)


def base_label(method: Mapping[str, Any]) -> str | None:
    """The label of the method a significance test compares ``method`` against: its spec's base, same injection."""
    spec = _spec(method)
    if spec is None or spec.base is None:
        return None
    return strategy_spec(spec.base).display_label({**method, "strategy": spec.base})


def _qualifier_value(spec: StrategySpec | None, key: str, value: Any) -> str:
    option = spec.reads.get(key) if spec is not None else None
    if isinstance(value, str) and ((option is not None and option.is_path(value)) or key == "backbone"):
        return Path(value).stem or value  # a checkpoint path: its file name is enough to tell them apart
    return display_str(value)


def _variant_fields(config: ConfigSummary, method: dict[str, Any], spec: StrategySpec | None) -> dict[str, Any]:
    """The config's values of the fields that may qualify its label: its spec's, the shared ones, the backbone."""
    names = (*spec.qualifiers, *SHARED_QUALIFIERS) if spec is not None and spec.uses_prompt else ()
    values = {q: method.get(q) for q in names}
    values["backbone"] = expand_sections(config.params).get("backbone.name")
    return values


def method_rows(configs: Iterable[ConfigSummary]) -> dict[str, MethodRow]:
    """Config id -> row: :func:`method_label`, plus ``[key=value, ...]`` for the variant fields that take
    more than one value among configs of the same base label; with its order and tested base."""
    methods, plain, fields = {}, {}, {}
    for c in configs:
        methods[c.config_id] = method = effective_method(c.params)
        spec = _spec(method)
        plain[c.config_id] = method_label(method)
        fields[c.config_id] = _variant_fields(c, method, spec)
    varying: dict[str, set[str]] = {}
    for label in set(plain.values()):
        members = [cid for cid, lb in plain.items() if lb == label]
        keys = {k for cid in members for k in fields[cid]}
        varying[label] = {k for k in keys if len({param_str(fields[cid].get(k)) for cid in members}) > 1}
    rows = {}
    for cid, label in plain.items():
        spec = _spec(methods[cid])
        extra = [f"{k}={_qualifier_value(spec, k, fields[cid].get(k))}" for k in sorted(varying[label])]
        full = f"{label} [{', '.join(extra)}]" if extra else label
        rows[cid] = MethodRow(full, method_order(methods[cid], full), base_label(methods[cid]))
    return rows


def method_labels(configs: Iterable[ConfigSummary]) -> dict[str, str]:
    """Config id -> label (:func:`method_rows`' labels)."""
    return {cid: row.label for cid, row in method_rows(configs).items()}
