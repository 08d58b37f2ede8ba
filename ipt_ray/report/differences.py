"""How a measured cell's run differs from the paper's: the marks beside a paper value in ``report --paper``.

Each :class:`Comparison` pairs a cell of a :class:`~ipt_ray.report.table.PaperTable` with the paper's
printed value (:func:`~ipt_ray.report.published.paper_value` of the cell's config) and lists the
:class:`Difference` s: backbone, own data drawn from the paper's task, the split our number comes from
(always stated: under ``task.protocol paper`` the validation set both selects and reports), epochs outside
the appendix's range, few-shot K, Table 6's prompt length, Table 5's hard prompt text, and MultiRC's metric
(the paper does not state it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipt_ray.config import TrainConfig, hard_prompt_for
from ipt_ray.report.labels import METRIC_NAMES, effective_method
from ipt_ray.report.published import HARD_PROMPTS, PublishedValue, paper_value
from ipt_ray.report.table import Cell, CellKey, PaperTable

_DEFAULT_EPOCHS = TrainConfig.model_fields["epochs"].default


@dataclass(frozen=True)
class Difference:
    """One way our run differs from (or, for the split, stands beside) the paper's: ``kind``, ours, the paper's."""

    kind: str  # backbone, data, split, epochs, few-shot K, prompt length, hard prompt, metric
    ours: str
    paper: str

    @property
    def text(self) -> str:
        return f"{self.kind}: ours {self.ours}; the paper {self.paper}"


@dataclass(frozen=True)
class Comparison:
    """A measured cell beside the paper's value, with how the runs differ."""

    value: PublishedValue
    differences: tuple[Difference, ...]


def _our_split(cell: Cell, epoch: str) -> str:
    """Where our number comes from, in words."""
    if cell.config.get("task.few_shot_k") is not None:
        if cell.test_values:
            return ("test column = the original validation set, at the epoch and configuration chosen on "
                    "the K-shot dev")
        return "dev = the K-shot cross-validation folds' held-out parts (no test score)"
    if str(cell.config.get("task.protocol") or "paper") == "heldout":
        if not cell.test_values:
            return ("dev = a stratified part of train held out from training, which chose the epoch and "
                    "configuration (task.protocol heldout; no test split)")
        return ("test column = the validation set, at the epoch and configuration chosen on a dev set "
                "held out from train (task.protocol heldout)")
    if cell.test_values:
        return ("dev = the validation set, which chose the epoch and configuration; test column = the "
                "dataset's own test split (task.protocol paper)")
    if epoch == "best":
        return "the validation set, which also chose the epoch and configuration (task.protocol paper)"
    return "the validation set at the last epoch, which also chose the configuration (task.protocol paper)"


def _epochs(config: dict[str, Any]) -> int:
    try:
        return int(config.get("train.epochs", _DEFAULT_EPOCHS))
    except (TypeError, ValueError):
        return _DEFAULT_EPOCHS


def differences(cell: Cell, value: PublishedValue, epoch: str = "last") -> tuple[Difference, ...]:
    """How the run behind ``cell`` differs from the paper's behind ``value`` (the split is always said)."""
    info, config = value.info, cell.config
    out = []
    backbone = str(config.get("backbone.name") or "?")
    if backbone != info.backbone:
        out.append(Difference("backbone", backbone, info.backbone))
    task = str(config.get("task.name"))
    if task != value.task:  # own data drawn from the paper's task (task.dataset.stands_for)
        out.append(Difference("data", f"own files {task!r} drawn from {value.task}", "the task's own splits"))
    out.append(Difference("split", _our_split(cell, epoch), f"(Table {info.number}) {info.split}"))
    epochs = _epochs(config)
    if not info.epochs[0] <= epochs <= info.epochs[1]:
        out.append(Difference("epochs", str(epochs), f"{info.epochs_text} ({info.setting}, appendix A.3)"))
    k = config.get("task.few_shot_k")
    if info.few_shot_k is not None and k != info.few_shot_k:
        out.append(Difference("few-shot K", str(k), f"K={info.few_shot_k}"))
    method = effective_method(config)
    if info.prompt_length is not None and method.get("prompt_length") != info.prompt_length:
        out.append(Difference("prompt length", str(method.get("prompt_length")), str(info.prompt_length)))
    wanted = HARD_PROMPTS.get(value.task)
    ours = hard_prompt_for(method.get("hard_prompt"), value.task)  # a text, or the task's text of a mapping
    if value.identity.hard_prompt and wanted and ours != wanted:
        out.append(Difference("hard prompt", repr(ours), repr(wanted)))
    if value.metric is None:
        out.append(Difference("metric", METRIC_NAMES.get(cell.metric, cell.metric), "does not state it"))
    return tuple(out)


def compare(table: PaperTable) -> dict[CellKey, Comparison]:
    """The paper's value and the differences of every cell of ``table`` that has one (percent metrics only).

    Curves against anything but ``method.seq_util_rate`` (Table 6's x) get none: the paper printed no
    number per prompt length (Figure 5), and a table's best-of-sweep value beside each point would mislead.
    """
    out: dict[CellKey, Comparison] = {}
    if table.x_key not in (None, "method.seq_util_rate"):
        return out
    for key, cell in table.cells.items():
        if not cell.n_seeds or not table.pct.get(cell.task, False):
            continue
        value = paper_value(cell.config, cell.metric)
        if value is not None:
            out[key] = Comparison(value, differences(cell, value, table.epoch))
    return out
