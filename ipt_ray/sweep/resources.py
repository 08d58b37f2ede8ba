"""Ray for a sweep: joining or starting it, what each trial reserves, and how many trials run at once."""

from __future__ import annotations

import os
import socket
import time
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from ipt_ray.config import TRIAL_SLOT, ExperimentConfig
from ipt_ray.system import environment

GCS_PORT_VARIABLE = "RAY_GCS_SERVER_PORT"  # ray._private.ray_constants.GCS_PORT_ENVIRONMENT_VARIABLE


@dataclass
class RayHandle:
    started_local: bool  # this sweep started its own Ray (and shuts it down at the end)
    address: str


def connect_ray(cfg: ExperimentConfig) -> RayHandle:
    """Join the cluster at ``cluster.address`` / ``RAY_ADDRESS``, or start a local Ray with trial slots."""
    import ray  # heavy, optional: only when a sweep starts

    if ray.is_initialized():
        return RayHandle(False, "existing")
    address = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    if address:
        # No runtime_env of our own here: inside `ray job submit` it would have to merge with the job's.
        ray.init(address=address, log_to_driver=True)
        return RayHandle(False, address)
    cpus = os.cpu_count() or 1
    per_trial = max(1.0, cfg.cluster.num_workers * cfg.cluster.cpus_per_worker)
    slots = max(1, int(cpus // per_trial))
    return RayHandle(True, start_local_ray(num_cpus=cpus, resources={TRIAL_SLOT: slots}))


def start_local_ray(**init_kwargs: Any) -> str:
    """Start a private Ray for this sweep (never a `ray start` cluster that happens to run here) and return
    its GCS address, which every process of it finds in ``RAY_ADDRESS`` (Ray resolves 127.0.0.1 to the
    node's address).

    Why the address: Ray Train's placement-group cleaner looks its cluster up by "auto", which fails once a
    second Ray runs on the host ("Found multiple active Ray instances"); the placement groups of trials that
    a scheduler stopped then hold their CPUs and the sweep waits forever. Ray reads the GCS port from
    ``RAY_GCS_SERVER_PORT`` when it starts, so the address is known before its processes are."""
    import ray  # heavy, optional: only when a sweep starts

    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env_vars = {"TOKENIZERS_PARALLELISM": "false", "RAY_ADDRESS": address}
    with environment(**{GCS_PORT_VARIABLE: str(port)}):
        ray.init(address="local", runtime_env={"env_vars": env_vars},
                 log_to_driver=True, configure_logging=True, logging_level="WARNING", **init_kwargs)
    return address


def disconnect_ray(handle: RayHandle) -> None:
    """Shut down the Ray this sweep started; a cluster it joined keeps running."""
    if handle.started_local:
        import ray  # heavy, optional: only when a sweep starts

        ray.shutdown()


def trial_resources(cfg: ExperimentConfig) -> dict[str, float]:
    """In-process trials reserve their CPUs; a TorchTrainer trial reserves one trial slot and no CPU."""
    if cfg.cluster.num_workers == 0:
        return {"CPU": cfg.cluster.cpus_per_trial}
    return {"CPU": 0, TRIAL_SLOT: 1}


def max_concurrent(cfg: ExperimentConfig) -> int:
    """``sweep.max_concurrent_trials``, else as many trials as the cluster's CPUs / slots / GPUs hold."""
    import ray  # heavy, optional: only when a sweep starts

    if cfg.sweep.max_concurrent_trials:
        return cfg.sweep.max_concurrent_trials
    total = ray.cluster_resources()
    if cfg.cluster.num_workers == 0:
        return max(1, int(total.get("CPU", 1) // cfg.cluster.cpus_per_trial))
    if TRIAL_SLOT not in total:
        raise RuntimeError(
            f"the Ray cluster declares no '{TRIAL_SLOT}' resource; start its nodes with "
            f"--resources='{{\"{TRIAL_SLOT}\": N}}' (see clusters/) or set cluster.num_workers: 0"
        )
    slots = int(total[TRIAL_SLOT])
    per_trial = cfg.cluster.num_workers * (cfg.cluster.gpus_per_worker if cfg.cluster.use_gpu else cfg.cluster.cpus_per_worker)
    capacity = total.get("GPU" if cfg.cluster.use_gpu else "CPU", 0.0)
    if capacity < per_trial:  # autoscaling from zero workers: the slots declared on the head set the pace
        return max(1, slots)
    return max(1, min(slots, int(capacity // per_trial)))


def reuse_actors(cfg: ExperimentConfig) -> bool:
    """Whether a finished trial's actor (imports, loaded backbone, tokenised data) takes the next trial.

    Always for trials that train in-process. A trial running a TorchTrainer can be reused only when no
    scheduler stops trials early: a stopped trial's ``fit()`` does not return within Tune's reset timeout,
    and Tune then errors the trial that was to reuse the actor instead of starting a fresh one.
    """
    return cfg.cluster.num_workers == 0 or cfg.sweep.scheduler == "none"


@dataclass
class IdleCpuThreads:
    """Called in a trial's training loop: torch's intra-op threads = the trial's own CPUs + the CPUs no
    trial holds, re-read from Ray at most every ``every_s`` seconds.

    Only for in-trial training on a sweep's private local Ray, where Ray's free CPUs are this machine's.
    A trial that outlived the others (the last one, or the best one after early stopping) then uses
    the cores they left idle. When a new trial takes a CPU, threads shrink at the next check.
    """

    own_cpus: float
    every_s: float = 5.0
    last_check: float = field(default=float("-inf"))

    def __call__(self) -> None:
        import ray  # heavy, optional: only inside a Tune trial
        import torch  # in the trial's process only: the driver imports this module and never trains

        now = time.monotonic()
        if now - self.last_check < self.every_s:
            return
        self.last_check = now
        free = ray.available_resources().get("CPU", 0.0)
        threads = max(1, min(os.cpu_count() or 1, int(self.own_cpus + free)))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)


def shares_idle_cpus(cfg: ExperimentConfig, handle: RayHandle) -> bool:
    """Whether a sweep's trials take idle CPUs (:class:`IdleCpuThreads`): in-trial training on its own Ray,
    with no fixed ``train.num_threads``."""
    return (cfg.cluster.share_idle_cpus and handle.started_local and cfg.cluster.num_workers == 0
            and not cfg.train.num_threads)
