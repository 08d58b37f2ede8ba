"""Every scenario under tests/e2e is end to end: marked slow (`make test-fast` skips them; CI runs them)."""

from __future__ import annotations

import shutil
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
