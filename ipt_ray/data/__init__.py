"""Task data: specs, readers of the original formats, hub loading, protocol (few-shot, CV), metrics, corpora."""

from ipt_ray.data.errors import DataError
from ipt_ray.data.specs import METRIC_NAMES, SPLITS, TASKS, PathLike, Source, TaskSpec, as_spec, get_task
from ipt_ray.data.readers import iter_jsonl
from ipt_ray.data.formats import Columns
from ipt_ray.data.loading import PACKAGE_DATA, load_split, load_task, vendored_dir
from ipt_ray.data.files import Part, hub_split, read_parts
from ipt_ray.data.custom import (CUSTOM_METRICS, custom_spec, custom_task, dataset_texts, default_template,
                                 task_metrics, task_spec)
from ipt_ray.data.protocol import (carve_dev, cv_folds, few_shot_split, load_splits, protocol_splits, stratified_split,
                                   subsample)
from ipt_ray.data.metrics import compute_metrics
from ipt_ray.data.corpora import KNOWLEDGE_CAT_LABELS, NEWSGROUPS_LABELS, load_20newsgroups, load_knowledge_cat
# Last: the category corpus reads through the names above.
from ipt_ray.data.categories import (CATEGORY_DESCRIPTIONS, PACKAGED_MANIFEST, VENDORED_KNOWLEDGE_CAT,
                                     WIKIPEDIA_CATEGORIES, Corpus, Manifest, PretrainError, build_corpus,
                                     load_manifest, load_source, resolve_path)

__all__ = [
    "DataError",
    "Source", "PathLike", "SPLITS", "METRIC_NAMES", "TaskSpec", "TASKS", "get_task", "as_spec",
    "iter_jsonl", "Columns",
    "PACKAGE_DATA", "vendored_dir", "load_split", "load_task",
    "Part", "hub_split", "read_parts",
    "CUSTOM_METRICS", "custom_spec", "custom_task", "dataset_texts", "default_template", "task_metrics", "task_spec",
    "few_shot_split", "cv_folds", "subsample", "stratified_split", "carve_dev", "protocol_splits", "load_splits",
    "compute_metrics",
    "NEWSGROUPS_LABELS", "KNOWLEDGE_CAT_LABELS", "load_20newsgroups", "load_knowledge_cat",
    "PACKAGED_MANIFEST", "VENDORED_KNOWLEDGE_CAT", "WIKIPEDIA_CATEGORIES", "CATEGORY_DESCRIPTIONS", "PretrainError",
    "Manifest", "load_manifest", "Corpus", "resolve_path", "load_source", "build_corpus",
]
