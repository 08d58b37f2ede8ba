"""The Tune driver: one trial per config, its seeds trained together, Optuna proposing configs.

- ``num_workers: 0`` runs ``train_loop_per_worker`` inside the Tune function trial (``reuse_actors``
  keeps the loaded backbone and tokenised data warm between trials).
- ``num_workers >= 1`` runs ``TorchTrainer(train_loop_per_worker).fit()`` from the function trial (not
  the deprecated ``Tuner(trainer)``); its run is named after the trial so a restarted trial resumes
  from its own checkpoint. Such a trial reserves one ``trial_slot`` custom resource and no CPU, so
  its Train workers always find the CPUs they need: no sweep can deadlock.
- MLflow is written from the driver (``MlflowTrackingCallback``); workers need no route to it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipt_ray.config import TRIAL_SLOT
from ipt_ray.config import ExperimentConfig, ParamSpace, validate_config

SWEEP_FILE = "ipt_sweep.json"


# ---------------------------------------------------------------- search space


def to_tune_space(space: dict[str, ParamSpace]) -> dict[str, Any]:
    from ray import tune

    out: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.type == "choice":
            out[key] = tune.choice([encode_choice(v) for v in dim.values or []])
        elif dim.type == "int":
            step = dim.step or 1
            # qrandint's upper bound is inclusive, like the YAML's
            out[key] = tune.qrandint(int(dim.low), int(dim.high), step) if step > 1 else tune.randint(int(dim.low), int(dim.high) + 1)
        elif dim.type == "uniform":
            out[key] = tune.uniform(dim.low, dim.high)
        else:
            out[key] = tune.loguniform(dim.low, dim.high)
    return out


def grid_space(space: dict[str, ParamSpace]) -> dict[str, Any]:
    """``searcher: grid``: every choice (and every int step) crossed; float ranges are refused."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.type == "choice":
            out[key] = tune.grid_search([encode_choice(v) for v in dim.values or []])
        elif dim.type == "int":
            out[key] = tune.grid_search(list(range(int(dim.low), int(dim.high) + 1, dim.step or 1)))
        else:
            raise ValueError(f"sweep.search_space.{key}: searcher 'grid' needs choice or int dimensions, not {dim.type!r}")
    return out


def encode_choice(value: Any) -> Any:
    """Optuna's categorical values must be scalars: mappings and lists travel as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value[:1] in "{[":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


# ---------------------------------------------------------------- the trial


def _trial_loop_config(cfg: ExperimentConfig, metric: str, runtime: str) -> dict[str, Any]:
    return {"experiment": cfg.model_dump(mode="json"), "seeds": list(cfg.train.seeds), "runtime": runtime,
            "metric": metric}


def ipt_trial(params: dict[str, Any], base: dict[str, Any], storage: str) -> None:
    """The Tune function trainable: ``params`` are the sampled dotted overrides of ``base``."""
    from ray import tune

    from ipt_ray.train import train_loop_per_worker

    cfg = validate_config(base).with_overrides(decode_params(params))
    trial_id = tune.get_context().get_trial_id()
    in_trial = cfg.cluster.num_workers == 0
    loop_config = _trial_loop_config(cfg, cfg.sweep.metric, "tune" if in_trial else "train")
    # Adapters go to the sweep's storage, not the trial dir that Tune syncs while we write.
    loop_config["run_dir"] = str(Path(storage) / "adapters" / trial_id)
    if in_trial:
        train_loop_per_worker(loop_config)
        return

    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

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


def reuse_actors(cfg: ExperimentConfig) -> bool:
    """Whether a finished trial's actor (imports, loaded backbone, tokenised data) takes the next trial.

    Always for trials that train in-process. A trial running a TorchTrainer can be reused only when no
    scheduler stops trials early: a stopped trial's ``fit()`` does not return within Tune's reset timeout,
    and Tune then errors the trial that was to reuse the actor instead of starting a fresh one.
    """
    return cfg.cluster.num_workers == 0 or cfg.sweep.scheduler == "none"


# ---------------------------------------------------------------- searcher


def make_searcher(cfg: ExperimentConfig, target: str, max_epochs: int):
    if cfg.sweep.searcher != "optuna":
        return None
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    class SeedMeanOptunaSearch(OptunaSearch):
        """Tells Optuna each config's seed mean; a config stopped early is marked PRUNED, not COMPLETE."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            stopped_early = bool(result) and not error and int(result.get("epoch", max_epochs)) < max_epochs
            if not stopped_early or trial_id not in self._ot_trials or trial_id in self._completed_trials:
                return super().on_trial_complete(trial_id, result, error)
            ot_trial = self._ot_trials[trial_id]
            value = result.get(self.metric)
            if value is not None:
                ot_trial.report(float(value), step=int(result["epoch"]))
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)

    sampler = optuna.samplers.TPESampler(seed=cfg.sweep.searcher_seed)
    return SeedMeanOptunaSearch(sampler=sampler, metric=target, mode=cfg.sweep.mode, seed=cfg.sweep.searcher_seed)


def make_scheduler(cfg: ExperimentConfig, max_epochs: int):
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

    if cfg.sweep.scheduler == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=cfg.sweep.grace_period)
    if cfg.sweep.scheduler == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=cfg.sweep.grace_period, min_samples_required=2)
    return None


# ---------------------------------------------------------------- Ray


@dataclass
class RayHandle:
    started_local: bool
    address: str


def connect_ray(cfg: ExperimentConfig) -> RayHandle:
    """Join the cluster at ``cluster.address`` / ``RAY_ADDRESS``, or start a local Ray with trial slots."""
    import ray

    if ray.is_initialized():
        return RayHandle(False, "existing")
    address = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    if address:
        # No runtime_env of our own here: inside `ray job submit` it would have to merge with the job's.
        ray.init(address=address, log_to_driver=True)
        return RayHandle(False, address)
    runtime_env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
    cpus = os.cpu_count() or 1
    per_trial = max(1.0, cfg.cluster.num_workers * cfg.cluster.cpus_per_worker)
    slots = max(1, int(cpus // per_trial))
    # address="local": a private Ray for this sweep, never a `ray start` cluster that happens to run here
    ray.init(address="local", num_cpus=cpus, resources={TRIAL_SLOT: slots}, runtime_env=runtime_env,
             log_to_driver=True, configure_logging=True, logging_level="WARNING")
    return RayHandle(True, "local")


def trial_resources(cfg: ExperimentConfig) -> dict[str, float]:
    if cfg.cluster.num_workers == 0:
        return {"CPU": cfg.cluster.cpus_per_trial}
    return {"CPU": 0, TRIAL_SLOT: 1}


def max_concurrent(cfg: ExperimentConfig) -> int:
    import ray

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


# ---------------------------------------------------------------- the sweep


def code_version() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5).stdout.strip()
        if sha:
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return f"ipt-ray {version('ipt-ray')}"


def storage_root(cfg: ExperimentConfig) -> Path:
    return (Path(cfg.train.output_dir).expanduser() / "sweeps").resolve()


def resolve_sweep(cfg: ExperimentConfig, config_path: Path, resume: bool | str) -> tuple[str, str, bool]:
    """(sweep name, sweep id, resuming?). A new sweep gets a timestamped name; ``--resume`` takes the latest."""
    root = storage_root(cfg)
    stem = cfg.sweep.name or re.sub(r"[^A-Za-z0-9_.-]", "-", config_path.stem)
    if resume:
        if isinstance(resume, str):
            candidates = [root / resume]
        else:
            candidates = sorted((p for p in root.glob(f"{stem}-*") if (p / SWEEP_FILE).is_file()),
                                key=lambda p: p.stat().st_mtime)
        if not candidates or not (candidates[-1] / SWEEP_FILE).is_file():
            raise ValueError(f"nothing to resume: no sweep {resume if isinstance(resume, str) else stem + '-*'} under {root}")
        meta = json.loads((candidates[-1] / SWEEP_FILE).read_text())
        return meta["name"], meta["sweep_id"], True
    name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return name, name, False


def run_sweep(cfg: ExperimentConfig, config_path: str | Path, resume: bool | str = False,
              config_text: str | None = None, out=print, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Run (or resume) a sweep; ``callbacks`` are extra ``tune.Callback`` s (e.g. for measurements)."""
    from ray import tune

    from ipt_ray import results as report
    from ipt_ray.preflight import preflight
    from ipt_ray.results import config_id
    from ipt_ray.tracking import (JOURNAL_FILE, MlflowTrackingCallback, SweepTracker, check_reachable,
                                  resolve_tracking_uri)

    config_path = Path(config_path)
    if not cfg.sweep.search_space:
        raise ValueError("sweep.search_space is empty: nothing to sweep (use `ipt-ray train` for one config)")
    preflight(cfg)  # bad input fails here: before Ray starts, MLflow is written or any file is made
    uri = resolve_tracking_uri(cfg.tracking.uri)
    check_reachable(uri)  # before any trial runs
    name, sweep_id, resuming = resolve_sweep(cfg, config_path, resume)
    root = storage_root(cfg)
    sweep_dir = root / name
    metric = cfg.sweep.metric
    target = f"dev_{metric}_mean"
    max_epochs = cfg.train.epochs
    seeds = list(cfg.train.seeds)

    # A lost server does not stop the sweep: failed writes wait in the journal (replayed when it is back).
    tracker = SweepTracker(uri, cfg.tracking.experiment, sweep_id, name, journal=sweep_dir / JOURNAL_FILE)
    space_json = {k: v.model_dump(exclude_none=True) for k, v in cfg.sweep.search_space.items()}
    tracker.start_parent(config_text or config_path.read_text(), space_json, code_version(),
                         {"task": cfg.task.name, "backbone": cfg.backbone.name, "seeds": ",".join(map(str, seeds)),
                          "num_samples": cfg.sweep.num_samples, "searcher": cfg.sweep.searcher,
                          "scheduler": cfg.sweep.scheduler, "metric": target})
    callback = MlflowTrackingCallback(tracker, seeds=seeds, metric=metric, max_epochs=max_epochs, config_id=config_id,
                                      default_strategy=cfg.method.strategy, resuming=resuming)

    handle = connect_ray(cfg)
    searcher = None
    started = time.perf_counter()
    try:
        trainable = tune.with_resources(
            tune.with_parameters(ipt_trial, base=cfg.model_dump(mode="json"), storage=str(sweep_dir)),
            trial_resources(cfg),
        )
        if resuming and tune.Tuner.can_restore(str(sweep_dir)):
            out(f"resuming sweep {name} from {sweep_dir}")
            tuner = tune.Tuner.restore(str(sweep_dir), trainable, resume_unfinished=True, resume_errored=True)
            # Tune restored the callbacks pickled with the run config; hand over fresh ones (no public setter).
            tuner._local_tuner._run_config.callbacks = [callback, *(callbacks or [])]  # noqa: SLF001
        else:
            root.mkdir(parents=True, exist_ok=True)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            (sweep_dir / SWEEP_FILE).write_text(json.dumps({"name": name, "sweep_id": sweep_id, "tracking_uri": uri,
                                                            "experiment": cfg.tracking.experiment,
                                                            "config": str(config_path.resolve())}))
            grid = cfg.sweep.searcher == "grid"
            searcher = make_searcher(cfg, target, max_epochs)
            tuner = tune.Tuner(
                trainable,
                param_space=grid_space(cfg.sweep.search_space) if grid else to_tune_space(cfg.sweep.search_space),
                tune_config=tune.TuneConfig(
                    metric=target, mode=cfg.sweep.mode,
                    search_alg=searcher,
                    scheduler=make_scheduler(cfg, max_epochs),
                    num_samples=1 if grid else cfg.sweep.num_samples,
                    max_concurrent_trials=max_concurrent(cfg),
                    reuse_actors=reuse_actors(cfg),
                ),
                run_config=tune.RunConfig(
                    name=name, storage_path=str(root), callbacks=[callback, *(callbacks or [])],
                    failure_config=tune.FailureConfig(max_failures=cfg.cluster.max_failures),
                    # Every checkpoint is kept while the sweep runs (prune_checkpoints trims them at the end):
                    # with num_to_keep=1 Tune deletes a trial's previous checkpoint as soon as it registers
                    # the next, before the experiment snapshot that names the new one is on disk, and a
                    # driver killed in between resumes into "checkpoint does not exist on storage anymore".
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                    verbose=1,
                ),
            )
        grid_result = tuner.fit()
        wall = time.perf_counter() - started
        prune_checkpoints(grid_result)
        results = report.results_from_tune(grid_result, metric, seeds, max_epochs)
        summary = report.aggregate(results, metric, cfg.sweep.mode)
        artifacts = report.write_artifacts(summary, sweep_dir / "report")
        tracker.log_aggregate(summary, artifacts)
        optuna_states = _optuna_states(searcher)
        if optuna_states:
            tracker.tag_parent({f"ipt.optuna.{state.lower()}": str(n) for state, n in optuna_states.items()})
        tracker.finish()
        journaled = tracker.flush()  # one last replay attempt; what stays waits for `report --sync`
    finally:
        if handle.started_local:
            import ray

            ray.shutdown()
    trial_time = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in grid_result)
    out("")
    out(report.render_console(summary))
    out("")
    out(f"sweep {name}: {len(summary.configs)} configs x {len(seeds)} seeds in {wall:.0f}s "
        f"(sum of trial times {trial_time:.0f}s)")
    out(f"results: {artifacts.get('md', sweep_dir)}")
    out(f"MLflow UI: mlflow ui --backend-store-uri {uri}" if not uri.startswith("http") else f"MLflow UI: {uri}")
    if journaled:
        out(f"warning: MLflow at {uri} was unreachable: {journaled} tracking writes wait in "
            f"{sweep_dir / JOURNAL_FILE}; once it is back run: ipt-ray report --sync {name}")
    return {"name": name, "sweep_id": sweep_id, "summary": summary, "wall_time_s": wall, "trial_time_s": trial_time,
            "tracking_uri": uri, "sweep_dir": str(sweep_dir), "optuna_states": optuna_states,
            "journaled": journaled}


def prune_checkpoints(grid_result: Any) -> None:
    """Delete every trial checkpoint but the latest, once Tune's final experiment snapshot is written.

    Only then is it safe: a resume reads the snapshot, and the snapshot names each trial's latest
    checkpoint.
    """
    for result in grid_result:
        if result.checkpoint is None or not result.path:
            continue
        keep = Path(result.checkpoint.path).resolve()
        for folder in Path(result.path).glob("checkpoint_*"):
            if folder.is_dir() and folder.resolve() != keep:
                shutil.rmtree(folder, ignore_errors=True)


def _optuna_states(searcher: Any) -> dict[str, int]:
    """How Optuna saw the trials (COMPLETE / PRUNED / FAIL), for the parent run and the tests."""
    study = getattr(searcher, "_ot_study", None)
    if study is None:
        return {}
    from collections import Counter

    return dict(Counter(t.state.name for t in study.trials))
