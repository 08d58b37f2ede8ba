"""Ray Tune + Optuna sweeps: search space, searcher, the trial, resources and the driver."""

from ipt_ray.sweep.space import (decode_params, encode_choice, grid_axis, grid_space, param_space,  # noqa: F401
                                 to_tune_space, tune_sampler)
from ipt_ray.sweep.search import make_scheduler, make_searcher, optuna_states  # noqa: F401
from ipt_ray.sweep.trial import fit_on_workers, ipt_trial, trial_loop_config  # noqa: F401
from ipt_ray.sweep.resources import (RayHandle, connect_ray, disconnect_ray, max_concurrent,  # noqa: F401
                                     reuse_actors, trial_resources)
from ipt_ray.sweep.driver import (SWEEP_FILE, SweepOutcome, SweepPlan, check_sweep, code_version,  # noqa: F401
                                  finish_sweep, make_tuner, new_tuner, plan_sweep, print_outcome, prune_checkpoints,
                                  resolve_sweep, run_sweep, splits_into_runs, start_tracker, storage_root,
                                  tracking_callback, write_sweep_file)

__all__ = [
    'decode_params', 'encode_choice', 'grid_axis', 'grid_space', 'param_space', 'to_tune_space', 'tune_sampler',
    'make_scheduler', 'make_searcher', 'optuna_states',
    'fit_on_workers', 'ipt_trial', 'trial_loop_config',
    'RayHandle', 'connect_ray', 'disconnect_ray', 'max_concurrent', 'reuse_actors', 'trial_resources',
    'SWEEP_FILE', 'SweepOutcome', 'SweepPlan', 'check_sweep', 'code_version', 'finish_sweep', 'make_tuner',
    'new_tuner', 'plan_sweep', 'print_outcome', 'prune_checkpoints', 'resolve_sweep', 'run_sweep', 'start_tracker',
    'splits_into_runs', 'storage_root', 'tracking_callback', 'write_sweep_file',
]
