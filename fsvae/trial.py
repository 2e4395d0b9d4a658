"""One trial: data -> GFSL split -> backbone -> (beta-VAE) -> classifier -> metrics.

`run_trial(config)` is a plain function of one config dict (missing keys take the paper's
defaults). It knows nothing of Ray, Optuna or MLflow: they wrap it from outside through
`progress` (one dict per epoch of every stage, and one per cache lookup) and `cache`.

Each stage is one function here, in the paper's order: data_stage, split_stage,
backbone_stage, vae_stage, classifier_stage, metrics_stage. They only wire: the work is in
the module named after the stage, and every value a stage function passes to it is part of
that stage's cache key. The expensive stages go through the stage cache when one is given
(fsvae.cache): the backbone and its features depend only on the data, the split (n_f,
num_minority, seed), the backbone keys and, for `oversample`, sampling_factor; the VAE on
those plus the VAE keys. A key's code part hashes the modules that compute the stage and
made its inputs, and everything they import from fsvae (fsvae.cache.source_hash).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from fsvae import backbone, classifier, data, metrics, packaged, split, vae
from fsvae import config as config_mod
from fsvae.cache import StageCache, make_key, source_hash, source_modules
from fsvae.cost import Meter
from fsvae.errors import (
    BackboneError,
    TrialError,  # noqa: F401  (re-exported)
)

Progress = Callable[[dict], None]
SPLITS = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """Full, validated config with derived values filled in (load_size)."""
    cfg = config_mod.resolve(config)
    if cfg["data"] is None:
        raise TrialError("config key 'data' is required: the dataset root")
    if cfg["load_size"] is None:
        cfg["load_size"] = round(cfg["image_size"] * 256 / 224)
    if cfg["load_size"] < cfg["image_size"]:
        raise TrialError(
            f"load_size={cfg['load_size']} is smaller than image_size="
            f"{cfg['image_size']}; it must be at least as large"
        )
    return cfg


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrialError(
            f"device={name!r} but CUDA is not available here; use device=cpu or device=auto"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise TrialError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None


def run_trial(
    config: dict[str, Any],
    progress: Progress | None = None,
    out_dir: str | Path | None = None,
    cache: StageCache | None = None,
    log: Callable[[str], None] = print,
    data_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Runs one trial; returns {"metrics", "confusion", "minority_classes", "cache", ...}.
    `data_fingerprint`: fsvae.data.fingerprint of the dataset, when the caller has it (a
    study computes it once per session); else it is computed here, a `stat` of every listed
    file (about a second on FashionStyle14's ~13,000)."""
    cfg = resolve(config)
    device = pick_device(cfg["device"])
    stages = Stages(cache, progress, device)
    root, layout = locate(cfg)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:  # only once the inputs are known to be usable
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "config.json", cfg)
    ds = data_stage(cfg, root, layout, stages, log, data_fingerprint)
    sp = split_stage(cfg, ds, out, log)
    bb = backbone_stage(cfg, ds, sp, device, stages)
    history = list(bb["history"])
    head = scaler = None
    if cfg["method"] in config_mod.BACKBONE_METHODS:  # the fine-tuned head classifies
        preds = {s: bb["features"][s]["logits"].argmax(1) for s in EVAL_SPLITS}
    else:
        scaled = vae.scale_features(bb["features"])
        # The same fit on the same rows, kept for the trial's model (fsvae.packaged).
        scaler = vae.MinMax.fit(bb["features"]["train"]["x"])
        model = None
        if cfg["method"] in config_mod.VAE_METHODS:
            trained = vae_stage(cfg, scaled, device, stages)
            history += trained["history"]
            model = trained["model"].to(device)
        preds, cls_history, head = classifier_stage(
            cfg, scaled, sp, ds.classes, model, device, stages
        )
        history += cls_history
    results, confusion = metrics_stage(bb["features"], preds, sp, ds.classes)
    record = {
        "metrics": results,
        "confusion": confusion,
        "classes": ds.classes,
        "minority_classes": [ds.classes[c] for c in sp.minority],
        **stages.summary(),
        "history": history,
        "data_summary": ds.report["summary"],
        "config": cfg,
    }
    if out is not None:
        for name in ("metrics", "confusion", "cache", "timings", "history"):
            _write(out / f"{name}.json", record[name])
        packaged.save_trial_part(out / "model", record, head, scaler)
    return record


def prepare(
    config: dict[str, Any],
    cache: StageCache,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Builds into `cache` the stages that trials differing only in later-stage keys share
    (data and backbone with its features), so that those trials find them there instead of
    waiting on one of them to build them. Returns {"cache", "timings"} like run_trial."""
    cfg = resolve(config)
    device = pick_device(cfg["device"])
    stages = Stages(cache, progress, device)
    ds = data_stage(cfg, *locate(cfg), stages, log)
    backbone_stage(cfg, ds, split_stage(cfg, ds, None, log), device, stages)
    return stages.summary()


# -- the stages, in order ---------------------------------------------------------------------


def locate(cfg: dict[str, Any]) -> tuple[Path, str]:
    """The dataset root and its layout (an error naming the root if it is neither)."""
    root = Path(cfg["data"]).expanduser().resolve()
    return root, data.detect_layout(root) if cfg["layout"] == "auto" else cfg["layout"]


def data_stage(
    cfg: dict[str, Any],
    root: Path,
    layout: str,
    stages: Stages,
    log: Callable[[str], None],
    fingerprint: str | None = None,
) -> data.Dataset:
    """Every listed image read, checked and decoded once (fsvae.data)."""
    parts = {
        "fingerprint": fingerprint or data.fingerprint(root, layout),
        "load_size": cfg["load_size"],
        **_code(data),
    }
    ds = stages.cached(
        "data",
        parts,
        partial(data.load, root, cfg["load_size"], layout, cfg["data_workers"], log),
        data.save,
        data.restore,
    )
    if stages.info["data"]["hit"]:
        # The entry may come from an identical copy elsewhere (same lists, sizes, mtimes).
        ds.root = ds.report["root"] = str(root)
        log(f"data: {data.summary_line(ds.report)} (from cache)")
    stages.emit(
        {
            "stage": "data",
            "summary": ds.report["summary"],
            "splits": ds.report["splits"],
            "examples": data.examples(ds.report),
        }
    )
    return ds


def split_stage(
    cfg: dict[str, Any], ds: data.Dataset, out: Path | None, log: Callable[[str], None]
) -> split.Split:
    """The GFSL split (fsvae.split); its file lists go to out/split/."""
    sp = split.gfsl_split(ds, cfg["n_f"], cfg["num_minority"], cfg["seed"])
    log(
        f"split: minority classes {', '.join(ds.classes[c] for c in sp.minority)}; "
        f"train {len(sp.train)}, val {len(sp.val)}, test {len(sp.test)} images"
    )
    if out is not None:
        _write(out / "data_report.json", ds.report)
        split.save(ds, sp, out / "split")
    return sp


def backbone_stage(
    cfg: dict[str, Any], ds: data.Dataset, sp: split.Split, device: torch.device, stages: Stages
) -> dict:
    """Stage 1 (fsvae.backbone): {"features": split -> {"x", "y", "logits"}, "history"}.
    Its inputs are the decoded pixels and the split, so their code is in its key too."""
    oversample = cfg["sampling_factor"] if cfg["method"] == "oversample" else 1
    parts = {
        **config_mod.backbone_identity(cfg),
        "data": ds.content_hash,
        "weights_file": _file_id(cfg["backbone_weights"]),
        "precision": backbone.settings(cfg, device)["bf16"],
        **_code(data, split, backbone),
    }
    rows = {s: getattr(sp, s) for s in SPLITS}
    return stages.cached(
        "backbone",
        parts,
        partial(
            backbone.fit,
            ds.images,
            ds.labels,
            rows,
            sp.minority,
            ds.classes,
            cfg,
            oversample,
            device,
            stages.emit,
        ),
        backbone.save,
        backbone.restore,
    )


def vae_stage(
    cfg: dict[str, Any],
    scaled: dict[str, tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    stages: Stages,
) -> dict:
    """Stage 2 (fsvae.vae) on the scaled features: {"model", "history"}. Its key holds the
    backbone's, which stands for the features (and the code that made them)."""
    parts = {
        "backbone": stages.info["backbone"]["key"],
        "vae": config_mod.stage_keys(cfg, "vae"),
        "seed": cfg["seed"],
        **_code(vae),
    }
    return stages.cached(
        "vae",
        parts,
        partial(vae.fit, scaled["train"][0], scaled["val"][0], cfg, device, stages.emit),
        vae.save,
        vae.restore,
    )


def classifier_stage(
    cfg: dict[str, Any],
    scaled: dict[str, tuple[torch.Tensor, torch.Tensor]],
    sp: split.Split,
    classes: list[str],
    model: vae.BetaVAE | None,
    device: torch.device,
    stages: Stages,
) -> tuple[dict[str, torch.Tensor], list[dict], classifier.Head]:
    """Stage 3 (fsvae.classifier): val/test predictions, the epochs' history and the
    classifier of the best epoch. Seconds of work, so never cached."""
    return stages.timed(
        "classifier",
        partial(classifier.train, scaled, sp.minority, classes, cfg, model, device, stages.emit),
    )


def metrics_stage(
    features: dict[str, dict], preds: dict[str, torch.Tensor], sp: split.Split, classes: list[str]
) -> tuple[dict[str, float], dict[str, list]]:
    """val_* and test_* metrics (fsvae.metrics) and the two confusion matrices."""
    results, confusion = {}, {}
    for s in EVAL_SPLITS:
        m, cm = metrics.compute(features[s]["y"], preds[s], sp.minority, classes, prefix=f"{s}_")
        results.update(m)
        confusion[s] = cm
    return results, confusion


# -- running a stage --------------------------------------------------------------------------


class Stages:
    """A trial's stages as they run: through the cache when there is one, timed, and told to
    `progress` (one event per cache lookup; a cached stage's history replayed)."""

    def __init__(
        self,
        cache: StageCache | None,
        progress: Progress | None,
        device: torch.device | None = None,
    ):
        self.cache = cache
        self.emit: Progress = progress or (lambda event: None)
        self.info: dict[str, dict] = {}
        self.timings: dict[str, float] = {}
        self.start = time.perf_counter()
        self.meter = Meter(device or torch.device("cpu"))  # what the trial cost (fsvae/cost.py)

    def cached(
        self,
        name: str,
        parts: dict,
        compute: Callable[[], Any],
        save: Callable[[Any, Path], None],
        restore: Callable[[Path], Any],
    ) -> Any:
        t0 = time.perf_counter()

        def work():
            return self.meter.compute(compute)

        if self.cache is None:
            value, info = work(), {"key": make_key(parts), "hit": False, "waited_s": 0.0}
        else:
            value, info = self.cache.get_or_build(name, parts, work, save, restore)
        self.timings[name] = time.perf_counter() - t0
        self.info[name] = info
        self.emit(
            {
                "stage": "cache",
                "name": name,
                "key": info["key"],
                "hit": info["hit"],
                "waited_s": info["waited_s"],
                "repaired": info.get("repaired"),
            }
        )
        if info["hit"] and isinstance(value, dict):
            for row in value.get("history", ()):  # so that every trial's record has them
                self.emit({**row, "replayed": True})
        return value

    def timed(self, name: str, compute: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = self.meter.compute(compute)
        self.timings[name] = time.perf_counter() - t0
        return value

    def summary(self) -> dict[str, dict]:
        """{"cache": each stage's lookup, "timings": seconds per stage, total, waited,
        "cost": fsvae/cost.py's}."""
        total = time.perf_counter() - self.start
        waited = sum(i["waited_s"] for i in self.info.values())
        return {
            "cache": self.info,
            "timings": {**self.timings, "total": total, "waited": waited},
            "cost": self.meter.summary(),
        }


def _code(*modules: ModuleType) -> dict[str, Any]:
    """The code part of a stage's key: the hash of these fsvae modules and of everything
    they import from fsvae, and those modules' names (shown in the entry's entry.json)."""
    code, sources = _code_of(tuple(m.__name__.removeprefix("fsvae.") for m in modules))
    return {"code": code, "sources": list(sources)}


@cache
def _code_of(names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """_code, once per process: the code a process runs is what it imported when it
    started, so reading the files again for every trial could only disagree with it (and
    parsing the package's sources took ~0.17 s a trial)."""
    return source_hash(*names), tuple(sorted(source_modules(*names)))


def _file_id(weights: str) -> str | None:
    """sha256 of a local checkpoint, so that a changed file gives a new backbone key."""
    if weights in ("imagenet", "none"):
        return None
    if not Path(weights).is_file():  # the same error backbone.build gives, before it runs
        raise BackboneError(
            f"backbone_weights={weights!r}: no such file; expected "
            f"imagenet, none, or a path to a checkpoint (a state_dict)"
        )
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str, ensure_ascii=False))
