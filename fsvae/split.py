"""The GFSL split (generalized few-shot learning) of one seed (docs/trial.md#the-gfsl-split).

From a seed: `num_minority` classes become minority classes with `n_f` images in train and
min(n_f, available) in val; majority classes and the whole test set are untouched.

Choices are made by ranking with sha256(seed, name) rather than a PRNG stream, so they are
the same on every Python/NumPy version and independent of listing order, and they nest:
for one seed the minority classes do not depend on n_f, and the n_f=10 images contain the
n_f=5 ones. Comparisons across n_f therefore change one thing at a time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fsvae.data import Dataset
from fsvae.errors import SplitError  # noqa: F401  (re-exported)


@dataclass
class Split:
    train: torch.Tensor  # indices into the Dataset
    val: torch.Tensor
    test: torch.Tensor
    minority: list[int]  # class indices
    n_f: int
    num_minority: int
    seed: int

    def is_minority(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.isin(labels, torch.tensor(self.minority, dtype=labels.dtype))


def _rank(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}\x00{name}".encode()).hexdigest()


def gfsl_split(ds: Dataset, n_f: int, num_minority: int, seed: int) -> Split:
    num_classes = len(ds.classes)
    if not 1 <= num_minority < num_classes:
        raise SplitError(
            f"num_minority={num_minority}: expected 1..{num_classes - 1} for a "
            f"dataset of {num_classes} classes (at least one majority class)"
        )
    ranked = sorted(range(num_classes), key=lambda c: _rank(seed, ds.classes[c]))
    minority = sorted(ranked[:num_minority])
    labels = ds.labels.tolist()
    keep: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for split in keep:
        members = [i for i, s in enumerate(ds.split_of) if s == split]
        for c in range(num_classes):
            rows = [i for i in members if labels[i] == c]
            if split != "test" and c in minority:
                rows = sorted(rows, key=lambda i: _rank(seed, ds.paths[i]))
                if split == "train" and len(rows) < n_f:
                    raise SplitError(
                        f"n_f={n_f}: minority class {ds.classes[c]!r} has only {len(rows)} "
                        f"usable train images (lower n_f or use another seed)"
                    )
                rows = rows[:n_f]
            keep[split].extend(rows)
    return Split(
        train=torch.tensor(sorted(keep["train"])),
        val=torch.tensor(sorted(keep["val"])),
        test=torch.tensor(sorted(keep["test"])),
        minority=minority,
        n_f=n_f,
        num_minority=num_minority,
        seed=seed,
    )


def counts(ds: Dataset, split: Split) -> dict:
    """Images per class in each split: the trial's Table 1."""
    out = {}
    for name in ("train", "val", "test"):
        idx = getattr(split, name)
        per = torch.bincount(ds.labels[idx], minlength=len(ds.classes)).tolist()
        out[name] = dict(zip(ds.classes, per))
    return out


def save(ds: Dataset, split: Split, folder: Path) -> None:
    """split.json (minority classes, counts) and one file list per split."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "val", "test"):
        lines = [f"{ds.paths[i]}\t{ds.classes[ds.labels[i]]}" for i in getattr(split, name)]
        (folder / f"{name}.txt").write_text(
            "".join(line + "\n" for line in lines), encoding="utf-8"
        )
    meta = {
        "n_f": split.n_f,
        "num_minority": split.num_minority,
        "seed": split.seed,
        "minority_classes": [ds.classes[c] for c in split.minority],
        "counts": counts(ds, split),
    }
    (folder / "split.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))


def to_dict(split: Split) -> dict:
    return {
        "train": split.train.tolist(),
        "val": split.val.tolist(),
        "test": split.test.tolist(),
        "minority": split.minority,
        "n_f": split.n_f,
        "num_minority": split.num_minority,
        "seed": split.seed,
    }


def from_dict(d: dict) -> Split:
    return Split(
        train=torch.tensor(d["train"], dtype=torch.long),
        val=torch.tensor(d["val"], dtype=torch.long),
        test=torch.tensor(d["test"], dtype=torch.long),
        minority=d["minority"],
        n_f=d["n_f"],
        num_minority=d["num_minority"],
        seed=d["seed"],
    )
