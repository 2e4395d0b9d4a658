"""One trial: data -> GFSL split -> backbone -> (beta-VAE) -> classifier -> metrics.

`run_trial(config)` is a plain function of one config dict (missing keys take the paper's
defaults). It knows nothing of Ray, Optuna or MLflow: they wrap it from outside through
`progress` (one dict per epoch of every stage, and one per cache lookup) and `cache`.

The expensive stages go through the stage cache when one is given (fsvae.cache): the
backbone and its features depend only on the data, the split (n_f, num_minority, seed), the
backbone keys and, for `oversample`, sampling_factor; the VAE on those plus the VAE keys.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from fsvae import backbone, classifier, config as config_mod, data, metrics, split, vae
from fsvae.cache import StageCache, code_version, make_key
from fsvae.errors import TrialError  # noqa: F401  (re-exported)

Progress = Callable[[dict], None]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrialError(f"device={name!r} but CUDA is not available here; use device=cpu "
                         f"or device=auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise TrialError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """Full, validated config with derived values filled in (load_size)."""
    cfg = config_mod.resolve(config)
    if cfg["data"] is None:
        raise TrialError("config key 'data' is required: the dataset root")
    if cfg["load_size"] is None:
        cfg["load_size"] = round(cfg["image_size"] * 256 / 224)
    if cfg["load_size"] < cfg["image_size"]:
        raise TrialError(f"load_size={cfg['load_size']} is smaller than image_size="
                         f"{cfg['image_size']}; it must be at least as large")
    return cfg


def prepare(config: dict[str, Any], cache: StageCache, progress: Progress | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Builds into `cache` the stages that trials differing only in later-stage keys share
    (data and backbone with its features), so that those trials find them there instead of
    waiting on one of them to build them. Returns {"cache", "timings"} like run_trial."""
    return run_trial(config, progress=progress, cache=cache, log=log, _shared_only=True)


def run_trial(config: dict[str, Any], progress: Progress | None = None,
              out_dir: str | Path | None = None, cache: StageCache | None = None,
              log: Callable[[str], None] = print, *, _shared_only: bool = False
              ) -> dict[str, Any]:
    """Runs one trial; returns {"metrics", "confusion", "minority_classes", "cache", ...}."""
    t_start = time.perf_counter()
    cfg = resolve(config)
    emit = progress or (lambda event: None)
    device = pick_device(cfg["device"])
    root = Path(cfg["data"]).expanduser().resolve()
    layout = data.detect_layout(root) if cfg["layout"] == "auto" else cfg["layout"]
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:  # only once the inputs are known to be usable
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "config.json", cfg)
    torch.manual_seed(cfg["seed"])
    cache_info: dict[str, dict] = {}
    timings: dict[str, float] = {}

    def stage(name: str, parts: dict, compute: Callable[[], Any], save, restore) -> Any:
        t0 = time.perf_counter()
        if cache is None:
            value = compute()
            info = {"key": make_key(parts), "hit": False, "waited_s": 0.0}
        else:
            value, info = cache.get_or_build(name, parts, compute, save, restore)
        timings[name] = time.perf_counter() - t0
        cache_info[name] = info
        emit({"stage": "cache", "name": name, "key": info["key"], "hit": info["hit"],
              "waited_s": info["waited_s"], "repaired": info.get("repaired")})
        return value

    # -- data -----------------------------------------------------------------------------
    ds = stage("data", {"fingerprint": data.fingerprint(root, layout),
                        "load_size": cfg["load_size"], "code": code_version("data")},
               lambda: data.load(root, cfg["load_size"], layout, cfg["data_workers"], log),
               data.save, data.restore)
    if cache_info["data"]["hit"]:
        # The entry may come from an identical copy elsewhere (same lists, sizes, mtimes).
        ds.root = ds.report["root"] = str(root)
        log(f"data: {data.summary_line(ds.report)} (from cache)")
    emit({"stage": "data", "summary": ds.report["summary"], "splits": ds.report["splits"]})
    sp = split.gfsl_split(ds, cfg["n_f"], cfg["num_minority"], cfg["seed"])
    minority_names = [ds.classes[c] for c in sp.minority]
    log(f"split: minority classes {', '.join(minority_names)}; train {len(sp.train)}, "
        f"val {len(sp.val)}, test {len(sp.test)} images")
    if out is not None:
        _write(out / "data_report.json", ds.report)
        split.save(ds, sp, out / "split")

    # -- stage 1: backbone ----------------------------------------------------------------
    method = cfg["method"]
    oversample = cfg["sampling_factor"] if method == "oversample" else 1
    bb_parts = {
        **config_mod.backbone_identity(cfg), "data": ds.content_hash,
        "weights_file": _file_id(cfg["backbone_weights"]),
        "precision": backbone.settings(cfg, device)["bf16"],
        "code": code_version("backbone", "sampler", "transforms", "split", "metrics"),
    }

    def build_backbone() -> dict:
        model = backbone.build(cfg["backbone"], cfg["backbone_weights"], len(ds.classes))
        model, history = backbone.train(model, ds.images, ds.labels, sp.train, sp.val,
                                        sp.minority, ds.classes, cfg, oversample, device, emit)
        feats = {}
        for name in ("train", "val", "test"):
            idx = getattr(sp, name)
            x, logits = backbone.extract(model, ds.images, idx, cfg, device)
            feats[name] = {"x": x, "y": ds.labels[idx], "logits": logits}
        return {"state": {k: v.cpu() for k, v in model.state_dict().items()},
                "features": feats, "history": history}

    bb = stage("backbone", bb_parts, build_backbone, _save_backbone, _restore_backbone)
    if _shared_only:
        timings["total"] = time.perf_counter() - t_start
        timings["waited"] = sum(i["waited_s"] for i in cache_info.values())
        return {"cache": cache_info, "timings": timings}
    if cache_info["backbone"]["hit"]:
        for row in bb["history"]:  # replay the curves so every trial's record has them
            emit({**row, "replayed": True})
    history = list(bb["history"])
    feats = bb["features"]

    # -- stage 2 and 3, or the backbone's own head ----------------------------------------
    if method in config_mod.BACKBONE_METHODS:
        preds = {s: feats[s]["logits"].argmax(1) for s in ("val", "test")}
    else:
        scaler = vae.MinMax.fit(feats["train"]["x"])
        scaled = {s: (scaler(feats[s]["x"]), feats[s]["y"]) for s in ("train", "val", "test")}
        model = None
        if method in config_mod.VAE_METHODS:
            vae_parts = {"backbone": cache_info["backbone"]["key"],
                         "vae": config_mod.stage_keys(cfg, "vae"), "seed": cfg["seed"],
                         "code": code_version("vae")}

            def build_vae() -> dict:
                m, h = vae.train(scaled["train"][0], scaled["val"][0], cfg, device, emit)
                return {"model": m, "history": h}

            def restore_vae(folder: Path) -> dict:
                d = torch.load(folder / "vae.pt", map_location="cpu", weights_only=True)
                m = vae.BetaVAE(**d["dims"])
                m.load_state_dict(d["state"])
                return {"model": m.to(device).eval(),
                        "history": json.loads((folder / "history.json").read_text())}

            trained = stage("vae", vae_parts, build_vae, _save_vae, restore_vae)
            if cache_info["vae"]["hit"]:
                for row in trained["history"]:
                    emit({**row, "replayed": True})
            history += trained["history"]
            model = trained["model"].to(device)
        t0 = time.perf_counter()
        preds, cls_history = classifier.train(scaled, sp.minority, ds.classes, cfg, model,
                                              device, emit)
        timings["classifier"] = time.perf_counter() - t0
        history += cls_history

    # -- metrics --------------------------------------------------------------------------
    results, confusion = {}, {}
    for s in ("val", "test"):
        m, cm = metrics.compute(feats[s]["y"], preds[s], sp.minority, ds.classes,
                                prefix=f"{s}_")
        results.update(m)
        confusion[s] = cm
    timings["total"] = time.perf_counter() - t_start
    timings["waited"] = sum(i["waited_s"] for i in cache_info.values())
    out_record = {"metrics": results, "confusion": confusion, "classes": ds.classes,
                  "minority_classes": minority_names, "cache": cache_info,
                  "timings": timings, "history": history,
                  "data_summary": ds.report["summary"], "config": cfg}
    if out is not None:
        for name in ("metrics", "confusion", "cache", "timings", "history"):
            _write(out / f"{name}.json", out_record[name])
    return out_record


def _file_id(weights: str) -> str | None:
    """sha256 of a local checkpoint, so that a changed file gives a new backbone key."""
    if weights in ("imagenet", "none"):
        return None
    if not Path(weights).is_file():  # the same error backbone.build gives, before it runs
        raise backbone.BackboneError(f"backbone_weights={weights!r}: no such file; expected "
                                     f"imagenet, none, or a path to a checkpoint (a state_dict)")
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save_backbone(bb: dict, folder: Path) -> None:
    torch.save(bb["state"], folder / "model.pt")
    torch.save(bb["features"], folder / "features.pt")
    (folder / "history.json").write_text(json.dumps(bb["history"]))


def _restore_backbone(folder: Path) -> dict:
    return {"state": None,  # weights stay on disk: later stages only need the features
            "features": torch.load(folder / "features.pt", weights_only=True),
            "history": json.loads((folder / "history.json").read_text())}


def _save_vae(v: dict, folder: Path) -> None:
    m = v["model"]
    dims = {"input_dim": m.decoder[-1].out_features, "latent_dim": m.mu.out_features,
            "enc_hidden": m.mu.in_features, "dec_hidden": m.decoder[0].out_features}
    torch.save({"dims": dims, "state": {k: t.cpu() for k, t in m.state_dict().items()}},
               folder / "vae.pt")
    (folder / "history.json").write_text(json.dumps(v["history"]))


def _write(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str, ensure_ascii=False))
