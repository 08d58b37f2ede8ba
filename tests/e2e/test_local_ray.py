"""A sweep's private Ray beside another Ray on the same host (a second sweep's, a `ray start` head)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import ray
from ray.util.state import get_actor

from ipt_ray.config import TRIAL_SLOT, ExperimentConfig
from ipt_ray.sweep import connect_ray, disconnect_ray

OTHER_RAY = ("import sys, ray\n"
             "ray.init(address='local', num_cpus=1, include_dashboard=False)\n"
             "print('up', flush=True)\n"
             "sys.stdin.read()\n"  # until the test closes our stdin
             "ray.shutdown()\n")


@ray.remote(num_cpus=0)
class Probe:
    def address(self) -> str | None:
        import os

        return os.environ.get("RAY_ADDRESS")

    def look_up(self, actor_id: str) -> str:
        # What Ray Train's placement-group cleaner does from inside the cluster: the State API by "auto".
        return get_actor(actor_id).state


@pytest.mark.no_shared_ray  # the sweep's own private Ray is what this checks
def test_a_sweeps_processes_find_their_own_ray_when_another_runs_on_the_host():
    other = subprocess.Popen([sys.executable, "-c", OTHER_RAY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "up"
        cfg = ExperimentConfig.model_validate({"cluster": {"num_workers": 0}})  # connect_ray reads only this
        handle = connect_ray(cfg)
        try:
            assert handle.started_local and handle.address.startswith("127.0.0.1:")
            assert ray.cluster_resources().get(TRIAL_SLOT, 0) >= 1
            probe = Probe.remote()
            assert ray.get(probe.look_up.remote(probe._actor_id.hex())) == "ALIVE"
            port = ray.get_runtime_context().gcs_address.rpartition(":")[2]
            assert ray.get(probe.address.remote()) == f"127.0.0.1:{port}"
        finally:
            disconnect_ray(handle)
    finally:
        other.stdin.close()
        other.wait(timeout=60)
