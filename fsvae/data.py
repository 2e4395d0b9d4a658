"""Reading FashionStyle14 (or a generic folder layout) into memory, defects reported.

Real copies are dirty. Every file a split lists (fsvae.layout reads the lists) is read
once, hashed and fully decoded; what is wrong with it is recorded as one row of the report
(file, split, problem, action):
  missing                  listed but not on disk                      skipped
  outside_root             the path leaves the dataset root            refused (never opened)
  not_image                not an image format PIL knows               skipped
  unreadable               an image that fails to decode (truncated)   skipped
  duplicate                byte-identical to an earlier file, same split  skipped
  duplicate_across_splits  byte-identical to a file in another split (leakage): the copy in
                           the lower split is skipped (test > val > train), so the test set
                           stays whole and no test image is trained on
  label_conflict           byte-identical files listed under different classes: every copy
                           is skipped (in any split), since which label is right is unknown
  odd_extension            no extension, or not .jpg, .jpeg or .png    kept
  non_ascii_name           non-ASCII characters in the path            kept
Usable images are kept as one uint8 tensor (N, 3, S, S): shorter side resized to S, centre
square crop. Decoding once and reusing the tensor across epochs and trials is what keeps a
GPU fed: decoding JPEGs every epoch is CPU-bound (docs/development.md#benchmarks).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:  # torch is imported where tensors are made: a study's driver, which
    import torch  # only checks the data's layout and fingerprint, never loads it (~1-2 s)

from fsvae.errors import DataError  # noqa: F401  (re-exported)

# The lists, read apart from the images; re-exported, as callers use fsvae.data.<name>.
from fsvae.layout import (  # noqa: F401
    SPLITS,
    Listed,
    content_fingerprint,
    detect_layout,
    fingerprint,
    inside,
    list_files,
)

SPLIT_PRIORITY = {"test": 0, "val": 1, "train": 2}  # which copy of a leaked duplicate stays
SKIPPED = (
    "missing",
    "outside_root",
    "not_image",
    "unreadable",
    "duplicate",
    "duplicate_across_splits",
    "label_conflict",
)
NOTED = ("odd_extension", "non_ascii_name")
USUAL_EXTENSIONS = (".jpg", ".jpeg", ".png")  # real copies mix these: not worth a report row
Image.MAX_IMAGE_PIXELS = 200_000_000  # larger is a decompression bomb: reported unreadable


@dataclass
class Dataset:
    root: str
    layout: str
    classes: list[str]
    paths: list[str]  # relative path of each usable image
    labels: torch.Tensor  # (N,) int64 class index
    split_of: list[str]  # "train" | "val" | "test" per image
    content_hash: str  # sha256 over (split, path, class, file sha256) of usable images
    report: dict = field(default_factory=dict)
    pixels: torch.Tensor | None = None  # (N, 3, S, S) uint8, or None until first use
    pixels_file: str | None = None  # images.npy of a cache entry, read on first use

    @property
    def images(self) -> torch.Tensor:
        """The decoded images; from a cache entry they are read only when needed (a trial
        whose backbone is cached never touches them: 2.5 GB at paper scale)."""
        if self.pixels is None:
            import torch

            if self.pixels_file is None:
                raise RuntimeError("the Dataset has neither pixels nor pixels_file")
            self.pixels = torch.from_numpy(np.load(self.pixels_file))
        return self.pixels

    def indices(self, split: str) -> torch.Tensor:
        import torch

        return torch.tensor(
            [i for i, s in enumerate(self.split_of) if s == split], dtype=torch.long
        )


def load(
    root: str | Path, load_size: int, layout: str = "auto", workers: int = 0, log=print
) -> Dataset:
    """Reads, checks, de-duplicates and decodes every listed image. See module docstring."""
    root = Path(root).resolve()
    layout = detect_layout(root) if layout == "auto" else layout
    listed = list_files(root, layout)
    problems: list[dict] = []

    def problem(item: Listed, kind: str, detail: str) -> None:
        action = "kept" if kind in NOTED else ("refused" if kind == "outside_root" else "skipped")
        problems.append(
            {
                "file": item.rel,
                "split": item.split,
                "problem": kind,
                "detail": detail,
                "action": action,
            }
        )

    candidates: list[tuple[Listed, Path]] = []
    noted: list[list[dict]] = []  # per candidate, its rows of NOTED kinds
    in_root: list[Listed] = []
    for item in listed:
        path = inside(root, item.rel)
        if path is None:
            problem(item, "outside_root", "path resolves outside the dataset root")
            continue
        in_root.append(item)
        if not item.label:
            problem(item, "missing", "path has no <class>/<file> form")
            continue
        if not path.is_file():
            problem(item, "missing", "listed but not on disk")
            continue
        first_row = len(problems)
        suffix = path.suffix.lower()
        if suffix not in USUAL_EXTENSIONS:
            problem(item, "odd_extension", f"extension {suffix or '(none)'!r}")
        if not item.rel.isascii():
            problem(item, "non_ascii_name", "non-ASCII characters in the path")
        candidates.append((item, path))
        noted.append(problems[first_row:])

    decoded = _decode_all([str(p) for _, p in candidates], load_size, workers)
    keep = [array is not None for array, _, _ in decoded]
    for (item, _), (array, error, _) in zip(candidates, decoded):
        if array is None:
            kind = "not_image" if error.startswith("not_image") else "unreadable"
            problem(item, kind, error.split(":", 1)[1].strip())
    items = [item for item, _ in candidates]
    for group in _copies(decoded, keep):
        for i, kind, detail in _copies_to_skip(group, items):
            keep[i] = False
            problem(items[i], kind, detail)

    for i, rows in enumerate(noted):
        if not keep[i]:  # e.g. a truncated .png: skipped, so its odd_extension row too
            for row in rows:
                row["action"] = "skipped"

    usable = [i for i in range(len(candidates)) if keep[i]]
    classes = sorted({candidates[i][0].label for i in usable})
    _check_not_empty([candidates[i][0] for i in usable], in_root)
    index = {c: k for k, c in enumerate(classes)}
    images = np.empty((len(usable), 3, load_size, load_size), dtype=np.uint8)
    content = hashlib.sha256()
    for k, i in enumerate(usable):
        item = candidates[i][0]
        images[k] = decoded[i][0]
        content.update(f"{item.split}\t{item.rel}\t{item.label}\t{decoded[i][2]}\n".encode())
    report = _report(root, layout, listed, [candidates[i][0] for i in usable], problems)
    _log_report(report, log)
    import torch

    return Dataset(
        root=str(root),
        layout=layout,
        classes=classes,
        paths=[candidates[i][0].rel for i in usable],
        labels=torch.tensor([index[candidates[i][0].label] for i in usable], dtype=torch.long),
        split_of=[candidates[i][0].split for i in usable],
        pixels=torch.from_numpy(images),
        content_hash=content.hexdigest(),
        report=report,
    )


def decode_image(data: bytes, size: int) -> np.ndarray:
    """Bytes -> (3, size, size) uint8: EXIF-rotated, RGB, shorter side = size, centre crop."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()  # a truncated file fails here, not at open
        img = ImageOps.exif_transpose(opened).convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def save(ds: Dataset, folder: Path) -> None:
    """Writes a Dataset as images.npy + meta.json (the data stage's cache entry)."""
    np.save(folder / "images.npy", ds.images.numpy())
    meta = {
        k: getattr(ds, k)
        for k in ("root", "layout", "classes", "paths", "split_of", "content_hash", "report")
    }
    meta["labels"] = ds.labels.tolist()
    (folder / "meta.json").write_text(json.dumps(meta))


def restore(folder: Path) -> Dataset:
    import torch

    meta = json.loads((folder / "meta.json").read_text())
    labels = torch.tensor(meta.pop("labels"), dtype=torch.long)
    # The pixels are read on first use; check now that the file is whole (header and size),
    # so that a damaged entry is found while the cache can still rebuild it.
    shape = np.load(folder / "images.npy", mmap_mode="r").shape
    if shape[0] != len(labels):
        raise ValueError(
            f"{folder / 'images.npy'} holds {shape[0]} images for {len(labels)} labels"
        )
    return Dataset(labels=labels, pixels_file=str(folder / "images.npy"), **meta)


def examples(report: dict, per_kind: int = 3) -> dict[str, dict]:
    """{problem kind: {"n": how many files, "first": the first `per_kind` of them, "action"}}:
    what a console can show of a report in a few lines."""
    out: dict[str, dict] = {}
    for row in report["problems"]:
        entry = out.setdefault(row["problem"], {"n": 0, "first": [], "action": row["action"]})
        entry["n"] += 1
        if len(entry["first"]) < per_kind:
            entry["first"].append(row["file"])
    return out


def summary_line(report: dict) -> str:
    counts = report["summary"]
    parts = [f"{n} {kind}" for kind, n in counts.items() if n]
    listed = sum(c["listed"] for c in report["splits"].values())
    usable = sum(c["usable"] for c in report["splits"].values())
    return f"{usable} usable of {listed} listed" + (f"; {', '.join(parts)}" if parts else "")


# -- internals ------------------------------------------------------------------------------


def _copies(decoded: list, keep: list[bool]) -> list[list[int]]:
    """Groups (two or more, in listing order) of decoded files with identical bytes."""
    by_hash: dict[str, list[int]] = {}
    for i, (_, _, digest) in enumerate(decoded):
        if keep[i]:
            by_hash.setdefault(digest, []).append(i)
    return [group for group in by_hash.values() if len(group) > 1]


def _copies_to_skip(group: list[int], items: list[Listed]) -> list[tuple[int, str, str]]:
    """(index, problem, detail) of each file of a group of identical copies that is skipped.

    Copies under different classes are a label conflict: all are skipped, in every split,
    since which label is right is unknown. Otherwise one copy stays, the first of the
    highest split (test > val > train), so that the test set stays whole and no test
    image is also trained on.
    """
    labels = sorted({items[i].label for i in group})
    if len(labels) > 1:
        names = ", ".join(repr(label) for label in labels[:-1]) + f" and {labels[-1]!r}"
        where = ", ".join(f"{items[i].rel} in {items[i].split}" for i in group)
        detail = f"identical bytes listed under classes {names} ({where}); every copy skipped"
        return [(i, "label_conflict", detail) for i in group]
    best = min(group, key=lambda i: (SPLIT_PRIORITY[items[i].split], i))
    skipped = []
    for i in group:
        if i == best:
            continue
        item, other = items[i], items[best]
        same = "same file listed again" if other.rel == item.rel else "identical bytes"
        if other.split == item.split:
            skipped.append((i, "duplicate", f"{same} as {other.rel}"))
        else:
            skipped.append(
                (
                    i,
                    "duplicate_across_splits",
                    f"{same} as {other.rel} in {other.split} (leakage); kept there",
                )
            )
    return skipped


def _decode_file(args: tuple[str, int]) -> tuple[np.ndarray | None, str, str | None]:
    path, size = args
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return None, f"unreadable: {e.strerror or e}", None
    digest = hashlib.sha256(data).hexdigest()
    try:
        return decode_image(data, size), "", digest
    except UnidentifiedImageError:
        return None, "not_image: not an image format PIL can read", digest
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return None, f"unreadable: {e}", digest


def _decode_all(paths: list[str], size: int, workers: int) -> list:
    if workers <= 0:
        workers = min(len(os.sched_getaffinity(0)), 16)
    jobs = [(p, size) for p in paths]
    if workers == 1 or len(jobs) < 256:
        return [_decode_file(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_decode_file, jobs, chunksize=64))


def _check_not_empty(usable: list[Listed], listed: list[Listed]) -> None:
    if not listed:
        raise DataError("the dataset lists no file inside its root")
    for split in SPLITS:
        if not any(u.split == split for u in usable):
            raise DataError(
                f"split {split!r} has no usable image (see the data report for what was skipped)"
            )
    all_classes = sorted({item.label for item in listed if item.label})
    for split in SPLITS:
        have = {u.label for u in usable if u.split == split}
        empty = [c for c in all_classes if c not in have]
        if empty:
            raise DataError(
                f"class(es) {', '.join(empty)} have no usable image in split "
                f"{split!r}: every class needs at least one in train, val and test"
            )


def _report(
    root: Path, layout: str, listed: list[Listed], usable: list[Listed], problems: list[dict]
) -> dict:
    summary = {kind: 0 for kind in SKIPPED + NOTED}
    for p in problems:
        summary[p["problem"]] += 1
    splits = {
        s: {
            "listed": sum(1 for x in listed if x.split == s),
            "usable": sum(1 for x in usable if x.split == s),
        }
        for s in SPLITS
    }
    return {
        "root": str(root),
        "layout": layout,
        "splits": splits,
        "summary": summary,
        "problems": problems,
    }


def _log_report(report: dict, log) -> None:
    log(f"data: {summary_line(report)}")
    for s, c in report["splits"].items():
        log(f"data:   {s}: {c['usable']} usable of {c['listed']} listed")
