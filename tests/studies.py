"""Helpers for the study tests: generated data, the real CLI in a subprocess, MLflow reads.

Studies run the real `fsvae-study run` (local Ray with 2 CPUs, Optuna, a SQLite MLflow
store) on data generated in the test, with epochs cut to the bone.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from fsvae import demo_data

REPO = Path(__file__).resolve().parents[1]
# Fixed for every trial of a test study: one backbone epoch, a few VAE/classifier epochs.
FAST = ["--set", "image_size=16", "--set", "backbone_epochs=1", "--set", "vae_epochs=3",
        "--set", "classifier_epochs=2", "--set", "data_workers=1"]


def make_data(folder: Path) -> Path:
    demo_data.make(folder, per_class=20, image_size=32, seed=0)
    return folder


def env() -> dict:
    e = dict(os.environ)
    e.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
              "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    return e


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study.cli", *args], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def start_cli(*args: str, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "study.cli", *args], cwd=REPO, env=env(),
                            stdout=out, stderr=subprocess.STDOUT, text=True)


def tracking_uri(storage: Path) -> str:
    return f"sqlite:///{(storage / 'mlflow.db').resolve()}"


def runs(uri: str, experiment: str, deleted_too: bool = False):
    """All runs of an experiment as a DataFrame (params, metrics, tags columns)."""
    mlflow.set_tracking_uri(uri)
    view = ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY
    return mlflow.search_runs(experiment_names=[experiment], run_view_type=view)


def trial_runs(uri: str, experiment: str):
    df = runs(uri, experiment)
    return df[df["tags.fsvae.role"] == "trial"].reset_index(drop=True)


def client(uri: str) -> MlflowClient:
    return MlflowClient(uri)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
