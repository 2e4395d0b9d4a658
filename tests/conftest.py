"""Shared fixtures: one generated dataset, one stage cache and three tiny trials per session.

Everything is sized for a 2-core CPU: 16 px crops, one backbone epoch, a few VAE and
classifier epochs. Tests that only read a dataset, a split or trial outputs share these.
"""
from __future__ import annotations

import os

# One thread: the tensors here are tiny, and on a busy 2-core runner two OpenMP threads
# contending with another process made a 1-second trial take 10-20 s (measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported anywhere

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fsvae import config as config_mod, data, demo_data
from fsvae.cache import StageCache
from fsvae.trial import run_trial

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO = Path(__file__).resolve().parents[1]

# A trial small enough for seconds on CPU: the `tiny` preset, shrunk further.
TINY = {
    **config_mod.PRESETS["tiny"],
    "image_size": 16,
    "backbone_epochs": 1,
    "vae_epochs": 3,
    "beta_warmup_epochs": 2,
    "classifier_epochs": 2,
    "sampling_factor": 4,
    "device": "cpu",
    "data_workers": 1,
}


def tiny_config(root: Path | str, **overrides) -> dict:
    """A run_trial config on `root` with the TINY settings and `overrides`."""
    return {**TINY, "data": str(root), **overrides}


def quiet(_msg: str) -> None:
    """A log function that drops messages."""


def write_image(path: Path, seed: int, size: int = 12, fmt: str = "JPEG") -> Path:
    """A small random-noise image; different seeds give different bytes."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def make_folders(root: Path, counts: dict[str, dict[str, int]], seed: int = 0) -> Path:
    """<root>/<split>/<class>/<file>.jpg with counts[split][class] distinct images."""
    k = seed * 10_000
    for split, per_class in counts.items():
        for name, n in per_class.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                k += 1
                write_image(root / split / name / f"{name}_{i}.jpg", k)
    return root


def make_fs14(root: Path, lists: dict[str, list[str]], seed: int = 0) -> Path:
    """FashionStyle14 layout: each listed `dataset/<class>/<file>` written as an image."""
    k = seed * 10_000
    for split, rels in lists.items():
        for rel in rels:
            k += 1
            write_image(root / rel, k)
        (root / f"{split}.csv").write_text("".join(r + "\n" for r in rels), encoding="utf-8")
    return root


def cli(*args: str, cwd: Path | None = None, timeout: float = 180):
    """Runs `python -m study.cli ARGS` in a subprocess; returns the CompletedProcess."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "study.cli", *args], cwd=cwd or REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """demo_data with every defect, 20 images per class (12 train, 2 val, 6 test).

    The defect list names `dataset/../../outside_0001.jpg`, i.e. a file beside the root:
    it is written here as a valid image, so the reader's refusal is tested on a real file.
    """
    base = tmp_path_factory.mktemp("demo")
    root = base / "data"
    demo_data.make(root, per_class=20, image_size=32, seed=0, defects=True)
    write_image(base / "outside_0001.jpg", seed=999, size=32)
    return root


@pytest.fixture(scope="session")
def demo_loaded(demo_root) -> tuple[data.Dataset, list[str]]:
    """The demo dataset read once, with the lines the reader logged."""
    lines: list[str] = []
    ds = data.load(demo_root, load_size=18, workers=1, log=lines.append)
    return ds, lines


@pytest.fixture(scope="session")
def demo_ds(demo_loaded) -> data.Dataset:
    return demo_loaded[0]


@pytest.fixture(scope="session")
def stage_cache(tmp_path_factory) -> StageCache:
    """One stage cache for the session's trials, so backbones are shared where keys agree."""
    return StageCache(tmp_path_factory.mktemp("cache"), log=quiet)


@pytest.fixture(scope="session")
def trials(demo_root, stage_cache, tmp_path_factory) -> dict[str, tuple[dict, Path]]:
    """method -> (run_trial result, out_dir) for plain, oversample and vae."""
    out = {}
    for method in ("plain", "oversample", "vae"):
        folder = tmp_path_factory.mktemp(f"trial-{method}")
        result = run_trial(tiny_config(demo_root, method=method), out_dir=folder,
                           cache=stage_cache, log=quiet)
        out[method] = (result, folder)
    return out
