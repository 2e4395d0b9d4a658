"""A synthetic dataset in the FashionStyle14 layout, for tests and the demo.

Each image is a figure (a garment-like silhouette) on a noisy background. A class is a pair
(palette, pattern): 7 palettes x 6 patterns, 14 classes, each palette shared by two classes
and each pattern by two or three, so neither colour nor texture alone separates them; hue,
brightness, pattern frequency, figure position and size are jittered per image. It is
learnable by a small CNN in a few epochs, not by a single pixel statistic.
`defects=True` adds one file of every kind the reader must detect (see fsvae.data).
"""

from __future__ import annotations

import colorsys
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = (
    "conservative",
    "dressy",
    "ethnic",
    "fairy",
    "feminine",
    "gal",
    "girlish",
    "kireime-casual",
    "lolita",
    "mode",
    "natural",
    "retro",
    "rock",
    "street",
)
PALETTE_HUES = (0.0, 0.08, 0.17, 0.33, 0.5, 0.62, 0.8)  # garment hue per palette
# (palette, pattern) per class: every palette twice, patterns 0..5 two or three times.
CLASS_STYLE = (
    (0, 0),
    (0, 1),
    (1, 2),
    (1, 3),
    (2, 4),
    (2, 5),
    (3, 0),
    (3, 2),
    (4, 1),
    (4, 4),
    (5, 3),
    (5, 5),
    (6, 0),
    (6, 2),
)
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.1, "test": 0.3}


def make(
    root: str | Path,
    per_class: int = 40,
    image_size: int = 48,
    seed: int = 0,
    defects: bool = False,
) -> dict:
    """Writes the dataset under `root`; returns counts per split (and defects written)."""
    if per_class < 10:
        raise ValueError(
            f"per_class must be at least 10 (one val, test and train image per "
            f"class need a few), got {per_class}"
        )
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty; choose a new folder")
    rng = np.random.default_rng(seed)
    lists: dict[str, list[str]] = {s: [] for s in SPLIT_FRACTIONS}
    first: dict[str, Path] = {}
    for label, name in enumerate(CLASSES):
        folder = root / "dataset" / name
        folder.mkdir(parents=True, exist_ok=True)
        n_val = max(1, round(per_class * SPLIT_FRACTIONS["val"]))
        n_test = max(1, round(per_class * SPLIT_FRACTIONS["test"]))
        n_train = per_class - n_val - n_test
        splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
        for k, split in enumerate(splits):
            rel = f"dataset/{name}/{name}_{k:04d}.jpg"
            _draw(label, image_size, rng).save(root / rel, quality=int(rng.integers(80, 96)))
            lists[split].append(rel)
            first.setdefault(f"{split}:{name}", root / rel)
    written = []
    if defects:
        written = _add_defects(root, lists, first, image_size, rng)
    for split, rels in lists.items():
        (root / f"{split}.csv").write_text("".join(r + "\n" for r in rels), encoding="utf-8")
    counts = {s: len(v) for s, v in lists.items()}
    return {"root": str(root), "classes": len(CLASSES), "listed": counts, "defects": written}


def _draw(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    h, w = round(size * 4 / 3), size
    palette, pattern = CLASS_STYLE[label]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w, yy / h
    # Background: a random dull colour with noise.
    bg = rng.uniform(0.25, 0.8, size=3)
    img = np.broadcast_to(bg, (h, w, 3)).copy() + rng.normal(0, 0.06, (h, w, 3))
    # Figure: a trapezoid (wider at the hem) at a jittered place and scale.
    cx, top = rng.uniform(0.4, 0.6), rng.uniform(0.08, 0.2)
    bottom = rng.uniform(0.8, 0.95)
    half_top, half_bottom = rng.uniform(0.1, 0.18), rng.uniform(0.18, 0.32)
    t = np.clip((v - top) / (bottom - top), 0, 1)
    mask = (v > top) & (v < bottom) & (np.abs(u - cx) < half_top + t * (half_bottom - half_top))
    # Garment colour: the palette's hue, jittered; pattern second colour is its complement.
    hue = (PALETTE_HUES[palette] + rng.normal(0, 0.03)) % 1.0
    sat, val = rng.uniform(0.5, 0.9), rng.uniform(0.55, 0.95)
    c1 = np.array(colorsys.hsv_to_rgb(hue, sat, val))
    c2 = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, sat * 0.6, val * 0.6))
    freq = rng.uniform(5, 9)
    phase = rng.uniform(0, 2 * np.pi)
    if pattern == 0:  # solid
        on = np.zeros_like(u, dtype=bool)
    elif pattern == 1:  # horizontal stripes
        on = np.sin(2 * np.pi * freq * v + phase) > 0.3
    elif pattern == 2:  # vertical stripes
        on = np.sin(2 * np.pi * freq * u + phase) > 0.3
    elif pattern == 3:  # dots
        on = (np.sin(2 * np.pi * freq * u + phase) * np.sin(2 * np.pi * freq * v)) > 0.55
    elif pattern == 4:  # checks
        on = (np.sin(2 * np.pi * freq * u + phase) * np.sin(2 * np.pi * freq * v)) > 0
    else:  # diagonal stripes
        on = np.sin(2 * np.pi * freq * (u + v) + phase) > 0.3
    garment = np.where(on[..., None], c2, c1)
    img[mask] = garment[mask] + rng.normal(0, 0.04, (int(mask.sum()), 3))
    # A head: skin-toned disc above the figure, so the layout is person-like.
    head = (u - cx) ** 2 * (w / h) ** 2 + (v - top + 0.05) ** 2 < 0.0025
    img[head] = np.array([0.9, 0.75, 0.6]) + rng.normal(0, 0.03, (int(head.sum()), 3))
    img = np.clip(img * rng.uniform(0.85, 1.15), 0, 1)
    return Image.fromarray((img * 255).astype(np.uint8))


def _add_defects(
    root: Path, lists: dict, first: dict, size: int, rng: np.random.Generator
) -> list[dict]:
    """One file of each defect kind fsvae.data reports, added to the splits' lists."""
    a, b = CLASSES[0], CLASSES[1]
    written = []

    def add(split: str, rel: str, kind: str) -> None:
        lists[split].append(rel)
        written.append({"split": split, "file": rel, "expect": kind})

    add("train", f"dataset/{a}/missing_0001.jpg", "missing")
    trunc = root / "dataset" / a / "truncated_0001.jpg"
    data = first[f"train:{a}"].read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    add("train", trunc.relative_to(root).as_posix(), "unreadable")
    (root / "dataset" / a / "notes_0001.jpg").write_text("this is not an image\n")
    add("train", f"dataset/{a}/notes_0001.jpg", "not_image")
    _draw(0, size, rng).save(root / "dataset" / a / "noext_0001", format="JPEG")
    add("train", f"dataset/{a}/noext_0001", "odd_extension")
    _draw(1, size, rng).save(root / "dataset" / b / "ドレス_0001.jpg")
    add("train", f"dataset/{b}/ドレス_0001.jpg", "non_ascii_name")
    shutil.copyfile(first[f"train:{b}"], root / "dataset" / b / "copy_0001.jpg")
    add("train", f"dataset/{b}/copy_0001.jpg", "duplicate")
    leaked = root / "dataset" / b / "leak_0001.jpg"
    shutil.copyfile(first[f"test:{b}"], leaked)
    add("train", leaked.relative_to(root).as_posix(), "duplicate_across_splits")
    # One image under two classes: both copies are reported, both skipped.
    _draw(2, size, rng).save(root / "dataset" / a / "conflict_0001.jpg")
    shutil.copyfile(
        root / "dataset" / a / "conflict_0001.jpg", root / "dataset" / b / "conflict_0002.jpg"
    )
    add("train", f"dataset/{a}/conflict_0001.jpg", "label_conflict")
    add("train", f"dataset/{b}/conflict_0002.jpg", "label_conflict")
    add("train", "dataset/../../outside_0001.jpg", "outside_root")
    lists["train"].append("")  # an empty line: ignored, not a defect
    return written
