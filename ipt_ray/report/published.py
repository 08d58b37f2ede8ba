"""Published numbers: the IPT paper's, beside ours, and other papers' under their own names.

The IPT paper's numbers are package data: ``published_data/ipt-published.csv`` (every cell of Tables
2, 3, 5 and 6 exactly as printed; its README says where it comes from). Each row becomes a
:class:`PublishedValue`: the paper's table, row label and column, our task, the value, what the table
measures (:class:`PaperTableInfo`) and the :class:`MethodIdentity` the row label names.

Which paper table a measured config corresponds to (:func:`paper_table_of`), from its config alone (its
task is ``task.name``, or ``task.dataset.stands_for`` for own files drawn from a paper task):

1. ``task.few_shot_k`` set: **Table 3** (few-shot, SuperGLUE).
2. SST-2, IMDB, AG News: **Table 5** (rows built on Prefix Tuning).
3. BoolQ, full data, an Encoder IPT ``method.seq_util_rate`` below 1.0 (all content tokens, our
   default): **Table 6**, at that rate (Table 6's grid is 0.2%-30%; Table 2 does not state a rate).
4. SuperGLUE (BoolQ, CB, RTE, MultiRC) full data: **Table 2**.

A config then has a paper value when that table has a row of its identity, a column of its task (and
rate), and the cell's metric is the paper's (accuracy; MultiRC's metric is not stated, so any of ours).

Numbers from other papers (:data:`OTHER_PUBLISHED`, each naming its :data:`SOURCES` entry) are shown
only in their own section, under their own method names, never in the paper column.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, Mapping

from ipt_ray.config import strategy_names, strategy_spec
from ipt_ray.report.labels import effective_method, method_label
from ipt_ray.results import expand_sections

PAPER = "Jiang et al. 2022, Instance-wise Prompt Tuning for Pretrained Language Models, arXiv:2206.01958"
PAPER_URL = "https://arxiv.org/abs/2206.01958"
#: The packaged CSV (a copy of ``shared/paper/ipt-published.csv``), relative to ``ipt_ray.report``.
PUBLISHED_CSV = "published_data/ipt-published.csv"
#: Table 5's hard type prompts, prepended to the Random IPT prompts (section 5.5).
HARD_PROMPTS = {"ag_news": "Human Activities", "sst2": "Culture and the Arts", "imdb": "Culture and the Arts"}

Setting = Literal["full", "few-shot"]


@dataclass(frozen=True)
class PaperTableInfo:
    """What one of the paper's tables measures: regime, split reported, backbone, epochs, K, base method."""

    number: int
    setting: Setting
    split: str  # where the printed numbers are measured
    measures: str
    epochs: tuple[int, int]  # the appendix's range (A.3)
    few_shot_k: int | None = None
    prompt_length: int | None = None  # only where the table states one
    backbone: str = "roberta-large"

    @property
    def epochs_text(self) -> str:
        return f"{self.epochs[0]}-{self.epochs[1]}"


_VALIDATION = "the validation set (best of a hyper-parameter sweep on it)"
TABLES: dict[int, PaperTableInfo] = {
    2: PaperTableInfo(2, "full", _VALIDATION, "full data, SuperGLUE, 5 seeds averaged", (20, 100)),
    3: PaperTableInfo(3, "few-shot", "test = the original validation set, hyper-parameters by 4-fold cross "
                      "validation over 2K per label, trained on the first K, early-stopped on the second K",
                      "few-shot SuperGLUE (Gao et al. 2021 protocol), base Prefix Tuning", (100, 800),
                      few_shot_k=32),
    5: PaperTableInfo(5, "full", _VALIDATION, "AG News / SST-2 / IMDB, built on Prefix Tuning", (20, 100)),
    6: PaperTableInfo(6, "full", _VALIDATION, "BoolQ by sequence utilisation rate, Encoder IPT on Prompt Tuning",
                      (20, 100), prompt_length=100),
}


@dataclass(frozen=True)
class MethodIdentity:
    """The part of a method section the paper's row labels distinguish (our labels, :func:`method_label`,
    name the same fields): strategy, injection (None without prompts), encoder (None for strategies
    without one), and whether hard type prompts precede the instance prompt (Table 5)."""

    strategy: str
    injection: str | None = None
    encoder: str | None = None
    hard_prompt: bool = False

    @classmethod
    def of(cls, method: Mapping[str, Any]) -> MethodIdentity | None:
        """The identity of an effective method section (:func:`effective_method`); None for an unregistered
        strategy, and for ``random_ipt`` started from anything but a random table (``table_init:
        backbone``: the initialisation ablation, which the paper does not have)."""
        name = str(method.get("strategy"))
        if name not in strategy_names():
            return None
        spec = strategy_spec(name)
        if name == "random_ipt" and method.get("table_init") not in (None, "random"):
            return None
        hard = method.get("hard_prompt")
        return cls(name, str(method.get("injection", "input")) if spec.uses_prompt else None,
                   str(method.get("encoder")) if "encoder" in spec.option_fields() else None,
                   bool(hard) and (not isinstance(hard, str) or bool(hard.strip())))  # a text, or texts per task

    def method(self, task: str | None = None) -> dict[str, Any]:
        """A method section of this identity (``hard_prompt``: the paper's tokens for ``task``)."""
        out: dict[str, Any] = {"strategy": self.strategy}
        if self.injection is not None:
            out["injection"] = self.injection
        if self.encoder is not None:
            out["encoder"] = self.encoder
        if self.hard_prompt:
            out["hard_prompt"] = HARD_PROMPTS.get(task or "", "hard prompt")
        return out

    @property
    def label(self) -> str:
        """Our label of it (``Prefix + Random IPT``; ``+ hard prompts`` where it has them: the strategy's
        ``display_label`` says so)."""
        return method_label(self.method())


@dataclass(frozen=True)
class PublishedValue:
    """One printed cell of the paper: ``value`` in %, ``printed`` exactly as the CSV has it."""

    table: int
    row: str  # the paper's row label
    column: str  # the paper's column ("BoolQ@0.2%" in Table 6)
    task: str  # our task name
    value: float
    printed: str
    identity: MethodIdentity
    seq_util_rate: float | None = None  # Table 6 only
    metric: str | None = "accuracy"  # None: not stated (MultiRC)

    @property
    def info(self) -> PaperTableInfo:
        return TABLES[self.table]

    @property
    def setting(self) -> Setting:
        return self.info.setting

    @property
    def split(self) -> str:
        return self.info.split

    @property
    def backbone(self) -> str:
        return self.info.backbone

    @property
    def epochs(self) -> tuple[int, int]:
        return self.info.epochs

    @property
    def few_shot_k(self) -> int | None:
        return self.info.few_shot_k

    @property
    def where(self) -> str:
        """``Table 2, Prefix Tuning, RTE``: the cell as the paper names it."""
        return f"Table {self.table}, {self.row}, {self.column}"


# ---------------------------------------------------------------- the paper's rows -> our identities

#: Row labels that name a method on their own.
_PLAIN_ROWS = {
    "Prompt Tuning": MethodIdentity("prompt_tuning", "input"),
    "PPT": MethodIdentity("ppt", "input"),
    "Prefix Tuning": MethodIdentity("prompt_tuning", "prefix"),
    "Fine-tuning": MethodIdentity("fine_tuning"),
    "finetuning": MethodIdentity("fine_tuning"),  # Table 3's spelling
}
#: The base of "<base> + <IPT variant>" rows -> injection.
_BASE_INJECTION = {"Prompt Tuning": "input", "Prefix Tuning": "prefix"}
#: Tables whose rows name the IPT variant alone, and the base (injection) the paper built them on.
_TABLE_BASE_INJECTION = {5: "prefix", 6: "input"}
#: IPT variants -> (strategy, encoder, hard prompts).
_IPT_VARIANTS: dict[str, tuple[str, str | None, bool]] = {
    "Random IPT": ("random_ipt", None, False),
    "Random IPT + hard prompts": ("random_ipt", None, True),
    "Pretrained IPT": ("pretrained_ipt", None, False),
    **{f"Encoder IPT ({e.upper()})": ("encoder_ipt", e, False) for e in ("cnn", "rnn", "mlp")},
}


def paper_identity(table: int, row: str) -> MethodIdentity:
    """Our identity of the paper's row ``row`` of table ``table``; ValueError for a label not mapped."""
    if row in _PLAIN_ROWS:
        return _PLAIN_ROWS[row]
    base, sep, variant = row.partition(" + ")
    if sep and base in _BASE_INJECTION and variant in _IPT_VARIANTS:
        injection = _BASE_INJECTION[base]
    elif row in _IPT_VARIANTS and table in _TABLE_BASE_INJECTION:
        injection, variant = _TABLE_BASE_INJECTION[table], row
    else:
        raise ValueError(f"Table {table} row {row!r}: no mapping to a method identity")
    strategy, encoder, hard = _IPT_VARIANTS[variant]
    return MethodIdentity(strategy, injection, encoder, hard)


_COLUMN_TASKS = {"boolq": "boolq", "cb": "cb", "rte": "rte", "multirc": "multirc", "agnews": "ag_news",
                 "sst2": "sst2", "imdb": "imdb"}


def paper_column(column: str) -> tuple[str, float | None]:
    """``BoolQ@0.2%`` -> ``("boolq", 0.002)``; ``SST-2`` -> ``("sst2", None)``."""
    name, sep, rate = column.partition("@")
    key = name.lower().replace("-", "").replace(" ", "").replace("_", "")
    if key not in _COLUMN_TASKS:
        raise ValueError(f"paper column {column!r}: unknown task")
    return _COLUMN_TASKS[key], (float(rate.rstrip("%")) / 100 if sep else None)


def _rate_key(rate: float | None) -> float | None:
    return None if rate is None else round(float(rate), 6)


# ---------------------------------------------------------------- loading and lookup


def published_csv_text() -> str:
    """The packaged CSV as text (importlib.resources: works from a wheel, needs no ``shared/``)."""
    return resources.files("ipt_ray.report").joinpath(PUBLISHED_CSV).read_text(encoding="utf-8")


@cache
def published_values() -> tuple[PublishedValue, ...]:
    """Every printed cell of Tables 2, 3, 5 and 6, in the CSV's order."""
    out = []
    for r in csv.DictReader(io.StringIO(published_csv_text())):
        table = int(r["table"])
        task, rate = paper_column(r["dataset"])
        out.append(PublishedValue(
            table=table, row=r["model"], column=r["dataset"], task=task, value=float(r["value"]),
            printed=r["value"], identity=paper_identity(table, r["model"]), seq_util_rate=rate,
            metric=None if task == "multirc" else "accuracy"))
    return tuple(out)


@cache
def _index() -> dict[tuple, PublishedValue]:
    index: dict[tuple, PublishedValue] = {}
    for v in published_values():
        key = (v.table, v.identity, v.task, _rate_key(v.seq_util_rate))
        if key in index:
            raise ValueError(f"{v.where} and {index[key].where} map to the same identity")
        index[key] = v
    return index


def paper_task(flat: Mapping[str, Any]) -> str:
    """The paper's task a config's numbers stand for (``flat``: after :func:`expand_sections`, which leaves
    ``task.dataset`` a mapping): ``stands_for`` when its own data is drawn from a paper task, else ``task.name``."""
    dataset = flat.get("task.dataset")
    stands_for = dataset.get("stands_for") if isinstance(dataset, Mapping) else flat.get("task.dataset.stands_for")
    return str(stands_for or flat.get("task.name"))


def paper_table_of(config: Mapping[str, Any]) -> int | None:
    """The paper table a measured config corresponds to (the rule in the module docstring); None: none."""
    flat = expand_sections(dict(config))
    task = paper_task(flat)
    if flat.get("task.few_shot_k") is not None:
        return 3
    if task in ("sst2", "imdb", "ag_news"):
        return 5
    method = effective_method(flat)
    if task == "boolq" and method.get("strategy") == "encoder_ipt" and float(method.get("seq_util_rate", 1.0)) < 1.0:
        return 6
    return 2 if task in ("boolq", "cb", "rte", "multirc") else None


def paper_value(config: Mapping[str, Any], metric: str = "accuracy") -> PublishedValue | None:
    """The paper's value for a measured config (its flat or section params) on ``metric``, if printed."""
    flat = expand_sections(dict(config))
    table = paper_table_of(flat)
    method = effective_method(flat)
    identity = MethodIdentity.of(method)
    if table is None or identity is None:
        return None
    rate = method.get("seq_util_rate") if table == 6 else None
    v = _index().get((table, identity, paper_task(flat), _rate_key(rate)))
    if v is None or (v.metric is not None and v.metric != metric) or metric not in ("accuracy", "f1a", "em"):
        return None
    return v


# ---------------------------------------------------------------- other papers' numbers


@dataclass(frozen=True)
class Source:
    """Where quoted numbers come from: a citation, a URL and what exactly the numbers are."""

    citation: str
    url: str
    note: str


#: Sources of :data:`OTHER_PUBLISHED`, by key.
SOURCES: dict[str, Source] = {
    "ptv2-readme": Source(
        citation="Liu et al. 2022, P-Tuning v2 (ACL 2022), authors' repository README, "
                 "'Released results on RoBERTa-large'",
        url="https://github.com/THUDM/P-tuning-v2 (README.md, section 'Implemented Results')",
        note="RoBERTa-large, full training set, SuperGLUE dev accuracy, one run, best epoch "
             "(BoolQ: epoch 86 of 100; RTE: epoch 65 of 100); not the IPT paper's numbers",
    ),
}


@dataclass(frozen=True)
class QuotedValue:
    """A number from another paper, under that paper's own method name (``P-tuning v2``), never an IPT label.

    ``value`` in percent as printed in ``source`` (a key of :data:`SOURCES`); ``setting`` ``full`` or
    ``few-shot``; ``task`` our task name; ``metric`` a task metric name.
    """

    name: str
    setting: Setting
    task: str
    metric: str
    value: float
    source: str
    backbone: str = "roberta-large"


#: Other papers' results, each with its source; shown in an "Other published numbers" section only.
OTHER_PUBLISHED: tuple[QuotedValue, ...] = (
    QuotedValue("P-tuning v2", "full", "boolq", "accuracy", 84.0, "ptv2-readme"),
    QuotedValue("P-tuning v2", "full", "rte", "accuracy", 86.6, "ptv2-readme"),
)


def other_published(tasks: list[str], settings: Mapping[str, str]) -> list[QuotedValue]:
    """The other papers' numbers on these tasks in their settings (``settings``: task -> full / few-shot)."""
    return [v for v in OTHER_PUBLISHED if v.task in tasks and settings.get(v.task, "full") == v.setting]
