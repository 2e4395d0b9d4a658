"""What a dataset lists, split by split, read from either layout without opening an image.

Two layouts:
  fashionstyle14: <root>/dataset/<style>/<file> with train.csv, val.csv, test.csv beside
                  `dataset/`, one relative path per line, no header. Class = <style>.
  folders:        <root>/<split>/<class>/<file> for split in train, val, test.

The lists alone (with each file's size, and its time for `fingerprint`) identify a
dataset: what a study's driver checks, which never decodes the images (fsvae.data does).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from fsvae.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class Listed:
    """One file as a split lists it, before it is read."""

    split: str
    rel: str  # path relative to the root, as listed (posix separators)
    label: str


def detect_layout(root: Path) -> str:
    if not root.is_dir():
        raise DataError(f"dataset root {str(root)!r} is not a directory")
    if all((root / f"{s}.csv").is_file() for s in SPLITS):
        return "fashionstyle14"
    if all((root / s).is_dir() for s in SPLITS):
        return "folders"
    raise DataError(
        f"{str(root)!r} is neither layout: expected train.csv, val.csv, test.csv beside "
        f"dataset/<style>/<file> (FashionStyle14) or train/, val/, test/ holding "
        f"<class>/<file> (folders)"
    )


def list_files(root: Path, layout: str) -> list[Listed]:
    """What each split lists, in file order."""
    listed: list[Listed] = []
    if layout == "fashionstyle14":
        for split in SPLITS:
            text = (root / f"{split}.csv").read_text(encoding="utf-8-sig", errors="replace")
            for line in text.splitlines():
                rel = line.strip().replace("\\", "/")
                if not rel:
                    continue
                parts = [p for p in rel.split("/") if p not in ("", ".")]
                label = parts[-2] if len(parts) >= 2 else ""
                listed.append(Listed(split, rel, label))
    elif layout == "folders":
        for split in SPLITS:
            for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
                for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
                    rel = path.relative_to(root).as_posix()
                    listed.append(Listed(split, rel, class_dir.name))
    else:
        raise DataError(f"unknown layout {layout!r}; expected fashionstyle14 or folders")
    return listed


def fingerprint(root: str | Path, layout: str = "auto") -> str:
    """Cheap identity of a dataset (lists + each file's size and mtime), no file is read.

    Keys the decoded-data cache; a changed, added or removed file changes it.
    """
    root = Path(root).resolve()
    layout = detect_layout(root) if layout == "auto" else layout
    h = hashlib.sha256(f"{layout}\n".encode())
    if layout == "fashionstyle14":
        for split in SPLITS:
            h.update((root / f"{split}.csv").read_bytes())
    for item in list_files(root, layout):
        path = inside(root, item.rel)
        try:
            st = path.stat() if path is not None else None
        except OSError:
            st = None
        stamp = f"{st.st_size}:{st.st_mtime_ns}" if st else "absent"
        h.update(f"{item.split}\t{item.rel}\t{stamp}\n".encode())
    return h.hexdigest()


def content_fingerprint(root: str | Path, layout: str = "auto") -> str:
    """What a dataset holds, wherever it lies: its split lists and each listed file's size,
    without its root path or file times, so that a copy on another machine or mount point
    matches and an edited list or a replaced file does not. No file is read (two different
    images of one size in one place would match: the cheap check a resume can afford)."""
    root = Path(root).resolve()
    layout = detect_layout(root) if layout == "auto" else layout
    h = hashlib.sha256(f"{layout}\n".encode())
    for item in list_files(root, layout):
        path = inside(root, item.rel)
        try:
            size = str(path.stat().st_size) if path is not None else "absent"
        except OSError:
            size = "absent"
        h.update(f"{item.split}\t{item.rel}\t{item.label}\t{size}\n".encode())
    return h.hexdigest()


def inside(root: Path, rel: str) -> Path | None:
    """root/rel if it stays inside root (symlinks resolved), else None."""
    if os.path.isabs(rel) or rel.startswith("~"):
        return None
    path = (root / rel).resolve()
    try:
        path.relative_to(root)
    except ValueError:
        return None
    return path
