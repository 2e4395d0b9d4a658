"""GPU benchmark (run by bench/gpu.sh on a lent H100/H200; `--small` checks it on a CPU).

Prints, measured in one run on one device, with that device's name:
  1. decode: images/s decoding JPEGs once into the uint8 tensor (fsvae.data.load)
  2. the synthetic ResNet-50 training ceiling: random tensors already on the GPU, same
     model, batch, bf16 autocast and channels_last as our trainer
  3. our backbone stage with real data: decoded uint8 images on the GPU, GPU random
     resized crop + flip, same settings; images/s and its ratio to (2)
  4. feature extraction images/s
  5. stage 2+3 seconds per trial: beta-VAE 100 epochs on 7,770 x 2,048 features, then the
     classifier 10 epochs with x50 minority sampling
  6. (with ray, optuna, mlflow importable) a VAE search study with fractional GPUs after
     its backbone is cached: trials per hour, and the implied time of 50 trials
Full numbers go to <out>/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fsvae import backbone, classifier, data, demo_data, vae  # noqa: E402
from fsvae import config as config_mod  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ceiling(cfg: dict, device: torch.device, steps: int, warmup: int) -> float:
    """Images/s of ResNet training on random, already-normalised GPU tensors."""
    model = backbone.build(cfg["backbone"], "none", 14)
    opts = backbone.settings(cfg, device)
    mem = torch.channels_last if opts["channels_last"] else torch.contiguous_format
    # torch's overloads of Module.to leave out (device, memory_format=), which it accepts
    model = model.to(device, memory_format=mem).train()  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    bs, size = cfg["backbone_batch_size"], cfg["image_size"]
    x = torch.randn(bs, 3, size, size, device=device).contiguous(memory_format=mem)
    y = torch.randint(0, 14, (bs,), device=device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=opts["bf16"]):
            _, logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return steps * bs / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "gpu-out"))
    p.add_argument("--small", action="store_true", help="tiny sizes: check the script on CPU")
    p.add_argument("--batch", type=int, default=128, help="stage 1 batch size")
    p.add_argument("--study-trials", type=int, default=24)
    p.add_argument(
        "--work",
        default=str(Path(os.environ.get("TMPDIR", "/tmp"), "fsvae-gpu-bench")),
        help="scratch folder (generated data, the study); emptied first",
    )
    a = p.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(a.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    res: dict = {"device": name, "torch": torch.__version__, "small": a.small}
    print(f"gpu bench on {name}, torch {torch.__version__}", flush=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    per_class, img_px, size = (12, 48, 32) if a.small else (290, 300, 224)
    cfg = config_mod.resolve(
        {
            "backbone_weights": "none",
            "image_size": size,
            "backbone_batch_size": a.batch if not a.small else 16,
            "backbone_epochs": 3 if not a.small else 2,
            "n_f": 5,
            "data_workers": 0,
        }
    )
    cfg["load_size"] = round(size * 256 / 224)

    t0 = time.perf_counter()
    demo_data.make(work / "data", per_class=per_class, image_size=img_px, seed=0)
    res["make_data_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = data.load(work / "data", cfg["load_size"], workers=0, log=lambda s: None)
    res["decode_s"] = time.perf_counter() - t0
    res["decode_images_per_s"] = len(ds.paths) / res["decode_s"]
    print(f"  decoded {len(ds.paths)} images in {res['decode_s']:.1f} s", flush=True)

    res["ceiling_images_per_s"] = ceiling(
        cfg, device, steps=5 if a.small else 60, warmup=2 if a.small else 15
    )
    print(f"  ceiling {res['ceiling_images_per_s']:.0f} img/s", flush=True)

    train_idx = ds.indices("train")
    val_idx = ds.indices("val")
    model = backbone.build(cfg["backbone"], "none", len(ds.classes))
    model, hist = backbone.train(
        model,
        ds.images,
        ds.labels,
        train_idx,
        val_idx,
        [0, 1],
        ds.classes,
        cfg,
        1,
        device,
        lambda e: None,
    )
    rates = [r["images_per_s"] for r in hist if "images_per_s" in r][1:]  # epoch 0: warm-up
    res["backbone_images_per_s"] = sum(rates) / len(rates)
    res["backbone_vs_ceiling"] = res["backbone_images_per_s"] / res["ceiling_images_per_s"]
    print(f"  backbone stage {res['backbone_images_per_s']:.0f} img/s", flush=True)
    all_idx = torch.arange(len(ds.paths))
    backbone.extract(model, ds.images, all_idx[:256], cfg, device)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    backbone.extract(model, ds.images, all_idx, cfg, device)
    sync(device)
    res["extract_images_per_s"] = len(all_idx) / (time.perf_counter() - t0)
    del model

    n, dim = (400, 256) if a.small else (7770, 2048)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 14, (n,), generator=g)
    centers = torch.randn(14, dim, generator=g)
    x = torch.relu(centers[labels] + torch.randn(n, dim, generator=g))
    scaled = vae.MinMax.fit(x)(x)
    vcfg = config_mod.resolve(
        {"vae_epochs": 5 if a.small else 100, "method": "vae", "sampling_factor": 50}
    )
    for bs in (vcfg["vae_batch_size"], 1024):
        c = {**vcfg, "vae_batch_size": bs}
        vae.train(scaled[:512], scaled[:64], {**c, "vae_epochs": 2}, device, lambda e: None)
        sync(device)
        t0 = time.perf_counter()
        model_v, _ = vae.train(scaled, scaled[:500], c, device, lambda e: None)
        sync(device)
        res[f"vae_s_batch{bs}"] = time.perf_counter() - t0
    feats = {
        "train": (scaled, labels),
        "val": (scaled[:500], labels[:500]),
        "test": (scaled[:2000], labels[:2000]),
    }
    t0 = time.perf_counter()
    classifier.train(
        feats, [0, 1, 2, 3, 4], [str(i) for i in range(14)], vcfg, model_v, device, lambda e: None
    )
    sync(device)
    res["classifier_s"] = time.perf_counter() - t0
    vae_key = f"vae_s_batch{vcfg['vae_batch_size']}"
    res["vae_plus_classifier_s"] = res[vae_key] + res["classifier_s"]
    print(f"  VAE + classifier {res['vae_plus_classifier_s']:.2f} s", flush=True)

    res.update(study(work, a, device, out / "study.log"))
    (out / "gpu.json").write_text(json.dumps(res, indent=1))
    print(f"\n| {name} | value |\n|---|---|")
    print(
        f"| JPEG decode once (fsvae.data.load, {os.cpu_count()} CPUs) | "
        f"{res['decode_images_per_s']:.0f} img/s |"
    )
    print(
        f"| synthetic ResNet-50 training ceiling (batch {cfg['backbone_batch_size']}, "
        f"{cfg['image_size']} px) | {res['ceiling_images_per_s']:.0f} img/s |"
    )
    print(
        f"| backbone stage with data loading and augmentation | "
        f"{res['backbone_images_per_s']:.0f} img/s = "
        f"{100 * res['backbone_vs_ceiling']:.0f}% of the ceiling |"
    )
    print(f"| feature extraction | {res['extract_images_per_s']:.0f} img/s |")
    print(
        f"| beta-VAE {vcfg['vae_epochs']} epochs, {n} x {dim}, batch "
        f"{vcfg['vae_batch_size']} / 1024 | {res[vae_key]:.2f} s / "
        f"{res['vae_s_batch1024']:.2f} s |"
    )
    print(f"| classifier 10 epochs, x50 minority rows | {res['classifier_s']:.2f} s |")
    if "trials_per_hour" in res:
        print(
            f"| search study after its backbone ({res['study_trials']} trials, "
            f"{res['study_gpu_fraction']} GPU each) | {res['trials_per_hour']:.0f} "
            f"trials/h; 50 trials in {res['minutes_for_50']:.1f} min |"
        )
    else:
        print(f"| search study | not run: {res.get('study_skipped')} |")
    print(f"\nfull numbers: {out / 'gpu.json'}")


def study(work: Path, a, device: torch.device, log: Path) -> dict:
    """A VAE search with fractional GPUs; trials/hour counted after the backbone is built."""
    try:
        import mlflow  # noqa: F401
        import optuna  # noqa: F401
        import ray  # noqa: F401
    except ImportError as e:
        return {"study_skipped": f"{e.name} is not installed (see bench/gpu.sh)"}
    gpu = 0.25 if device.type == "cuda" else 0
    n = 4 if a.small else a.study_trials
    storage = work / "studies"
    args = [
        sys.executable,
        "-m",
        "fsvae_study",
        "run",
        "--space",
        "search",
        "--data",
        str(work / "data"),
        "--storage",
        str(storage),
        "--name",
        "bench",
        "--num-samples",
        str(n),
        "--set",
        "n_f=5",
        "--set",
        "backbone_weights=none",
        "--set",
        f"backbone_epochs={2 if a.small else 10}",
        "--gpus-per-trial",
        str(gpu),
        "--cpus-per-trial",
        "1" if a.small else "2",
    ]
    if a.small:
        args += ["--preset", "tiny", "--set", "vae_epochs=5", "--set", "classifier_epochs=2"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        return {"study_skipped": f"study failed: {proc.stdout[-500:]} {proc.stderr[-1500:]}"}
    mlflow.set_tracking_uri(f"sqlite:///{storage / 'mlflow.db'}")
    df = mlflow.search_runs(experiment_names=["bench"])
    df = df[(df["tags.fsvae.role"] == "trial") & (df["status"] == "FINISHED")]
    after = df[df["tags.cache.backbone"] == "hit"]
    if after.empty:
        return {"study_skipped": "no trial reused the backbone"}
    builder_end = df[df["tags.cache.backbone"] == "miss"]["end_time"].max()
    span = (after["end_time"].max() - max(after["start_time"].min(), builder_end)).total_seconds()
    rate = len(after) / span * 3600 if span > 0 else float("nan")
    return {
        "study_wall_s": wall,
        "study_trials": len(df),
        "study_gpu_fraction": gpu,
        "trials_per_hour": rate,
        "minutes_for_50": 50 / rate * 60,
    }


if __name__ == "__main__":
    main()
