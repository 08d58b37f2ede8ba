"""MLflow tracking, owned by the sweep driver: URI, client, sweep tracker, outage journal, read-back.

Imports no Ray (the pretraining tracks through this package): the Tune callback is
``ipt_ray.tracking.callback.MlflowTrackingCallback``, imported by whoever runs Tune.
"""

from ipt_ray.tracking.aggregate import aggregate_metrics, aggregate_tags
from ipt_ray.tracking.client import (
    HTTP_DEFAULTS,
    TrackingError,
    check_reachable,
    get_or_create_experiment,
    http_defaults,
    is_outage,
    log_metrics,
    log_params,
    mlflow_params,
    open_experiment,
    search_all,
    tag_filter,
)
from ipt_ray.tracking.journal import JOURNAL_FILE, JOURNAL_VERSION, RETRY_INTERVAL_S, Journal, read_journal
from ipt_ray.tracking.models import (ADAPTER_ARTIFACT, ADAPTER_TAG, MODEL_KEY_TAG, ModelLogging, adapter_digest,
                                     register_version)
from ipt_ray.tracking.pyfunc import MODEL_ARTIFACT, AdapterEnsembleModel, output_frame, predict_frame, save_model_folder
from ipt_ray.tracking.readback import (
    CHOSEN_TAG,
    SWEEP_FILE,
    find_sweep_dir,
    find_sweep_runs,
    log_report_artifacts,
    results_from_mlflow,
    sweep_context_from_mlflow,
)
from ipt_ray.tracking.sync import sync_sweep
from ipt_ray.tracking.tracker import TRIAL_END_STATUS, SweepTracker
from ipt_ray.tracking.trial_metrics import SHARED_METRICS
from ipt_ray.tracking.uri import resolve_tracking_uri

__all__ = [
    "aggregate_metrics", "aggregate_tags",
    "HTTP_DEFAULTS", "TrackingError", "check_reachable", "get_or_create_experiment", "http_defaults", "is_outage",
    "log_metrics", "log_params", "mlflow_params", "open_experiment", "search_all", "tag_filter",
    "JOURNAL_FILE", "JOURNAL_VERSION", "RETRY_INTERVAL_S", "Journal", "read_journal",
    "ADAPTER_ARTIFACT", "ADAPTER_TAG", "MODEL_KEY_TAG", "ModelLogging", "adapter_digest", "register_version",
    "MODEL_ARTIFACT", "AdapterEnsembleModel", "output_frame", "predict_frame", "save_model_folder",
    "CHOSEN_TAG", "SWEEP_FILE", "find_sweep_dir", "find_sweep_runs", "log_report_artifacts", "results_from_mlflow",
    "sweep_context_from_mlflow",
    "sync_sweep",
    "TRIAL_END_STATUS", "SweepTracker",
    "SHARED_METRICS",
    "resolve_tracking_uri",
]
