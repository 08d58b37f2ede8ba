"""RequestFanout: a write's per-seed requests side by side over HTTP, one after the other elsewhere."""

from __future__ import annotations

import threading
import time

import pytest

from ipt_ray.tracking.fanout import RequestFanout


def test_over_http_the_requests_run_side_by_side_and_keep_their_order():
    fanout = RequestFanout("http://127.0.0.1:5000", max_parallel=4)
    all_in_flight = threading.Barrier(4, timeout=10)  # breaks unless the 4 calls are in flight together

    def call(item: int) -> tuple[int, str]:
        all_in_flight.wait()
        return item * 10, threading.current_thread().name

    results = fanout.each(call, [3, 1, 2, 0])
    assert [value for value, _ in results] == [30, 10, 20, 0]
    assert {name for _, name in results} != {threading.current_thread().name}
    fanout.close()


@pytest.mark.parametrize("uri", ["sqlite:////tmp/mlflow.db", "file:///tmp/mlruns"])
def test_a_local_store_gets_its_requests_in_the_calling_thread(uri):
    caller = threading.current_thread().name
    assert RequestFanout(uri).each(lambda item: (item, threading.current_thread().name), [1, 2]) == [
        (1, caller), (2, caller)]


def test_an_error_is_raised_only_after_every_request_has_ended():
    fanout = RequestFanout("https://mlflow.example", max_parallel=3)
    ended: list[int] = []

    def call(item: int) -> int:
        if item == 0:
            raise ConnectionError("lost")
        time.sleep(0.2)  # still in flight when item 0 fails: the caller must not see the error yet
        ended.append(item)
        return item

    with pytest.raises(ConnectionError, match="lost"):
        fanout.each(call, [0, 1, 2])
    assert sorted(ended) == [1, 2]
    fanout.close()
