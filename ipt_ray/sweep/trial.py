"""The Tune trial: one config, its seeds trained together, in the trial or on Ray Train workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ipt_ray.config import ExperimentConfig, validate_config
from ipt_ray.sweep.resources import IdleCpuThreads
from ipt_ray.sweep.space import decode_params


def trial_loop_config(cfg: ExperimentConfig, metric: str, runtime: str) -> dict[str, Any]:
    """The ``loop_config`` of :func:`ipt_ray.train.train_loop_per_worker` for a trial of ``cfg``."""
    return {"experiment": cfg.model_dump(mode="json"), "seeds": list(cfg.train.seeds), "runtime": runtime,
            "metric": metric}


def ipt_trial(params: dict[str, Any], base: dict[str, Any], storage: str, share_idle_cpus: bool = False) -> None:
    """The Tune function trainable: ``params`` are the sampled dotted overrides of ``base``;
    ``share_idle_cpus``: in-trial training grows its threads into idle CPUs (:class:`IdleCpuThreads`)."""
    from ray import tune  # heavy, optional: only inside a Tune trial

    # torch, transformers: in the trial's process only (the driver pickles this function by reference)
    from ipt_ray.train import train_loop_per_worker

    cfg = validate_config(base).with_overrides(decode_params(params))
    if cfg.sweep.few_shot is not None:  # one seed per trial, its data seed (LM-BFF's runs; ipt_ray.sweep.fewshot)
        cfg = cfg.with_overrides({"train.seeds": [cfg.task.data_seed]})
    trial_id = tune.get_context().get_trial_id()
    in_trial = cfg.cluster.num_workers == 0
    loop_config = trial_loop_config(cfg, cfg.sweep.metric, "tune" if in_trial else "train")
    # Adapters go to the sweep's storage, not the trial dir that Tune syncs while we write.
    loop_config["run_dir"] = str(Path(storage) / "adapters" / trial_id)
    if in_trial:
        if share_idle_cpus:
            loop_config["threads_fn"] = IdleCpuThreads(cfg.cluster.cpus_per_trial)
        train_loop_per_worker(loop_config)
    else:
        fit_on_workers(cfg, loop_config, trial_id, storage)


def fit_on_workers(cfg: ExperimentConfig, loop_config: dict[str, Any], trial_id: str, storage: str) -> None:
    """``TorchTrainer(train_loop_per_worker).fit()`` on ``cluster.num_workers`` workers, reporting to Tune."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig  # heavy, optional: only inside a Tune trial
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from ipt_ray.train import train_loop_per_worker  # torch: in the trial's process only (as in ipt_trial)

    # Ray Train reads its poll interval from this variable and passes it on to the controller it starts
    # (ray.train.v2._internal.constants.ENV_VARS_TO_PROPAGATE). Its 2 s default cost 2.8 s more per
    # trial in bench/results/overhead.md.
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(cfg.cluster.health_check_interval_s)
    resources = {"CPU": cfg.cluster.cpus_per_worker}
    if cfg.cluster.use_gpu:
        resources["GPU"] = cfg.cluster.gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=cfg.cluster.num_workers, use_gpu=cfg.cluster.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=f"trial-{trial_id}",  # same name after a restart: Train resumes from this run's checkpoint
            storage_path=str(Path(storage) / "train_runs"),
            failure_config=FailureConfig(max_failures=cfg.cluster.max_failures, controller_failure_limit=2),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()
