"""Adapters (a seed's trainable prompt/injection/head), seed groups over one frozen backbone, artefact io."""

from ipt_ray.model.adapter import (  # noqa: F401
    ADAPTER_FORMAT,
    ADAPTER_FILE,
    ADAPTER_CONFIG_FILE,
    CONTEXT_PREFIX,
    Adapter,
    SeedGroup,
    concat_batches,
    label_word_ids,
    build_context,
    build_adapter,
    count_trainable,
    parameter_report,
    save_adapter,
    load_adapter,
)

__all__ = ['ADAPTER_FORMAT', 'ADAPTER_FILE', 'ADAPTER_CONFIG_FILE', 'CONTEXT_PREFIX', 'Adapter', 'SeedGroup', 'concat_batches',
           'label_word_ids', 'build_context', 'build_adapter', 'count_trainable', 'parameter_report', 'save_adapter',
           'load_adapter']
