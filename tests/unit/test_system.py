"""ipt_ray.system: a file replaced whole, environment variables for a block."""

from __future__ import annotations

import os

import pytest

from ipt_ray.system import environment, replace_whole, written_whole


def test_a_write_that_fails_midway_leaves_the_previous_file(tmp_path):
    path = tmp_path / "runs.json"
    replace_whole(path, b"first")
    with pytest.raises(RuntimeError):
        with written_whole(path) as tmp:
            tmp.write_bytes(b"half of the sec")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["runs.json"]
    replace_whole(path, b"second")
    assert path.read_bytes() == b"second" and [p.name for p in tmp_path.iterdir()] == ["runs.json"]


def test_environment_is_restored_to_what_was_there_or_nothing(monkeypatch):
    monkeypatch.setenv("IPT_SYSTEM_SET", "before")
    monkeypatch.delenv("IPT_SYSTEM_UNSET", raising=False)
    with pytest.raises(KeyError):
        with environment(IPT_SYSTEM_SET="during", IPT_SYSTEM_UNSET="during"):
            assert os.environ["IPT_SYSTEM_SET"] == os.environ["IPT_SYSTEM_UNSET"] == "during"
            raise KeyError("the block failed")
    assert os.environ["IPT_SYSTEM_SET"] == "before" and "IPT_SYSTEM_UNSET" not in os.environ
