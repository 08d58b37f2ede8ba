"""The prompt stage: sources (``sources/``, one module per strategy family), the encoders of Encoder IPT,
injections and heads, each in a registry. Importing this package registers every built-in piece.

A source makes ``P [B, k, d]`` and a mask ``[B, k]``; an injection puts them into the frozen backbone; a
head reads the input tokens' hidden states. The three are orthogonal: any source with any injection and
any head.
"""

from ipt_ray.prompts import heads, injections, sources  # noqa: F401  (registration side effect)
from ipt_ray.prompts.base import (
    HEADS,
    INJECTIONS,
    SOURCES,
    BuildContext,
    Head,
    Injection,
    PromptSource,
    first_content_tokens,
    lookup,
    register_head,
    register_injection,
    register_source,
)
from ipt_ray.prompts.encoders import ENCODERS, PromptReadout, StackedLSTM, TextCNN, TokenMLP, build_encoder
from ipt_ray.prompts.sources.token_table import TABLE_FORMAT, PromptTable, initial_table, load_prompt_table

__all__ = [
    "HEADS", "INJECTIONS", "SOURCES", "BuildContext", "Head", "Injection", "PromptSource", "first_content_tokens",
    "lookup", "register_head", "register_injection", "register_source", "ENCODERS", "PromptReadout", "StackedLSTM",
    "TextCNN", "TokenMLP", "build_encoder", "TABLE_FORMAT", "PromptTable", "initial_table", "load_prompt_table",
]
