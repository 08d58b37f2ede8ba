"""Published numbers quoted beside ours in "(paper)" columns; every value names its source in :data:`SOURCES`.

Only numbers read from a source are listed: none of IPT's own Table 2/3/5 values are here, because the
paper publishes them in its PDF and the official repository only as images (``IPT-Prompttuning/IPT``:
``images/end2end.png``, ``images/few-shot.png``), which we could not check; add them with a source entry
to have them shown.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER = ("Yuezihan Jiang et al. 2022, Instance-wise Prompt Tuning for Pretrained Language Models, "
         "arXiv:2206.01958")


@dataclass(frozen=True)
class Source:
    """Where quoted numbers come from: a citation, a URL and what exactly the numbers are."""

    citation: str
    url: str
    note: str


#: Sources of :data:`PAPER_VALUES`, by key.
SOURCES: dict[str, Source] = {
    "ptv2-readme": Source(
        citation="Liu et al. 2022, P-Tuning v2 (ACL 2022), authors' repository README, "
                 "'Released results on RoBERTa-large'",
        url="https://github.com/THUDM/P-tuning-v2 (README.md, section 'Implemented Results')",
        note="P-tuning v2 is Prefix Tuning with prompts at every layer (IPT's 'Prefix Tuning' baseline); "
             "RoBERTa-large, full training set, SuperGLUE dev accuracy, one run, best epoch "
             "(BoolQ: epoch 86 of 100; RTE: epoch 65 of 100)",
    ),
}


@dataclass(frozen=True)
class PaperValue:
    """One quoted number: ``value`` in percent, as printed in ``source`` (a key of :data:`SOURCES`).

    ``setting`` is ``full`` (whole training set, dev reported) or ``few-shot``; ``method`` is a label as
    :func:`method_label` writes it, ``task`` a task name, ``metric`` a task metric name.
    """

    setting: str
    method: str
    task: str
    metric: str
    value: float
    source: str
    backbone: str = "roberta-large"


#: Quoted results, each with its source. Deliberately short: a value goes in only when it was read from
#: the source named beside it (see the module docstring for why IPT's own numbers are absent).
PAPER_VALUES: tuple[PaperValue, ...] = (
    PaperValue("full", "Prefix Tuning", "boolq", "accuracy", 84.0, "ptv2-readme"),
    PaperValue("full", "Prefix Tuning", "rte", "accuracy", 86.6, "ptv2-readme"),
)


def paper_value(method: str, task: str, metric: str, setting: str) -> PaperValue | None:
    """The quoted number for a cell, if one is on file."""
    for v in PAPER_VALUES:
        if (v.method, v.task, v.metric, v.setting) == (method, task, metric, setting):
            return v
    return None
