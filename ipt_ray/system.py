"""What every stage may use of the operating system: a file replaced whole, environment variables for a block.

The lowest layer of the package (import-linter's contract in ``pyproject.toml``): it imports nothing of ipt_ray.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed onto ``path`` when the block ends
    without an error (removed when it raises). A process killed mid-write leaves the previous file (or none),
    never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def replace_whole(path: str | Path, data: bytes) -> None:
    """``path`` becomes ``data`` through a rename (:func:`written_whole`)."""
    with written_whole(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for a block, then restore what was there (or nothing)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
