"""The strategy registry: what every stage needs to know about a prompt strategy, torch-free.

A :class:`StrategySpec` is a strategy's self-description: its own ``method.*`` fields (pydantic models),
its display label and the fields that qualify variants of it, the base method significance tests compare
it against, the files it reads (preflight checks them, loading makes them absolute), and flags (trains the
backbone, makes prompts at all, needs an MLM head). The config's strategy choices, preflight, the report's
labels, row order and significance pairs, and the benchmarks' method lists are all read from here.

The prompt stage binds an implementation to a spec (``ipt_ray.prompts.register_source``); a new strategy
is one class decorated with its spec, in any module, with no file under ``ipt_ray/`` edited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StrategyOptions(BaseModel):
    """Base of a strategy's own ``method.*`` fields (strict: unknown keys and wrong types fail)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass(frozen=True)
class FileOption:
    """A ``method.*`` field that names a file the strategy reads; ``words`` are values that are not paths."""

    kind: str  # what the file must hold, e.g. "prompt_table", "soft_prompt"
    words: tuple[str, ...] = ()

    def is_path(self, value: Any) -> bool:
        return isinstance(value, str) and value not in self.words


@dataclass(frozen=True)
class StrategySpec:
    """One strategy, self-described. ``name`` is the ``method.strategy`` value."""

    name: str
    label: str  # display label with input injection: "Prompt Tuning", "PT + Random IPT"
    prefix_label: str | None = None  # with injection 'prefix'; default: "PT + X" -> "Prefix + X", else "<label> (prefix)"
    label_field: str | None = None  # an option whose value the label names: "PT + Encoder IPT (cnn)"
    base: str | None = None  # the strategy it is compared against (same injection) in significance tests
    options: tuple[type[StrategyOptions], ...] = ()  # its own method.* fields
    qualifiers: tuple[str, ...] = ()  # option fields that make variants, named in labels when they vary
    reads: Mapping[str, FileOption] = field(default_factory=dict)  # option field -> the file it names
    required: tuple[str, ...] = ()  # option fields that must be set
    heads: tuple[str, ...] | None = None  # allowed heads; None: any
    default_table_init: str | None = None  # the prompt table a token-table strategy starts from
    variants: tuple[Mapping[str, Any], ...] = ()  # partial method sections benchmarks enumerate; (): defaults only
    uses_prompt: bool = True
    instance_wise: bool = False  # its prompts depend on the instance (a task-level prompt may precede them)
    table_rows_are_prompts: bool = False  # its prompts are rows of a table that ``table_init`` initialises
    trains_backbone: bool = False
    needs_mlm_head: bool = False
    order: int = 100  # row order in reports (paper order for the built-ins)
    description: str = ""

    def display_label(self, method: Mapping[str, Any]) -> str:
        """The paper's name of a method section run with this strategy (its injection, its label field)."""
        label = self.label
        if method.get("injection", "input") == "prefix" and self.uses_prompt:
            if self.prefix_label is not None:
                label = self.prefix_label
            elif label.startswith("PT + "):
                label = "Prefix + " + label[len("PT + "):]
            else:
                label = f"{label} (prefix)"
        if self.label_field:
            label += f" ({method.get(self.label_field, self.option_defaults().get(self.label_field))})"
        if "hard_prompt" in self.option_fields() and method.get("hard_prompt"):
            label += " + hard prompts"  # Table 5's "Random IPT + hard prompts"
        return label

    def option_fields(self) -> dict[str, Any]:
        """Its own fields: name -> pydantic FieldInfo, over all its option models."""
        return {name: info for model in self.options for name, info in model.model_fields.items()}

    def option_defaults(self) -> dict[str, Any]:
        return {name: info.get_default(call_default_factory=True) for name, info in self.option_fields().items()}


_SPECS: dict[str, StrategySpec] = {}


def register_strategy(spec: StrategySpec) -> StrategySpec:
    """Add a strategy. Its option fields may be shared with others only through the same option model."""
    if spec.name in _SPECS:
        if _SPECS[spec.name] == spec:
            return spec  # the same module imported twice
        raise ValueError(f"strategy {spec.name!r} registered twice")
    owners = option_models()
    for model in spec.options:
        for name in model.model_fields:
            other = owners.get(name)
            if other is not None and other is not model:
                raise ValueError(f"strategy {spec.name!r}: method.{name} is already declared by {other.__name__}")
    named = (*spec.qualifiers, *spec.reads, *spec.required, *((spec.label_field,) if spec.label_field else ()),
             *(key for variant in spec.variants for key in variant))
    for name in named:
        if name not in spec.option_fields():
            raise ValueError(f"strategy {spec.name!r} names method.{name}, which none of its options declares")
    _SPECS[spec.name] = spec
    return spec


def strategy_spec(name: str) -> StrategySpec:
    if name not in _SPECS:
        raise ValueError(f"unknown strategy {name!r} (allowed: {', '.join(_SPECS)})")
    return _SPECS[name]


def strategy_specs() -> list[StrategySpec]:
    """Every registered strategy, in report order (then registration order)."""
    return sorted(_SPECS.values(), key=lambda s: s.order)


def strategy_names() -> tuple[str, ...]:
    return tuple(s.name for s in strategy_specs())


def option_models() -> dict[str, type[StrategyOptions]]:
    """method.* option field -> the option model that declares it, over every registered strategy."""
    return {name: model for spec in _SPECS.values() for model in spec.options for name in model.model_fields}


# ---------------------------------------------------------------- the built-in strategies' fields


class PromptInitOptions(StrategyOptions):
    prompt_init: Literal["random", "vocab"] = Field("vocab", description="soft prompt init: word-embedding rows or noise")


class PretrainedPromptOptions(StrategyOptions):
    pretrained_prompt: str | None = Field(None, description="PPT: safetensors file with a pretrained [k, d] prompt")


class HypernetworkOptions(StrategyOptions):
    hypernetwork: Literal["linear", "lowrank", "mlp"] = "mlp"
    task_embedding_dim: int = Field(64, ge=1)
    hypernetwork_rank: int = Field(8, ge=1)
    hypernetwork_hidden: int = Field(128, ge=1)


class TableOptions(StrategyOptions):
    table_layout: Literal["full", "compact", "lowrank"] = "compact"
    table_rank: int = Field(16, ge=1)
    table_init: str | None = Field(
        None,
        description="'random' (noise at the word-embedding scale), 'backbone' (the backbone's word embeddings) or a "
        "prompt-table checkpoint path; default: 'random' for random_ipt, 'backbone' for pretrained_ipt / encoder_ipt "
        "until `ipt-ray pretrain` made a checkpoint. random_ipt with 'backbone' is the ablation that separates the "
        "initialisation from category pretraining (pretrained_ipt with a checkpoint). With injection 'prefix' and "
        "prefix_projection 'none' the rows of random_ipt / pretrained_ipt are 2 * layers * d wide: only 'random' fits",
    )


class HardPromptOptions(StrategyOptions):
    hard_prompt: str | dict[str, str] | None = Field(
        None,
        description="Table 5's hard type prompt: this text's token ids (backbone tokenizer, no special tokens) come "
        "before the instance's first k content tokens, and the prompt is the table rows of both (length = "
        "len(ids) + k; a compact table gives the ids their own rows). A mapping gives each task.name its own text "
        "(one sweep over several tasks). Paper: 'Human Activities' for AG News, 'Culture and the Arts' for SST-2 "
        "and IMDB",
    )

    @field_validator("hard_prompt")
    @classmethod
    def _not_blank(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        texts = value.values() if isinstance(value, dict) else [] if value is None else [value]
        if isinstance(value, dict) and not value:
            raise ValueError("an empty mapping gives no task a hard prompt: leave method.hard_prompt unset instead")
        if any(not text.strip() for text in texts):
            raise ValueError("an empty hard prompt has no tokens: leave method.hard_prompt unset instead")
        return value


def hard_prompt_for(value: str | Mapping[str, str] | None, task: str) -> str | None:
    """The hard prompt text a run on ``task`` uses: the text itself, or the mapping's entry for ``task``."""
    return value.get(task) if isinstance(value, Mapping) else value


class EncoderOptions(StrategyOptions):
    """Encoder IPT's encoder (appendix A.3 of Jiang et al. 2022; ``ipt_ray.prompts.encoders``).

    ``encoder_hidden`` is the width ``h`` of the features the encoder emits per position. Unset, it is
    proportional to the backbone width ``d`` (:meth:`default_hidden`): ``h = d * HIDDEN_PER_DIM[encoder]``,
    so an encoder's size grows with ``d**2`` (the terms in ``k`` are small). At ``d = 1024, k = 100``
    (roberta-large, Table 6) each default is ~0.5% of roberta-large's 355.4M parameters (cnn h=288:
    1.81M, rnn h=200: 1.79M, mlp h=608: 1.78M); at MiniLM's ``d = 384`` it is ~(384/1024)**2 of that
    (cnn h=108, rnn h=75, mlp h=228: ~0.25M each, ~1.1% of MiniLM-L6's 22.7M, a 6-layer model).
    """

    #: h / d of the defaults: each encoder at ~0.5% of roberta-large for d = 1024, k = 100.
    HIDDEN_PER_DIM: ClassVar[dict[str, float]] = {"cnn": 9 / 32, "rnn": 25 / 128, "mlp": 19 / 32}

    encoder: Literal["cnn", "rnn", "mlp"] = Field(
        "cnn", description="cnn: three conv + pool layers; rnn: three LSTM + three linear layers; mlp: three "
                           "linear layers (appendix A.3)")
    encoder_hidden: int | None = Field(
        None, ge=1, description="feature width h of the encoder; default proportional to the backbone width d "
                                "(cnn 9/32 d, rnn 25/128 d, mlp 19/32 d: ~0.5% of roberta-large at d=1024, k=100)")
    encoder_init: str = Field(
        "random", description="'random', or the folder `ipt-ray pretrain` wrote (or one of its encoder_<type> "
                              "folders): the encoder of type method.encoder starts from the pretrained one")
    seq_util_rate: float = Field(1.0, gt=0.0, le=1.0, description="fraction of content tokens the encoder reads")

    @classmethod
    def default_hidden(cls, encoder: str, dim: int) -> int:
        """The ``encoder_hidden`` an unset field means for backbone width ``dim``."""
        return max(4, round(dim * cls.HIDDEN_PER_DIM[encoder]))


TABLE_FILE = FileOption("prompt_table", words=("random", "backbone"))

FINE_TUNING = register_strategy(StrategySpec(
    "fine_tuning", "Fine-tuning", uses_prompt=False, trains_backbone=True, heads=("classifier", "mean_classifier"), order=0,
    description="baseline: no prompt, backbone unfrozen"))
PROMPT_TUNING = register_strategy(StrategySpec(
    "prompt_tuning", "Prompt Tuning", prefix_label="Prefix Tuning", options=(PromptInitOptions,),
    qualifiers=("prompt_init",), order=10,
    description="SoftPrompt (with injection=prefix: Prefix Tuning / P-tuning v2)"))
PPT = register_strategy(StrategySpec(
    "ppt", "PPT", options=(PromptInitOptions, PretrainedPromptOptions), required=("pretrained_prompt",),
    reads={"pretrained_prompt": FileOption("soft_prompt")}, order=20,
    description="SoftPrompt initialised from a pretrained task prompt"))
STRUCTURED = register_strategy(StrategySpec(
    "structured", "Structured PT", options=(HypernetworkOptions,), qualifiers=("hypernetwork",), order=30,
    variants=tuple({"hypernetwork": h} for h in ("linear", "lowrank", "mlp")),
    description="StructuredPrompt: hypernetwork over a task embedding"))
RANDOM_IPT = register_strategy(StrategySpec(
    "random_ipt", "PT + Random IPT", base="prompt_tuning", options=(TableOptions, HardPromptOptions),
    qualifiers=("table_layout", "table_init", "hard_prompt"), reads={"table_init": TABLE_FILE},
    default_table_init="random", instance_wise=True, table_rows_are_prompts=True,
    variants=tuple({"table_layout": t} for t in ("full", "compact", "lowrank")), order=40, description="TokenTablePrompt, random table"))
PRETRAINED_IPT = register_strategy(StrategySpec(
    "pretrained_ipt", "PT + Pretrained IPT", base="prompt_tuning", options=(TableOptions, HardPromptOptions),
    qualifiers=("table_layout", "table_init", "hard_prompt"), reads={"table_init": TABLE_FILE},
    default_table_init="backbone", instance_wise=True, table_rows_are_prompts=True,
    variants=({"table_layout": "compact"},), order=50, description="TokenTablePrompt, table from a pretrained topic classifier"))
ENCODER_IPT = register_strategy(StrategySpec(
    "encoder_ipt", "PT + Encoder IPT", base="prompt_tuning", label_field="encoder",
    options=(PromptInitOptions, TableOptions, EncoderOptions), qualifiers=("table_init", "encoder_init"),
    reads={"table_init": TABLE_FILE, "encoder_init": FileOption("prompt_encoder", words=("random",))},
    default_table_init="backbone", instance_wise=True, order=60,
    variants=tuple({"encoder": e} for e in ("cnn", "rnn", "mlp")),
    description="EncoderPrompt over the frozen pretrained table"))
