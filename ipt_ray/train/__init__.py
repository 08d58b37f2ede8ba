"""The training loop Ray Train runs (also in-process), its step, runtime, checkpoints and input cache."""

from ipt_ray.train.loop import (  # noqa: F401
    CHECKPOINT_FILE,
    load_splits,
    Prepared,
    prepared_inputs,
    Runtime,
    make_runtime,
    summarise,
    evaluate,
    seed_optimizer,
    train_step,
    train_loop_per_worker,
    run_local,
    predict,
)

__all__ = ['CHECKPOINT_FILE', 'load_splits', 'Prepared', 'prepared_inputs', 'Runtime', 'make_runtime', 'summarise', 'evaluate', 'seed_optimizer', 'train_step', 'train_loop_per_worker', 'run_local', 'predict']
