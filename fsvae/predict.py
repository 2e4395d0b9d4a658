"""The style of every image file in a folder, by a packaged model (fsvae.packaged).

Each file is decoded as fsvae.data decodes a dataset's images (EXIF-rotated, RGB, shorter
side resized to the model's load_size, centre square crop), so the model sees what its
trial's images looked like. A file that does not decode is skipped and reported, never
fatal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fsvae import data
from fsvae.errors import DataError
from fsvae.packaged import PackagedModel

BATCH = 64  # images decoded and classified at once


def image_files(folder: str | Path) -> list[Path]:
    """Every file under `folder` (recursively), sorted by path; DataError if there is none."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"images folder {str(root)!r} is not a directory")
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=str)
    if not files:
        raise DataError(f"images folder {str(root)!r} holds no file")
    return files


def predict_files(
    model: PackagedModel, paths: list[Path]
) -> tuple[list[tuple[str, str, float]], list[tuple[str, str]]]:
    """([(path, style, probability)], [(path, why it was skipped)]), in the order of
    `paths`. The style is the most probable class name."""
    rows: list[tuple[str, str, float]] = []
    skipped: list[tuple[str, str]] = []
    for start in range(0, len(paths), BATCH):
        decoded, kept = [], []
        for path in paths[start : start + BATCH]:
            # fsvae.data's own reader: a file it would skip in a dataset is skipped here.
            pixels, problem, _ = data._decode_file((str(path), model.load_size))
            if pixels is None:
                skipped.append((str(path), problem))
            else:
                decoded.append(pixels)
                kept.append(str(path))
        if kept:
            rows += zip(kept, *_styles(model, np.stack(decoded)))
    return rows, skipped


@torch.inference_mode()
def _styles(model: PackagedModel, pixels: np.ndarray) -> tuple[list[str], list[float]]:
    device = next(model.parameters()).device
    best, index = model(torch.from_numpy(pixels).to(device)).max(1)
    return [model.classes[i] for i in index.tolist()], best.tolist()
