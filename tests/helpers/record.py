"""A study's MLflow record in a test: runs read back as a user reads them."""
from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient


def tracking_uri(storage: Path) -> str:
    return f"sqlite:///{(storage / 'mlflow.db').resolve()}"


def runs(uri: str, experiment: str, deleted_too: bool = False):
    """All runs of an experiment as a DataFrame (params, metrics, tags columns)."""
    mlflow.set_tracking_uri(uri)
    view = ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY
    return mlflow.search_runs(experiment_names=[experiment], run_view_type=view)


def trial_runs(uri: str, experiment: str):
    df = runs(uri, experiment)
    if df.empty:
        return df
    return df[df["tags.fsvae.role"] == "trial"].reset_index(drop=True)


def client(uri: str) -> MlflowClient:
    return MlflowClient(uri)
