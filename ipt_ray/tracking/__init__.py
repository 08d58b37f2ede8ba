"""MLflow tracking, owned by the sweep driver: URI, client, sweep tracker, outage journal, Tune callback."""

from ipt_ray.tracking.tracker import (  # noqa: F401
    log,
    JOURNAL_FILE,
    JOURNAL_VERSION,
    SWEEP_META_FILE,
    HTTP_DEFAULTS,
    RETRY_INTERVAL_S,
    TRIAL_END_STATUS,
    SHARED_METRICS,
    TrackingError,
    resolve_tracking_uri,
    check_reachable,
    is_outage,
    get_or_create_experiment,
    search_all,
    SweepTracker,
    read_journal,
    MlflowTrackingCallback,
    find_sweep_runs,
    find_sweep_dir,
    sync_sweep,
)

__all__ = ['log', 'JOURNAL_FILE', 'JOURNAL_VERSION', 'SWEEP_META_FILE', 'HTTP_DEFAULTS', 'RETRY_INTERVAL_S', 'TRIAL_END_STATUS', 'SHARED_METRICS', 'TrackingError', 'resolve_tracking_uri', 'check_reachable', 'is_outage', 'get_or_create_experiment', 'search_all', 'SweepTracker', 'read_journal', 'MlflowTrackingCallback', 'find_sweep_runs', 'find_sweep_dir', 'sync_sweep']
