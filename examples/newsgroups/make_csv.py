"""Rebuild train.csv, dev.csv and test.csv of this example from the 20 Newsgroups "bydate" archives.

    python examples/newsgroups/make_csv.py ../shared/data/20newsgroups

Four groups, one label word each; train and dev are drawn from the bydate train archive, test from the
bydate test archive (seeded, so the files come out the same every time). Each row: the group's topic,
the post's Subject line and the start of its body (headers, quoted lines and attributions removed).
"""

from __future__ import annotations

import csv
import random
import re
import sys
import tarfile
from pathlib import Path

GROUPS = {"rec.sport.hockey": "sports", "sci.space": "space", "comp.graphics": "computers",
          "talk.politics.mideast": "politics"}
PER_GROUP = {"train": 40, "dev": 20, "test": 40}
BODY_CHARS = 600
HERE = Path(__file__).resolve().parent


def posts(archive: Path) -> dict[str, list[tuple[str, str]]]:
    """Group -> [(subject, body)] of every post of the four groups, in archive order."""
    found: dict[str, list[tuple[str, str]]] = {g: [] for g in GROUPS}
    with tarfile.open(archive) as tar:
        for member in tar:
            group = member.name.split("/")[1] if member.isfile() else None
            if group in found:
                text = tar.extractfile(member).read().decode("latin-1")
                subject, body = split_post(text)
                if subject and len(body) >= 40:
                    found[group].append((subject, body))
    return found


def split_post(text: str) -> tuple[str, str]:
    head, _, body = text.partition("\n\n")
    subject = next((line[8:].strip() for line in head.splitlines() if line.startswith("Subject:")), "")
    kept = [line for line in body.splitlines()
            if not line.lstrip().startswith((">", "|", ":")) and not re.search(r"writes:\s*$|wrote:\s*$", line)]
    body = " ".join(" ".join(kept).split())
    if len(body) > BODY_CHARS:
        body = body[:BODY_CHARS].rsplit(" ", 1)[0]
    return " ".join(subject.split()), body


def main(data_dir: str) -> None:
    root = Path(data_dir)
    rng = random.Random(0)
    train_pool = posts(root / "20news-bydate-train.tar.gz")
    test_pool = posts(root / "20news-bydate-test.tar.gz")
    splits: dict[str, list[tuple[str, str, str]]] = {name: [] for name in PER_GROUP}
    for group, topic in GROUPS.items():
        picked = rng.sample(train_pool[group], PER_GROUP["train"] + PER_GROUP["dev"])
        splits["train"] += [(topic, s, b) for s, b in picked[:PER_GROUP["train"]]]
        splits["dev"] += [(topic, s, b) for s, b in picked[PER_GROUP["train"]:]]
        splits["test"] += [(topic, s, b) for s, b in rng.sample(test_pool[group], PER_GROUP["test"])]
    for name, rows in splits.items():
        rng.shuffle(rows)
        with open(HERE / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["topic", "headline", "body"])
            writer.writerows(rows)
        print(f"{name}.csv: {len(rows)} rows")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(HERE.parents[2] / "shared" / "data" / "20newsgroups"))
