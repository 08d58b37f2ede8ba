"""Task data: specs, readers of the original formats, hub loading, protocol (few-shot, CV), metrics, corpora."""

from ipt_ray.data.tasks import (  # noqa: F401
    Source,
    PathLike,
    SPLITS,
    DataError,
    TaskSpec,
    TASKS,
    get_task,
    vendored_dir,
    Columns,
    load_split,
    load_task,
    NEWSGROUPS_LABELS,
    KNOWLEDGE_CAT_LABELS,
    load_20newsgroups,
    load_knowledge_cat,
    few_shot_split,
    cv_folds,
    subsample,
    compute_metrics,
)

__all__ = ['Source', 'PathLike', 'SPLITS', 'DataError', 'TaskSpec', 'TASKS', 'get_task', 'vendored_dir', 'Columns', 'load_split', 'load_task', 'NEWSGROUPS_LABELS', 'KNOWLEDGE_CAT_LABELS', 'load_20newsgroups', 'load_knowledge_cat', 'few_shot_split', 'cv_folds', 'subsample', 'compute_metrics']
