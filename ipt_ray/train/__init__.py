"""The training loop Ray Train runs (also in-process), its step, runtime, checkpoints and input cache."""

from ipt_ray.train.runtime import Runtime, make_runtime, progress_bar  # noqa: F401
from ipt_ray.train.inputs import (Prepared, backbone_collator, epoch_generator, prepared_inputs,  # noqa: F401
                                 train_loader)
from ipt_ray.train.step import (GROUP_OF_MODULE, SeedTraining, accumulated_step, backward,  # noqa: F401
                                distributed, group_lrs, linear_schedules, optimizer_step, parameter_groups,
                                seed_optimizer, start_seed_training, train_step, warmup_length)
from ipt_ray.train.evaluation import epoch_metrics, epoch_report, evaluate, merge_epoch, predict, summarise  # noqa: F401
from ipt_ray.train.checkpoints import (CHECKPOINT_FILE, PROGRESS_FILE, discard_reported_checkpoint,  # noqa: F401
                                       load_trainer_state, restore_trainer_state, save_epoch_checkpoint,
                                       save_trainer_state)
from ipt_ray.train.inference import (LoadedAdapter, encode_records, ensemble_probabilities,  # noqa: F401
                                     load_adapters, probabilities)
from ipt_ray.train.loop import (LoopRun, accumulation_groups, final_report, injected_fault, open_run,  # noqa: F401
                                resume, run_epoch, run_local, score, seed_groups, train_epoch,
                                train_loop_per_worker, train_seed_group)

__all__ = [
    'Runtime', 'make_runtime', 'progress_bar',
    'Prepared', 'backbone_collator', 'epoch_generator', 'prepared_inputs', 'train_loader',
    'GROUP_OF_MODULE', 'SeedTraining', 'accumulated_step', 'backward', 'distributed', 'group_lrs', 'linear_schedules',
    'optimizer_step', 'parameter_groups', 'seed_optimizer', 'start_seed_training', 'train_step', 'warmup_length',
    'epoch_metrics', 'epoch_report', 'evaluate', 'merge_epoch', 'predict', 'summarise',
    'CHECKPOINT_FILE', 'PROGRESS_FILE', 'discard_reported_checkpoint', 'load_trainer_state', 'restore_trainer_state',
    'save_epoch_checkpoint', 'save_trainer_state',
    'LoadedAdapter', 'encode_records', 'ensemble_probabilities', 'load_adapters', 'probabilities',
    'LoopRun', 'accumulation_groups', 'final_report', 'injected_fault', 'open_run', 'resume', 'run_epoch', 'run_local',
    'score', 'seed_groups', 'train_epoch', 'train_loop_per_worker', 'train_seed_group',
]
