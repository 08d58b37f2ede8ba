"""Ray Tune + Optuna sweeps: search space, searcher, the trial, resources and the driver."""

from ipt_ray.sweep.driver import (  # noqa: F401
    SWEEP_FILE,
    to_tune_space,
    grid_space,
    encode_choice,
    decode_params,
    ipt_trial,
    reuse_actors,
    make_searcher,
    make_scheduler,
    RayHandle,
    connect_ray,
    trial_resources,
    max_concurrent,
    code_version,
    storage_root,
    resolve_sweep,
    run_sweep,
    prune_checkpoints,
)

__all__ = ['SWEEP_FILE', 'to_tune_space', 'grid_space', 'encode_choice', 'decode_params', 'ipt_trial', 'reuse_actors', 'make_searcher', 'make_scheduler', 'RayHandle', 'connect_ray', 'trial_resources', 'max_concurrent', 'code_version', 'storage_root', 'resolve_sweep', 'run_sweep', 'prune_checkpoints']
