"""The ``method`` section: the fields every strategy shares, plus each registered strategy's own fields.

A strategy's own fields (``method.encoder``, ``method.table_layout``, ...) are declared by its registry
entry (:mod:`ipt_ray.config.strategies`), so a strategy added outside this package validates from YAML
like a built-in one. Every registered option field is accepted whatever the strategy (a search may vary
the strategy while fixing an encoder) and gets its default, so ``cfg.method.<field>`` always exists.

A dump holds the shared fields, the chosen strategy's own fields and any other option that differs from
its default. Defaults of other strategies stay out: the registry is per process, and a strategy a plugin
registered in the driver (for another experiment) must not put its fields into a config that a Tune
trial or a loaded adapter validates in a process that never imported that plugin.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ipt_ray.config.strategies import option_models, strategy_names, strategy_spec, strategy_specs


class MethodConfig(BaseModel):
    """Shared fields are declared here; strategy fields are validated by their option models (extras)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    strategy: str = Field("random_ipt", description="a registered strategy (ipt_ray.config.strategies)")
    injection: Literal["input", "prefix"] = "input"
    head: Literal["classifier", "mean_classifier", "verbalizer"] = Field(
        "classifier",
        description="'classifier': linear on the first position ([CLS] / <s>); 'mean_classifier': linear on the "
        "mean of the input tokens (for sentence-embedding backbones such as minilm-l6); 'verbalizer': the frozen "
        "MLM head's label words at <mask>")
    prompt_length: int = Field(16, ge=0, le=512, description="k: prompt vectors per instance")
    task_prompt_length: int = Field(
        0, ge=0, le=512,
        description="learned task-level prompt vectors placed before an instance-wise strategy's prompts (with "
        "injection 'prefix': the task-level prefix of Prefix + IPT); 0: none")
    # PrefixInjection
    prefix_projection: Literal["none", "mlp"] = Field(
        "mlp",
        description="'mlp': prefix = MLP(P) (Prefix Tuning's reparameterisation); 'none': the source emits the "
        "2 * layers * d keys/values directly (P-tuning v2 on RoBERTa)")
    prefix_hidden: int = Field(128, ge=1, description="width of the prefix MLP reparameterisation")
    # Head
    head_dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @field_validator("strategy")
    @classmethod
    def _registered(cls, value: str) -> str:
        allowed = strategy_names()
        if value not in allowed:  # worded and typed as pydantic words a Literal's error
            choices = ", ".join(repr(s) for s in allowed[:-1]) + f" or {allowed[-1]!r}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": choices})
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _with_strategy_options(cls, data: Any, handler: Any) -> MethodConfig:
        """Validate the shared fields and every strategy option model at once (all errors together)."""
        if not isinstance(data, dict):  # an instance, or an assignment to one
            return handler(data)
        shared = {k: v for k, v in data.items() if k in cls.model_fields}
        errors: list[Any] = [_unknown_key(k, v) for k, v in data.items()
                             if k not in cls.model_fields and k not in option_models()]
        method = _collect(lambda: handler(shared), errors)
        options: dict[str, Any] = {}
        for model in dict.fromkeys(option_models().values()):
            given = {k: v for k, v in data.items() if k in model.model_fields}
            validated = _collect(lambda: model.model_validate(given), errors)
            if validated is not None:
                options.update(validated.model_dump())
        if errors:
            raise ValidationError.from_exception_data("MethodConfig", errors)
        for name, value in options.items():
            setattr(method, name, value)
        method.check_strategy_rules()
        return method

    @model_serializer(mode="wrap")
    def _without_foreign_defaults(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        own = set(self.spec.option_fields())
        defaults = {name: model.model_fields[name].get_default(call_default_factory=True)
                    for name, model in option_models().items()}
        return {k: v for k, v in data.items()
                if k in type(self).model_fields or k in own or k not in defaults or v != defaults[k]}

    def check_strategy_rules(self) -> None:
        """What the chosen strategy's spec demands of the section (heads, required fields)."""
        spec = strategy_spec(self.strategy)
        if spec.heads is not None and self.head not in spec.heads:
            raise ValueError(f"method.head must be {' or '.join(map(repr, spec.heads))} for strategy {spec.name!r}")
        for name in spec.required:
            if not getattr(self, name, None):
                raise ValueError(f"method.{name} is required for strategy {spec.name!r}")
        if spec.uses_prompt and self.prompt_length + self.task_prompt_length == 0 and self.injection == "prefix":
            raise ValueError("method.prompt_length must be >= 1 with injection 'prefix'")
        if self.task_prompt_length and not spec.instance_wise:
            raise ValueError(
                f"method.task_prompt_length is for instance-wise strategies ({', '.join(_instance_wise())}); "
                f"strategy {spec.name!r} is task-level: raise method.prompt_length instead")
        if self.prefix_projection == "none" and self.injection == "prefix" and spec.table_rows_are_prompts:
            init = getattr(self, "table_init", None) or spec.default_table_init
            if init != "random":
                raise ValueError(
                    f"method.table_init {init!r} gives d-wide rows, but with method.injection 'prefix' and "
                    f"method.prefix_projection 'none' strategy {spec.name!r} emits its table rows as 2 * layers * d "
                    "keys/values: set method.table_init 'random' or method.prefix_projection 'mlp'")

    @property
    def spec(self):
        """This section's :class:`~ipt_ray.config.strategies.StrategySpec`."""
        return strategy_spec(self.strategy)

    @property
    def uses_prompt(self) -> bool:
        return self.spec.uses_prompt

    def prompt_width(self, hidden_size: int, num_layers: int) -> int:
        """The width of the vectors a source emits: what the injection reads. ``d`` for input injection
        and for prefix injection through the MLP; ``2 * layers * d`` (every layer's key and value) for
        prefix injection with ``prefix_projection: none``."""
        if self.injection == "prefix" and self.prefix_projection == "none":
            return 2 * num_layers * hidden_size
        return hidden_size


def _instance_wise() -> list[str]:
    return [s.name for s in strategy_specs() if s.instance_wise]


def method_fields() -> tuple[str, ...]:
    """Every ``method.*`` field: the shared ones, then each registered strategy's own."""
    return (*MethodConfig.model_fields, *option_models())


def method_defaults() -> dict[str, Any]:
    """Every ``method.*`` field with its default, over every registered strategy."""
    method = MethodConfig.model_validate({})
    return {**method.model_dump(), **{name: getattr(method, name) for name in option_models()}}


def _collect(validate: Any, errors: list[Any]) -> Any:
    """``validate()``, or None with its line errors appended to ``errors``."""
    try:
        return validate()
    except ValidationError as err:
        errors.extend(InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))
                      for e in err.errors())
        return None


def _unknown_key(key: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type="extra_forbidden", loc=(key,), input=value)
