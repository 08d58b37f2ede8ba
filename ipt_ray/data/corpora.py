"""Pretraining corpora with category labels (for the prompt generator): 20 Newsgroups and knowledge_cat.

Both load as ``text``, ``label`` (int) and ``label_name`` with the same features, so they concatenate.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ipt_ray.data.errors import DataError
from ipt_ray.data.readers import display_name, iter_archive, iter_jsonl, map_label, typed_field
from ipt_ray.data.specs import PathLike

__all__ = ["NEWSGROUPS_LABELS", "KNOWLEDGE_CAT_LABELS", "load_20newsgroups", "load_knowledge_cat"]

#: The 20 Newsgroups groups in scikit-learn's (alphabetical) label order.
NEWSGROUPS_LABELS: tuple[str, ...] = (
    "alt.atheism",
    "comp.graphics",
    "comp.os.ms-windows.misc",
    "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware",
    "comp.windows.x",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.electronics",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.politics.misc",
    "talk.religion.misc",
)

#: The IPT knowledge_cat files give no category names, only indices 0..12.
KNOWLEDGE_CAT_LABELS: tuple[str, ...] = tuple(f"category_{i}" for i in range(13))

_CORPUS_FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "label": datasets.Value("int64"),
        "label_name": datasets.Value("string"),
    }
)


def _corpus(texts: list[str], labels: list[int], names: tuple[str, ...]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"text": texts, "label": labels, "label_name": [names[i] for i in labels]},
        features=_CORPUS_FEATURES,
    )


def _strip_news_headers(post: str) -> str:
    # Headers end at the first blank line; they name the newsgroup (label leak).
    _, sep, body = post.partition("\n\n")
    return body if sep else post


def _find_newsgroups_source(data_dir: PathLike, split: str) -> Path:
    """The split's ``.tar.gz`` or extracted folder in ``data_dir`` or its ``20newsgroups`` sub-folder."""
    base = Path(data_dir)
    if (base / "20newsgroups").is_dir():
        base = base / "20newsgroups"
    names = (f"20news-bydate-{split}.tar.gz", f"20news-bydate-{split}")
    source = next((base / n for n in names if (base / n).exists()), None)
    if source is None:
        raise FileNotFoundError(
            f"20newsgroups: no {split} data in {base} (looked for: {', '.join(names)})"
        )
    return source


def _read_posts(source: Path, split: str, strip_headers: bool) -> list[tuple[int, int, str]]:
    """``(label, post id, text)`` of every post, sorted by group then id."""
    display = display_name(source)
    pattern = re.compile(rf"(?:^|/)20news-bydate-{split}/([^/]+)/(\d+)$")
    label_of = {g: i for i, g in enumerate(NEWSGROUPS_LABELS)}
    rows: list[tuple[int, int, str]] = []
    for name, m, data in iter_archive(source, pattern):
        group = m.group(1)
        if group not in label_of:
            raise DataError(display, f"unknown newsgroup '{group}'", member=name, field="label")
        text = data.decode("latin-1")
        rows.append(
            (label_of[group], int(m.group(2)), _strip_news_headers(text) if strip_headers else text)
        )
    if not rows:
        raise DataError(display, f"no posts found under 20news-bydate-{split}/<group>/")
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def load_20newsgroups(
    data_dir: PathLike, split: str, *, strip_headers: bool = True
) -> datasets.Dataset:
    """20 Newsgroups "bydate" posts with the group as label.

    Reads ``20news-bydate-{split}.tar.gz`` (or an extracted
    ``20news-bydate-{split}/`` folder) in ``data_dir`` or its ``20newsgroups``
    sub-folder. Posts are Latin-1. Headers are stripped by default because the
    ``Newsgroups:`` header gives the label away.
    """
    if split not in ("train", "test"):
        raise ValueError(f"20newsgroups split must be 'train' or 'test', got {split!r}")
    rows = _read_posts(_find_newsgroups_source(data_dir, split), split, strip_headers)
    return _corpus([r[2] for r in rows], [r[0] for r in rows], NEWSGROUPS_LABELS)


def load_knowledge_cat(path: PathLike) -> datasets.Dataset:
    """IPT's ``knowledge_cat`` jsonl (``text``, ``idx``, ``label`` 0..12)."""
    path = Path(path)
    display = display_name(path)
    mapping = {i: i for i in range(len(KNOWLEDGE_CAT_LABELS))}
    texts: list[str] = []
    labels: list[int] = []
    for lineno, obj in iter_jsonl(path):
        texts.append(typed_field(obj, "text", str, display, lineno))
        label = typed_field(obj, "label", object, display, lineno)
        labels.append(map_label(label, mapping, display, lineno))
    return _corpus(texts, labels, KNOWLEDGE_CAT_LABELS)
