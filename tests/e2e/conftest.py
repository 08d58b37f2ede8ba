"""Every scenario under tests/e2e is end to end: marked slow (`make test-fast` skips them; CI runs them).

Scenarios that call a sweep in this process share one local Ray (``start_shared_ray``): a sweep joins a Ray
already initialised in its process (``connect_ray``), and starting one per scenario cost ~5-7 s of wall and
~10 s of CPU each. Scenarios marked ``no_shared_ray`` run without it: those that need a Ray of their own (workers that
read an environment variable the test sets, the product's private Ray itself) and those whose sweeps run only
in other processes (an idle Ray took 8.4% of a core here, taken from the scenario on a 2-core machine). A kill
test whose resumed driver runs here keeps it: starting a Ray costs more than it idles while the killed one runs.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store with its schema made: creating one runs MLflow's ~50 migrations
    (2-4 s on 2 cores), once per scenario otherwise. Unit tests still create theirs from nothing."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def _mlflow_db_made(migrated_mlflow_db, tmp_path):
    """Each scenario's ``tmp_path/mlflow.db`` (the store its sweeps name) starts as that empty store."""
    shutil.copyfile(migrated_mlflow_db, tmp_path / "mlflow.db")


def start_shared_ray() -> None:
    """The local Ray a sweep training in its trials would start (the product's ``connect_ray``: every CPU, a
    trial slot per CPU), unless one runs in this process already."""
    import ray

    from ipt_ray.config import ExperimentConfig
    from ipt_ray.sweep import connect_ray

    if not ray.is_initialized():
        connect_ray(ExperimentConfig.model_validate({"cluster": {"num_workers": 0}}))


def settle_shared_ray(timeout_s: float = 15.0) -> None:
    """After a scenario every CPU and slot must be free again; a Ray that stays busy is stopped, so that nothing
    a scenario left behind can hold resources the next one waits for."""
    import ray

    from ipt_ray.config import TRIAL_SLOT

    if not ray.is_initialized():
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        total, free = ray.cluster_resources(), ray.available_resources()
        if all(free.get(key, 0.0) >= total[key] for key in ("CPU", "GPU", TRIAL_SLOT) if key in total):
            return
        time.sleep(0.5)
    # Something still holds CPUs or slots after the sweep returned (on a user's cluster, a leak): say so in the
    # run's warnings, and give the next scenario a fresh Ray.
    warnings.warn(f"the shared Ray was not idle {timeout_s:.0f} s after the scenario (free {free} of {total}); "
                  "restarted", RuntimeWarning, stacklevel=1)
    stop_ray()


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def pytest_runtest_teardown(item, nextitem):
    # The shared Ray ends with the last e2e scenario: later tests start (or forbid) a Ray of their own.
    if nextitem is None or HERE not in Path(str(nextitem.fspath)).resolve().parents:
        stop_ray()


@pytest.fixture(autouse=True)
def _ray_for_the_scenario(request):
    if request.node.get_closest_marker("no_shared_ray"):
        stop_ray()
        yield
        stop_ray()  # whatever the scenario left initialised
        return
    start_shared_ray()
    yield
    settle_shared_ray()
