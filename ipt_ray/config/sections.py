"""The experiment's sections (pydantic). Every section is strict: unknown keys, wrong types and
out-of-range values fail with the dotted field path and the allowed values, before anything is built or
written. The method section's strategy fields come from the strategy registry (:mod:`.strategies`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, ValidatorFunctionWrapHandler, field_validator, model_validator

from ipt_ray.config.base import ConfigError, StrictSection, format_error, section_fields, set_dotted
from ipt_ray.config.dataset import DatasetConfig, builtin_name_errors, check_custom_task
from ipt_ray.config.method import MethodConfig
from ipt_ray.config.plugins import load_plugins
from ipt_ray.config.pretraining import PretrainConfig
from ipt_ray.config.strategies import hard_prompt_for


class TaskConfig(StrictSection):
    name: str = Field("cb", description="a built-in task, or with task.dataset any other name")
    source: Literal["auto", "local", "hub", "vendored"] = "auto"
    data_dir: str | None = Field(None, description="folder in the task's original distributed format")
    dataset: DatasetConfig | None = Field(None, description="your own data, described (task.name: its name)")
    few_shot_k: int | None = Field(None, ge=1, description="K examples per class (few-shot regime)")
    cv_folds: int = Field(4, ge=2, description="folds for few-shot cross validation")
    cv_fold: int | None = Field(None, ge=0, description="train on this fold's train part, select on its dev part")
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    max_length: int = Field(128, ge=8, le=4096, description="tokens per input, prompt excluded")
    data_seed: int = Field(0, ge=0, description="seed for subsampling, few-shot sampling and the held-out dev set")
    protocol: Literal["paper", "heldout"] = Field(
        "paper", description="paper: select on the validation split (as the paper reports); heldout: select on "
        "a stratified dev set carved from train and report validation as test (few-shot keeps its own splits)")
    heldout_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of each class of train held out as "
                                    "dev (task.protocol heldout, or a dataset without a validation split)")

    @model_validator(mode="wrap")
    @classmethod
    def _builtin_name(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> TaskConfig:
        """Without a dataset the name is one of the built-in tasks (reported with the others' errors)."""
        errors = builtin_name_errors(data)
        if not errors:
            return handler(data)
        try:
            handler(data)
        except ValidationError as err:
            errors += err.errors()
        raise ValidationError.from_exception_data(cls.__name__, errors) from None

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.dataset is not None:
            check_custom_task(self.name, self.source, self.data_dir, self.dataset)
        if self.source == "local" and not self.data_dir:
            raise ValueError("task.source 'local' needs task.data_dir")
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            raise ValueError(f"task.data_dir {self.data_dir!r} is not a directory")
        if self.cv_fold is not None and self.cv_fold >= self.cv_folds:
            raise ValueError(f"task.cv_fold {self.cv_fold} must be < task.cv_folds ({self.cv_folds})")
        return self


class BackboneConfig(StrictSection):
    name: str = Field("minilm-l6", description="alias, hub name or local folder of a BERT/RoBERTa checkpoint")
    revision: str | None = None
    local_files_only: bool = Field(False, description="never touch the network (HF_HUB_OFFLINE does the same)")


class TrainConfig(StrictSection):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1, description="examples per micro-batch (per worker); an optimizer step sees "
                            "batch_size x grad_accumulation x workers examples")
    grad_accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step (1: a step per batch); "
                                   "each micro-batch's loss is weighted by its share of the step's examples, and "
                                   "an epoch's last, incomplete group of micro-batches still steps")
    eval_batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0.0, le=10.0, description="AdamW learning rate of the prompt parameters (soft prompt, "
                      "prompt table, encoder or hypernetwork, and the injection's own, e.g. the prefix MLP); for "
                      "fine-tuning, of the backbone")
    head_lr: float | None = Field(None, gt=0.0, le=10.0, description="learning rate of the classification head; "
                                  "None: train.lr")
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_ratio: float = Field(0.06, ge=0.0, lt=1.0, description="linear warm-up as a share of the optimizer "
                                "steps; ignored when train.warmup_steps is set")
    warmup_steps: int | None = Field(None, ge=0, description="linear warm-up in optimizer steps (capped at the "
                                     "run's total, with a warning); takes precedence over train.warmup_ratio; "
                                     "None: train.warmup_ratio applies")
    max_grad_norm: float = Field(1.0, gt=0.0)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    execution: Literal["auto", "batched", "sequential"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    output_dir: str = Field("runs", description="where adapters and checkpoints are written")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads (CPU)")
    progress: bool = True

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"train.seeds must be distinct, got {v}")
        return v


class ParamSpace(StrictSection):
    """One search dimension. `type` picks which other fields apply."""

    type: Literal["choice", "int", "uniform", "loguniform"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ParamSpace:
        if self.type == "choice":
            if not self.values:
                raise ValueError("type 'choice' needs a non-empty 'values' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"type {self.type!r} needs 'low' and 'high'")
            if self.low >= self.high:
                raise ValueError(f"'low' ({self.low}) must be < 'high' ({self.high})")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError("type 'loguniform' needs 'low' > 0")
        return self


#: Search keys that name a row or a column of a table (what is compared), not a hyper-parameter: the default
#: of ``sweep.few_shot.compare`` is those searched, plus every whole-section key (``method``, ``task``).
COMPARE_KEYS = ("method.strategy", "method.injection", "method.encoder", "task.name")


class FewShotConfig(StrictSection):
    """The few-shot protocol of Table 3 (Gao et al. 2021) as one sweep.

    Per data seed: K per class for train and a disjoint K for dev are drawn from train; phase ``select``
    runs every search-space point on each of the ``task.cv_folds`` stratified folds of those 2K per class
    and, per compare group and data seed, keeps the hyper-parameters (the search keys not in ``compare``)
    with the best mean over folds of the dev metric at each trial's dev-selected epoch; phase ``final``
    trains each compare group with its chosen values on the first K, selects the epoch on the second K and
    reports test (the original validation split) at that epoch. One trial trains one seed, its data seed.
    """

    data_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1,
                                  description="the few-shot draws; each is one run of the final table")
    compare: list[str] | None = Field(
        None, description="search keys naming a table row or column (default: whole-section keys such as "
                          f"method / task, and {', '.join(COMPARE_KEYS)} when searched); the other search keys "
                          "are hyper-parameters chosen by cross validation per compare group and data seed")

    @field_validator("data_seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError(f"sweep.few_shot.data_seeds must be distinct and >= 0, got {v}")
        return v

    def compare_keys(self, search_space: dict[str, Any]) -> list[str]:
        """The compare keys in search-space order (``compare`` as given, else the default above)."""
        wanted = set(self.compare) if self.compare is not None else {
            k for k in search_space if k in _SECTIONS or k in COMPARE_KEYS}
        return [k for k in search_space if k in wanted]


# Tune holds every trial of a run in the driver until the run ends (~50 KiB each here); 250 bounds that while
# costing little: 500 trials took 1.098 x the ideal wall in runs of 250 against 1.058 in one run, and 1.19 in
# runs of 125 (each run starts its trial actors anew; bench/results/scale_bounded.md, scale_runs.md).
DEFAULT_TRIALS_PER_RUN = 250


class SweepConfig(StrictSection):
    search_space: dict[str, ParamSpace] = Field(default_factory=dict)
    num_samples: int = Field(4, ge=1, description="configs to try")
    metric: str = Field("accuracy", description="dev metric to optimise (seed mean)")
    mode: Literal["max", "min"] = "max"
    searcher: Literal["optuna", "random", "grid"] = "optuna"
    searcher_seed: int = 0
    scheduler: Literal["none", "asha", "median", "same_epoch_median"] = Field(
        "none", description="early stopping on the dev seed mean: Ray's ASHA or median stopping rule, or "
                            "same_epoch_median (each other trial compared at the epoch both reached; small sweeps)")
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(4.0, gt=1.0, description="asha: the fraction 1/x of trials promoted at a rung")
    min_samples_required: int = Field(
        2, ge=1, description="median, same_epoch_median: other trials needed before a trial can be stopped")
    max_concurrent_trials: int | None = Field(None, ge=1)
    trials_per_run: int | None = Field(
        DEFAULT_TRIALS_PER_RUN, ge=1,
        description="run the sweep as Tune runs of at most this many trials, one after the other, sharing one "
                    "Optuna study and one scheduler: the driver's memory stays bounded (Tune holds every trial of "
                    "a run until it ends); null: one run whatever the size; a grid is always one run")
    fresh_process_per_run: bool = Field(
        True, description="with trials_per_run, `ipt-ray sweep` goes on after each Tune run in a fresh process "
                          "(it replaces itself: same pid, same console) so that the driver's memory does not grow "
                          "with the sweep; false: every run in one process")
    name: str | None = Field(None, description="sweep name; default: derived from the YAML file name")
    few_shot: FewShotConfig | None = Field(
        None, description="run the few-shot protocol (cross validation per data seed, then train on K / "
                          "early-stop on K / test on validation) as one sweep; needs task.few_shot_k")

    @field_validator("search_space")
    @classmethod
    def _known_keys(cls, v: dict[str, ParamSpace]) -> dict[str, ParamSpace]:
        for key, dim in v.items():
            section, _, field = key.partition(".")
            model = _SECTIONS.get(section)
            if model is not None and not field:
                # A whole section as one dimension: each choice is a partial section (a method variant
                # such as {strategy: random_ipt, injection: prefix}); merged over the base config.
                if dim.type != "choice" or not all(isinstance(x, dict) for x in dim.values or []):
                    raise ValueError(f"search key {key!r} names a section: use type 'choice' with mappings as values")
                for value in dim.values or []:
                    unknown = [k for k in value if k not in section_fields(model)]
                    if unknown:
                        raise ValueError(f"search key {key!r}: unknown field(s) {unknown} "
                                         f"(allowed: {', '.join(section_fields(model))})")
                continue
            if model is None or field not in section_fields(model):
                allowed = ", ".join(f"{s}.<field>" for s in ("method", "train", "task"))
                raise ValueError(f"unknown search key {key!r} (allowed: {allowed}, fields of those sections, "
                                 "or a section name with mappings as choices)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _grid_is_one_run(cls, data: Any) -> Any:
        # The default split does not apply to a grid (one Tune run lays its points out); written out as null so
        # that a config dumped and read back keeps meaning the same.
        if isinstance(data, dict) and data.get("searcher") == "grid" and "trials_per_run" not in data:
            return {**data, "trials_per_run": None}
        return data

    @model_validator(mode="after")
    def _runs(self) -> SweepConfig:
        if self.trials_per_run is not None and self.searcher == "grid":
            raise ValueError("sweep.trials_per_run needs sweep.searcher 'optuna' or 'random', not 'grid': a grid's "
                             "points are laid out by one Tune run (remove sweep.trials_per_run)")
        return self

    @model_validator(mode="after")
    def _few_shot(self) -> SweepConfig:
        few = self.few_shot
        if few is None:
            return self
        if self.searcher != "grid":
            raise ValueError(f"sweep.few_shot needs sweep.searcher 'grid', not {self.searcher!r}: every compare "
                             "group must see the same hyper-parameter values on every data seed and fold, so that "
                             "cross validation compares them on equal terms (a sampler draws different ones)")
        if self.scheduler != "none":
            raise ValueError(f"sweep.few_shot needs sweep.scheduler 'none', not {self.scheduler!r}: trials of "
                             "different folds, data seeds and groups are not comparable, so none may stop another")
        for key in ("task.cv_fold", "task.data_seed"):
            if key in self.search_space:
                raise ValueError(f"sweep.search_space.{key}: sweep.few_shot runs the folds (task.cv_folds) and "
                                 "the data seeds (sweep.few_shot.data_seeds) itself; remove the key")
        for value in (self.search_space["task"].values or []) if "task" in self.search_space else []:
            if "cv_fold" in value or "data_seed" in value:
                raise ValueError("sweep.search_space.task: with sweep.few_shot a task choice may not set cv_fold "
                                 f"or data_seed (got {value}); the protocol sets them")
        unknown = [k for k in few.compare or [] if k not in self.search_space]
        if unknown:
            raise ValueError(f"sweep.few_shot.compare: {unknown} are not search keys "
                             f"(allowed: {', '.join(self.search_space) or 'none: the search space is empty'})")
        return self


class TrackingConfig(StrictSection):
    uri: str | None = Field(None, description="MLflow tracking URI; default MLFLOW_TRACKING_URI or a local store")
    experiment: str = "ipt-ray"
    register_model: str | None = Field(
        None, min_length=1, description="register the sweep's best config (its seeds' adapters, a pyfunc model) "
                                        "as a version of this MLflow registered model")


class ClusterConfig(StrictSection):
    address: str | None = Field(None, description="Ray address; default RAY_ADDRESS or a local Ray")
    num_workers: int = Field(0, ge=0, description="Ray Train workers per trial; 0 runs in the Tune trial")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(1.0, ge=0)
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs a trial reserves when num_workers is 0")
    share_idle_cpus: bool = Field(
        True, description="num_workers 0 on the sweep's own local Ray: a trial's torch threads also take the CPUs "
                          "no trial holds (checked every few seconds), so a trial left alone uses the machine")
    max_failures: int = Field(2, ge=0)
    health_check_interval_s: float = Field(
        0.25, gt=0, le=60,
        description="how often the Ray Train controller polls its workers when num_workers >= 1; starting "
                    "and ending a trial wait on these polls, and Ray's default of 2 s adds ~3 s per trial")


class ExperimentConfig(StrictSection):
    plugins: list[str] = Field(
        default_factory=list,
        description="modules (dotted names or .py files) imported before validation, in every process: "
                    "strategies registered outside ipt_ray")
    task: TaskConfig = Field(default_factory=TaskConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _import_plugins(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("plugins"), list):
            load_plugins(data["plugins"])  # before the method section is validated: it names their strategies
        return data

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if self.task.few_shot_k is None and self.task.cv_fold is not None:
            raise ValueError("task.cv_fold needs task.few_shot_k (cross validation is the few-shot protocol)")
        task_dim = self.sweep.search_space.get("task")
        if self.sweep.few_shot is not None and self.task.few_shot_k is None and not (
                task_dim is not None and all("few_shot_k" in v for v in task_dim.values or [])):
            raise ValueError("sweep.few_shot needs task.few_shot_k (K examples per class), in the task section "
                             "or in every choice of a searched task section")
        self._resolve_hard_prompt()
        return self

    def _resolve_hard_prompt(self) -> None:
        """A per-task ``method.hard_prompt`` mapping becomes this run's text, so trials and adapters see a string."""
        value = getattr(self.method, "hard_prompt", None)
        if not isinstance(value, dict):
            return
        text = hard_prompt_for(value, self.task.name)
        if text is None and "hard_prompt" in self.method.spec.option_fields():
            raise ValueError(f"method.hard_prompt has no text for task.name {self.task.name!r} "
                             f"(it has: {', '.join(map(repr, value))})")
        self.method.hard_prompt = text

    def with_overrides(self, overrides: dict[str, Any]) -> ExperimentConfig:
        """A validated copy with dotted keys (``method.prompt_length``) replaced."""
        data = self.model_dump()
        for key, value in overrides.items():
            set_dotted(data, key, value)
        return self.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ExperimentConfig:
        """Validate ``data``; a :class:`ConfigError` lists every problem with its field path."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(format_error(err, source, cls)) from None


_SECTIONS: dict[str, type[BaseModel]] = {
    "task": TaskConfig,
    "backbone": BackboneConfig,
    "method": MethodConfig,
    "train": TrainConfig,
}


