"""Prompt sources, one module per strategy family. Importing this package registers every built-in one."""

from ipt_ray.prompts.sources import encoder, soft_prompt, token_table  # noqa: F401  (registration side effect)
