"""Where each task's files live (local folder, vendored copy, hub) and the loaders that read them.

Every task loads into a :class:`datasets.DatasetDict` in the schema of
:meth:`~ipt_ray.data.specs.TaskSpec.features` whatever the source, so the rest of the pipeline never
has to know where the data came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets

from ipt_ray.data.formats import read_split, to_dataset
from ipt_ray.data.hub import load_hub
from ipt_ray.data.specs import SPLITS, TASKS, PathLike, Source, TaskSpec, as_spec

__all__ = ["PACKAGE_DATA", "vendored_dir", "load_split", "load_task"]

#: ``ipt_ray/data``: the vendored task files sit beside this package's modules.
PACKAGE_DATA = Path(__file__).resolve().parent

# Sub-directory of a benchmark root (e.g. ``shared/data``) holding each task.
_LOCAL_SUBDIR: dict[str, str] = {
    "boolq": "superglue/BoolQ",
    "cb": "superglue/CB",
    "rte": "superglue/RTE",
    "multirc": "superglue/MultiRC",
    "sst2": "glue/SST-2",
    "imdb": "imdb",
    "ag_news": "ag_news",
}


def _gz(*names: str) -> tuple[str, ...]:
    return tuple(n for name in names for n in (name, name + ".gz"))


# Candidate names per split, first found wins. BoolQ falls back to the FewGLUE
# 32-example train file because the full train split is often unavailable.
_SPLIT_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "boolq": {
        "train": _gz("train.jsonl", "fewglue_train32.jsonl"),
        "validation": _gz("val.jsonl"),
    },
    **{
        t: {"train": _gz("train.jsonl"), "validation": _gz("val.jsonl")}
        for t in ("cb", "rte", "multirc")
    },
    "sst2": {"train": _gz("train.tsv"), "validation": _gz("dev.tsv")},
    "imdb": {
        "train": ("aclImdb_train.tar.gz", "aclImdb/train", "aclImdb_v1.tar.gz"),
        "validation": ("aclImdb_test.tar.gz", "aclImdb/test", "aclImdb_v1.tar.gz"),
    },
    "ag_news": {"train": _gz("train.csv"), "validation": _gz("test.csv")},
}


def vendored_dir(name: str | TaskSpec) -> Path | None:
    """Directory of the copy of a task shipped with the package, if there is one."""
    spec = as_spec(name)
    sub = _LOCAL_SUBDIR.get(spec.name)
    if sub is None:
        return None
    path = PACKAGE_DATA / sub
    return path if path.is_dir() else None


def _task_dir(spec: TaskSpec, data_dir: Path) -> Path:
    """Accept either the task's own folder or a benchmark root above it."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{spec.name}: data directory {data_dir} does not exist")
    sub = _LOCAL_SUBDIR.get(spec.name)
    if sub is not None:
        for cand in (data_dir / sub, data_dir / Path(sub).name):
            if cand.is_dir():
                return cand
    return data_dir


def _find_split_file(spec: TaskSpec, task_dir: Path, split: str) -> Path:
    try:
        names = _SPLIT_FILES[spec.name][split]
    except KeyError:
        raise ValueError(
            f"{spec.name}: no local layout for split {split!r}"
            f" (known: {', '.join(_SPLIT_FILES.get(spec.name, {}))})"
        ) from None
    for n in names:
        if (task_dir / n).exists():
            return task_dir / n
    raise FileNotFoundError(
        f"{spec.name}: no {split} file in {task_dir} (looked for: {', '.join(names)})"
    )


def load_split(spec: str | TaskSpec, task_dir: PathLike, split: str) -> datasets.Dataset:
    """Read one split of a task from a local folder in its original format."""
    spec = as_spec(spec)
    root = _task_dir(spec, Path(task_dir))
    path = _find_split_file(spec, root, split)
    return to_dataset(spec, read_split(spec, path, split))


def _resolve_source(spec: TaskSpec, data_dir: PathLike | None, source: Source) -> Source:
    """``auto``: ``data_dir`` when given, else the vendored copy if there is one, else the hub."""
    if source != "auto":
        return source
    if data_dir is not None:
        return "local"
    return "vendored" if vendored_dir(spec) is not None else "hub"


def _file_root(spec: TaskSpec, data_dir: PathLike | None, source: Source) -> Path:
    """The folder a ``local`` or ``vendored`` source reads."""
    if source == "local":
        if data_dir is None:
            raise ValueError(f"{spec.name}: source='local' needs data_dir")
        return Path(data_dir)
    if source == "vendored":
        vdir = vendored_dir(spec)
        if vdir is None:
            shipped = [t for t in TASKS if vendored_dir(t) is not None]
            raise ValueError(
                f"{spec.name}: no vendored copy (vendored tasks: {', '.join(shipped)})"
            )
        return vdir
    raise ValueError(f"unknown source {source!r}; allowed: auto, local, hub, vendored")


def load_task(
    name_or_spec: str | TaskSpec,
    data_dir: PathLike | None = None,
    source: Source = "auto",
    *,
    splits: Sequence[str] = SPLITS,
) -> datasets.DatasetDict:
    """Load a task's ``train`` and ``validation`` splits in the common schema.

    ``source="auto"`` reads ``data_dir`` when given, else the vendored copy if
    the package ships one, else the hub. ``data_dir`` may be the task folder
    (``.../superglue/CB``) or a benchmark root above it (``.../data``).
    ``splits`` selects a subset, e.g. ``("validation",)`` when a train file is
    unavailable (AG News).
    """
    spec = as_spec(name_or_spec)
    source = _resolve_source(spec, data_dir, source)
    if source == "hub":
        return load_hub(spec, splits)
    root = _file_root(spec, data_dir, source)
    return datasets.DatasetDict({s: load_split(spec, root, s) for s in splits})
