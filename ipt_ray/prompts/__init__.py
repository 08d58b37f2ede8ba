"""Prompt sources, injections and heads. Importing this package registers every built-in piece."""

from ipt_ray.prompts import heads, injections, instance, task  # noqa: F401  (registration side effect)
from ipt_ray.prompts.base import (
    HEADS,
    INJECTIONS,
    SOURCES,
    BuildContext,
    Head,
    Injection,
    PromptSource,
    register_head,
    register_injection,
    register_source,
)

__all__ = [
    "HEADS", "INJECTIONS", "SOURCES", "BuildContext", "Head", "Injection", "PromptSource",
    "register_head", "register_injection", "register_source",
]
