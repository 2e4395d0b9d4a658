"""One trial's model as one torch module that needs nothing else: pixels in, style
probabilities out.

A trial writes the small part of its model to `<out>/model/` (`save_trial_part`):
model.json (the method, the class names, the sizes, what the classifier's inputs need,
the keys of its backbone and VAE cache entries) and, for the stage-3 methods, head.pt (the
min-max scaler's training range and the classifier of the best epoch). The heavy parts,
the fine-tuned backbone and the VAE, stay in the stage cache (fsvae.cache), shared by the
trials. `assemble` copies both into one folder that `load` turns into a PackagedModel:
  model.json, head.pt   the trial's part
  backbone.pt           the backbone cache entry's model.pt (fsvae.backbone.save)
  vae/                  the VAE cache entry's files (fsvae.vae.save), for vae and vae_mean
The module predicts as the trial evaluated its test images: centre crop, backbone, and
either the backbone's own head (plain, oversample) or min-max scaling, the classifier's
input rows (fsvae.classifier.Inputs: z = mu by default) and the classifier.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.nn as nn

from fsvae.backbone import Backbone, build
from fsvae.classifier import Head, Inputs
from fsvae.config import BACKBONE_METHODS, VAE_METHODS
from fsvae.errors import ModelError  # noqa: F401  (re-exported)
from fsvae.transforms import eval_batch
from fsvae.vae import BetaVAE, MinMax
from fsvae.vae import restore as restore_vae

FORMAT = 1  # of model.json
INPUT_KEYS = ("latent_dim", "z_test", "seed", "noise_std")  # what Inputs reads of a config


class MissingEntry(ModelError):
    """A cache entry the model needs is not in the stage cache (removed, or never built)."""

    def __init__(self, stage: str, key: str, root: Path):
        self.stage, self.key, self.root = stage, key, root
        super().__init__(f"the {stage} entry {key} is not in the stage cache {root}")


class PackagedModel(nn.Module):
    """uint8 pixels (N, 3, load_size, load_size), decoded as fsvae.data decodes a dataset
    (shorter side resized to load_size, centre square crop) -> (N, len(classes)) class
    probabilities. `classes` are the class names in the model's output order."""

    low: torch.Tensor  # buffers: the min-max scaler's training range, with a head
    high: torch.Tensor

    def __init__(
        self,
        spec: dict,
        backbone: Backbone,
        vae: BetaVAE | None = None,
        head: Head | None = None,
        scaler: MinMax | None = None,
    ):
        super().__init__()
        self.spec = spec
        self.classes: list[str] = list(spec["classes"])
        self.method: str = spec["method"]
        self.load_size: int = spec["load_size"]
        self.image_size: int = spec["image_size"]
        self.backbone, self.vae, self.head = backbone, vae, head
        if scaler is not None:  # buffers, so that they move with the module
            self.register_buffer("low", scaler.low.clone())
            self.register_buffer("high", scaler.high.clone())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features, logits = self.backbone(eval_batch(pixels, self.image_size))
        if self.head is not None:
            x = MinMax(self.low, self.high)(features)
            logits = self.head(Inputs(self.method, self.vae, self.spec, None).eval_rows(x))
        return logits.softmax(1)


def save_trial_part(folder: Path, record: dict, head: Head | None, scaler: MinMax | None) -> None:
    """Writes a trial's part of its model to `folder`: model.json and, when the method has
    a stage-3 classifier, head.pt. `record` is run_trial's (config, classes, cache)."""
    cfg = record["config"]
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "format": FORMAT,
        "method": cfg["method"],
        "classes": record["classes"],
        "minority_classes": record["minority_classes"],
        "backbone": cfg["backbone"],
        "image_size": cfg["image_size"],
        "load_size": cfg["load_size"],
        **{k: cfg[k] for k in INPUT_KEYS},
        "cache": {
            s: record["cache"][s]["key"] for s in ("backbone", "vae") if s in record["cache"]
        },
    }
    (folder / "model.json").write_text(json.dumps(spec, indent=1, ensure_ascii=False))
    if head is not None:
        if scaler is None:
            raise ValueError("a stage-3 head is saved with its min-max scaler")
        torch.save({"scaler": scaler.state(), "head": head.state_dict()}, folder / "head.pt")


def assemble(part: Path, cache_root: Path, dest: Path) -> PackagedModel:
    """A trial's part (`<out>/model/`) and its cache entries under `cache_root`, copied
    into `dest` (which must not exist), loaded. MissingEntry when an entry is not there."""
    spec = read_spec(part)
    entries = {"backbone": spec["cache"]["backbone"]}
    if spec["method"] in VAE_METHODS:
        entries["vae"] = spec["cache"]["vae"]
    for stage, key in entries.items():
        if not (cache_root / stage / key).is_dir():
            raise MissingEntry(stage, key, cache_root)
    shutil.copytree(part, dest)
    shutil.copyfile(
        cache_root / "backbone" / entries["backbone"] / "model.pt", dest / "backbone.pt"
    )
    if "vae" in entries:
        (dest / "vae").mkdir()
        for name in ("vae.pt", "history.json"):
            shutil.copyfile(cache_root / "vae" / entries["vae"] / name, dest / "vae" / name)
    return load(dest)


def load(folder: Path) -> PackagedModel:
    """The PackagedModel saved in `folder` (see the module docstring), on the CPU, in eval
    mode. Needs torch and torchvision, no stage cache and no network."""
    folder = Path(folder)
    spec = read_spec(folder)
    backbone = build(spec["backbone"], "none", len(spec["classes"]))
    backbone.load_state_dict(_tensors(folder / "backbone.pt"))
    vae = restore_vae(folder / "vae")["model"] if spec["method"] in VAE_METHODS else None
    head = scaler = None
    if spec["method"] not in BACKBONE_METHODS:
        part = _tensors(folder / "head.pt")
        head = Head(part["head"]["fc.weight"].shape[1], len(spec["classes"]))
        head.load_state_dict(part["head"])
        scaler = MinMax(**part["scaler"])
    return PackagedModel(spec, backbone, vae, head, scaler).eval()


def read_spec(folder: Path) -> dict:
    path = Path(folder) / "model.json"
    if not path.is_file():
        raise ModelError(
            f"no model.json in {folder}: expected a trial's model/ folder or an assembled model"
        )
    spec = json.loads(path.read_text())
    if spec.get("format") != FORMAT:
        raise ModelError(f"{path}: format {spec.get('format')!r}, expected {FORMAT}")
    return spec


def _tensors(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(f"{path} is missing: the model's folder is incomplete")
    return torch.load(path, map_location="cpu", weights_only=True)
