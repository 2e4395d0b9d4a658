"""Where a study's MLflow store lives by default. Kept apart from study.records so that
planning a study (and failing fast on a bad argument) does not import MLflow (~1 s)."""
from __future__ import annotations

from pathlib import Path


def default_tracking_uri(storage: Path) -> str:
    return f"sqlite:///{(Path(storage) / 'mlflow.db').resolve()}"


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri
