"""The category corpus: the manifest of categories and the texts of every source, labelled by category.

:func:`load_manifest` reads ``ipt_ray/data/categories.yaml``: the 13 category names (their order fixes
the class ids) and, per source dataset, which category each of its labels belongs to.
:func:`build_corpus` loads the configured sources (``knowledge_cat`` jsonl, 20 Newsgroups, benchmark
tasks), maps every row's label to a category id through the manifest and subsamples (``max_rows``).
Category pretraining trains on the corpus; ``ipt-ray interpret`` projects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

# The package's readers, looked up when called: this module is part of the package, which may import
# it before or after them.
from ipt_ray import data as readers
from ipt_ray.config import DATASET_SPLITS, PretrainConfig, PretrainSource

__all__ = [
    "PACKAGED_MANIFEST", "VENDORED_KNOWLEDGE_CAT", "WIKIPEDIA_CATEGORIES", "CATEGORY_DESCRIPTIONS", "PretrainError",
    "Manifest", "load_manifest", "Corpus", "resolve_path", "load_source", "build_corpus",
]

_DATA = Path(__file__).resolve().parent  # ipt_ray/data: the vendored files
PACKAGED_MANIFEST = _DATA / "categories.yaml"
VENDORED_KNOWLEDGE_CAT = _DATA / "knowledge_cat"

#: Wikipedia's top-level content categories (Wikipedia:Contents/Categories), in the portal's order.
WIKIPEDIA_CATEGORIES: tuple[str, ...] = (
    "General reference",
    "Culture and the arts",
    "Geography and places",
    "Health and fitness",
    "History and events",
    "Human activities",
    "Mathematics and logic",
    "Natural and physical sciences",
    "People and self",
    "Philosophy and thinking",
    "Religion and belief systems",
    "Society and social sciences",
    "Technology and applied sciences",
)

#: Short descriptions of the categories (their portal sub-topics), for label-name inference.
CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "General reference": "reference works, encyclopedias, dictionaries, almanacs, directories, research, information",
    "Culture and the arts": "literature, novels, poetry, film, music, theatre, visual and performing arts, entertainment",
    "Geography and places": "countries, regions, cities, continents, population, landforms, climate, places of the world",
    "Health and fitness": "medicine, diseases, patients, treatment, public health, nutrition, exercise",
    "History and events": "history, historical periods, wars, past and current events, news",
    "Human activities": "work, business, industry, trade, agriculture, sports, recreation, hobbies, games",
    "Mathematics and logic": "mathematics, arithmetic, algebra, geometry, equations, numbers, logic",
    "Natural and physical sciences": "physics, chemistry, biology, earth sciences, astronomy, nature",
    "People and self": "people, persons, personal life, relationships, behaviour, emotions, the self",
    "Philosophy and thinking": "philosophy, philosophers, thought, reasoning, knowledge, ethics, metaphysics",
    "Religion and belief systems": "religion, God, scripture, faith, worship, theology, beliefs",
    "Society and social sciences": "society, politics, government, law, economics, finance, sociology",
    "Technology and applied sciences": "technology, engineering, computing, electronics, energy, transport",
}

_SPLIT_FILES = {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}


class PretrainError(ValueError):
    """A problem with the pretraining inputs (manifest, sources), phrased for the user."""


# ---------------------------------------------------------------- manifest


@dataclass
class Manifest:
    """Category names (position = class id) and, per dataset, label -> category name."""

    path: Path
    categories: list[str]
    datasets: dict[str, dict[str, Any]]  # key -> {"kind": ..., "labels": {label: category name}}

    def category_id(self, dataset: str, label: Any) -> int:
        entry = self.entry(dataset)
        labels = entry["labels"]
        name = labels.get(str(label), labels.get("*"))
        if name is None:
            known = ", ".join(k for k in labels)
            raise PretrainError(f"{self.path}: dataset {dataset!r} has no category for label {label!r} "
                                f"(mapped: {known}); add it to the manifest")
        return self.categories.index(name)

    def entry(self, dataset: str) -> dict[str, Any]:
        if dataset not in self.datasets:
            raise PretrainError(f"{self.path}: no dataset {dataset!r} in the manifest "
                                f"(has: {', '.join(self.datasets)})")
        return self.datasets[dataset]

    def label_map(self, dataset: str) -> dict[str, str]:
        return dict(self.entry(dataset)["labels"])


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and check a category manifest (default: the packaged one)."""
    path = Path(path) if path is not None else PACKAGED_MANIFEST
    if not path.is_file():
        raise PretrainError(f"pretrain.manifest: no such file {str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PretrainError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list) or not isinstance(data.get("datasets"), dict):
        raise PretrainError(f"{path}: expected a mapping with 'categories' (a list) and 'datasets' (a mapping)")
    categories = [str(c) for c in data["categories"]]
    if len(set(categories)) != len(categories) or not categories:
        raise PretrainError(f"{path}: 'categories' must be a non-empty list of distinct names")
    datasets = {str(key): _manifest_entry(path, str(key), entry, categories) for key, entry in data["datasets"].items()}
    return Manifest(path=path, categories=categories, datasets=datasets)


def _manifest_entry(path: Path, key: str, entry: Any, categories: list[str]) -> dict[str, Any]:
    """One ``datasets.<key>`` of the manifest, its labels mapped to category names."""
    mapping = entry.get("labels", entry.get("files")) if isinstance(entry, dict) else None
    if not isinstance(mapping, dict):
        raise PretrainError(f"{path}: datasets.{key} needs a 'labels' mapping (or, kind dataset, 'files': "
                            "file name -> category)")
    labels: dict[str, str] = {}
    for label, value in mapping.items():
        name = value.get("category") if isinstance(value, dict) else value
        if name not in categories:
            raise PretrainError(f"{path}: datasets.{key}.labels.{label}: {name!r} is not one of the categories "
                                f"({', '.join(categories)})")
        labels[str(label)] = str(name)
    return {"kind": entry.get("kind"), "labels": labels, "raw": entry}


# ---------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """Texts with category ids; ``sources[i]`` names the manifest dataset row ``i`` came from."""

    texts: list[str]
    labels: np.ndarray  # [N] category ids
    sources: list[str]
    categories: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self, index: np.ndarray | None = None) -> dict[str, int]:
        labels = self.labels if index is None else self.labels[index]
        found = np.bincount(labels, minlength=len(self.categories))
        return {name: int(n) for name, n in zip(self.categories, found)}

    def subset(self, index: Sequence[int]) -> Corpus:
        index = list(index)
        return Corpus([self.texts[i] for i in index], self.labels[index], [self.sources[i] for i in index],
                      self.categories)


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """A user path: as given when it exists, else relative to the experiment YAML's folder."""
    p = Path(path).expanduser()
    if not p.exists() and not p.is_absolute() and base_dir is not None and (base_dir / p).exists():
        return base_dir / p
    return p


def load_source(source: PretrainSource, base_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """``(texts, raw labels as strings)`` of one source, all its requested splits."""
    if source.kind == "knowledge_cat":
        return _knowledge_cat_texts(source, base_dir)
    if source.kind == "20newsgroups":
        folder = resolve_path(str(source.data_dir), base_dir)
        texts, labels = [], []
        for split in (("train", "test") if source.split == "all" else (source.split,)):
            ds = readers.load_20newsgroups(folder, split)
            texts += ds["text"]
            labels += ds["label_name"]
        return texts, labels
    if source.kind == "dataset":
        return _dataset_texts(source)
    return _task_texts(source, base_dir)


def _dataset_texts(source: PretrainSource) -> tuple[list[str], list[str]]:
    """Described files (``dataset``; paths made absolute with the YAML): labels, or each row's file name."""
    assert source.dataset is not None
    given = [s for s in DATASET_SPLITS if getattr(source.dataset, s) is not None]
    if source.split != "all" and source.split not in given:
        raise PretrainError(f"dataset source {source.name!r}: split {source.split!r} is not given (has: "
                            f"{', '.join(given)})")
    return readers.dataset_texts(source.dataset, given if source.split == "all" else [source.split])


def _knowledge_cat_texts(source: PretrainSource, base_dir: Path | None) -> tuple[list[str], list[str]]:
    folder = resolve_path(source.data_dir, base_dir) if source.data_dir else VENDORED_KNOWLEDGE_CAT
    if not folder.is_dir():
        raise PretrainError(f"knowledge_cat source: data_dir {str(folder)!r} is not a directory")
    names = list(_SPLIT_FILES) if source.split == "all" else [source.split]
    files = [folder / _SPLIT_FILES[n] for n in names if (folder / _SPLIT_FILES[n]).is_file()]
    if not files:  # names holds just the split asked for, unless it is "all"
        raise PretrainError(f"knowledge_cat source: no {' / '.join(_SPLIT_FILES[n] for n in names)} in {folder}")
    texts, labels = [], []
    for path in files:
        ds = readers.load_knowledge_cat(path)
        texts += ds["text"]
        labels += [str(v) for v in ds["label"]]
    return texts, labels


def _task_texts(source: PretrainSource, base_dir: Path | None) -> tuple[list[str], list[str]]:
    """A benchmark task: its text fields joined, its label names."""
    spec = readers.get_task(str(source.name))
    splits = ("train", "validation") if source.split == "all" else (source.split,)
    data_dir = resolve_path(source.data_dir, base_dir) if source.data_dir else None
    loaded = readers.load_task(spec, data_dir=data_dir, splits=splits)
    texts, labels = [], []
    for split in splits:
        ds = loaded[split]
        columns = [ds[f] for f in spec.text_fields]
        texts += [" ".join(str(v).strip() for v in values) for values in zip(*columns)]
        labels += [spec.label_names[i] for i in ds["label"]]
    return texts, labels


def build_corpus(cfg: PretrainConfig, manifest: Manifest | None = None, base_dir: Path | None = None) -> Corpus:
    """All sources, labels mapped to category ids; blank texts dropped; ``max_rows`` drawn with ``cfg.seed``."""
    manifest = manifest or load_manifest(resolve_path(cfg.manifest, base_dir) if cfg.manifest else None)
    texts: list[str] = []
    labels: list[int] = []
    origin: list[str] = []
    for i, source in enumerate(cfg.sources):
        entry = manifest.entry(source.key)
        if entry.get("kind") not in (None, source.kind):
            raise PretrainError(f"pretrain.sources.{i}: manifest dataset {source.key!r} is of kind "
                                f"{entry['kind']!r}, not {source.kind!r}")
        raw_texts, raw_labels = load_source(source, base_dir)
        keep = [j for j, t in enumerate(raw_texts) if t.strip()]
        if source.max_rows is not None and len(keep) > source.max_rows:
            rng = np.random.default_rng([cfg.seed, i])
            keep = sorted(rng.choice(keep, size=source.max_rows, replace=False).tolist())
        for j in keep:
            texts.append(raw_texts[j])
            labels.append(manifest.category_id(source.key, raw_labels[j]))
            origin.append(source.key)
    if not texts:
        raise PretrainError("pretrain.sources gave no text")
    return Corpus(texts, np.asarray(labels, dtype=np.int64), origin, list(manifest.categories))
