"""What a test trains and reads on, built in the test: small random images, datasets in
each layout, and trial configs cut to seconds on a 2-core CPU (16 px crops, one backbone
epoch, a few VAE and classifier epochs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fsvae import config as config_mod
from fsvae import demo_data

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
# A four-trial grid for the failure tests: plain and vae at two seeds (two backbones).
GRID4 = """
name: grid4
kind: grid
preset: tiny
objective: val_acc_h
grid: {n_f: [5], seed: [0, 1]}
variants: [{method: [plain, vae], sampling_factor: [4]}]
resources: {cpu: 1}
"""
# The same cut for every trial of a test study, as `fsvae-study run` flags.
FAST = [
    "--set",
    "image_size=16",
    "--set",
    "backbone_epochs=1",
    "--set",
    "vae_epochs=3",
    "--set",
    "classifier_epochs=2",
    "--set",
    "data_workers=1",
]


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


def make_data(folder: Path) -> Path:
    """Generated FashionStyle14-layout data for a test study: 20 images per class."""
    demo_data.make(folder, per_class=20, image_size=32, seed=0)
    return folder
