"""Interpretability: nearest vocabulary tokens of prompt vectors, projections of instance prompts."""

from ipt_ray.interpret.vectors import (  # noqa: F401
    TextInput,
    DEFAULT_MAX_LENGTH,
    encode_texts,
    prompt_vectors,
    sentence_representations,
    nearest_tokens,
    format_nearest,
    Projection,
    projection_plot,
    load_projection_data,
)

__all__ = ['TextInput', 'DEFAULT_MAX_LENGTH', 'encode_texts', 'prompt_vectors', 'sentence_representations', 'nearest_tokens', 'format_nearest', 'Projection', 'projection_plot', 'load_projection_data']
