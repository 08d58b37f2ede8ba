"""The methods the benchmarks measure, read from the strategy registry (no list of strategy names here).

Every prompt strategy that needs no input file, in each of its spec's ``variants``, with input injection;
and each one's default variant with prefix injection. Labels are the registry's display labels, with the
input-injection "PT + " dropped ("Random IPT (compact)"), as the figures on file name them.
"""

from __future__ import annotations

from typing import Any

from ipt_ray.config import method_defaults, strategy_specs


def bench_methods(*, prefix: bool = True, fine_tuning: bool = False, defaults_only: bool = False,
                  mark_defaults: bool = False) -> dict[str, dict[str, Any]]:
    """Label -> partial method section, in report order (all input injection first, then prefix).

    ``defaults_only``: each strategy's default variant alone; ``mark_defaults``: " [default]" after the
    label of the default variant of each strategy that is compared against a base (the IPT variants, whose
    default layouts the memory target is about).
    """
    defaults = method_defaults()
    methods: dict[str, dict[str, Any]] = {}
    injections = ("input", "prefix") if prefix else ("input",)
    for injection in injections:
        for spec in strategy_specs():
            if spec.required or (not spec.uses_prompt and not (fine_tuning and injection == "input")):
                continue  # a file the benchmark does not have (PPT's pretrained prompt), or no prompt at all
            variants = spec.variants or ({},)
            default = [v for v in variants if all(defaults[k] == x for k, x in v.items())] or [{}]
            if injection == "prefix" or not spec.uses_prompt or defaults_only:
                variants = default
            for variant in variants:
                method = {"strategy": spec.name, **({"injection": "prefix"} if injection == "prefix" else {}), **variant}
                marked = mark_defaults and spec.base is not None and variant in default and injection == "input"
                methods[method_label(spec, method) + (" [default]" if marked else "")] = method
    return methods


def method_label(spec: Any, method: dict[str, Any]) -> str:
    label = spec.display_label(method).removeprefix("PT + ")
    extra = [str(v) for k, v in method.items() if k not in ("strategy", "injection") and k != spec.label_field]
    if not extra:
        return label
    if label.endswith(")"):  # "Structured PT (prefix)" -> "Structured PT (prefix, mlp)"
        return f"{label[:-1]}, {', '.join(extra)})"
    return f"{label} ({', '.join(extra)})"
