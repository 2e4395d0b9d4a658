"""A synthetic trial for the harness benchmarks (bench/overhead.py, bench/scale.py): a
benchmark hook, not a user feature. study/hooks/faults.py documents the switch
(FSVAE_BENCH_TRIAL); with it the trainable calls `synthetic_trial` instead of fsvae's
run_trial, and everything the harness does around a trial still happens: its MLflow run,
params, tags, dataset input, per-epoch metrics (from the progress events below), final
metrics and timings, figures, artifacts, the Tune report and the Optuna tell.

The result has run_trial's shape: metrics (val_* and test_*, class_acc/<class> included)
with the objective, confusion matrices, classes, minority_classes, cache (three hits),
timings, history, data_summary, config; its progress events are what a trial with a cached
backbone emits (cache lookups, the data splits, the backbone's replayed epochs, then every
VAE and classifier epoch and each stage's best epoch); its output folder holds the files
run_trial writes, at their usual sizes. The values are pseudo-random but fixed by the
config, so a searcher sees a landscape and the same config gives the same numbers.

`instant` takes no time of its own; `busy:<seconds>` spins the CPU that long first (a
trial of known length, as plain Ray Tune's busy-wait trials in the benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fsvae import demo_data

CLASSES = demo_data.CLASSES  # FashionStyle14's 14 styles, as the demo data has them
SPLITS = {"train": 336, "val": 56, "test": 168}  # demo-data at 40 images per class
STAGE_KEYS = {
    "backbone": ("train_loss", "train_acc", "val_acc", "val_acc_h", "lr", "images_per_s"),
    "vae": ("beta", "recon", "kl", "loss", "val_recon", "val_kl"),
    "classifier": ("train_loss", "train_acc", "val_acc", "val_acc_h"),
}


def parse(mode: str) -> float:
    """Seconds of busy work a mode asks for: `instant` 0, `busy:<s>` s. ValueError else."""
    if mode == "instant":
        return 0.0
    if mode.startswith("busy:"):
        return max(0.0, float(mode[len("busy:") :]))
    raise ValueError(f"FSVAE_BENCH_TRIAL={mode!r}: expected instant or busy:<seconds>")


def synthetic_trial(mode: str) -> Callable[..., dict[str, Any]]:
    """run_trial's stand-in for FSVAE_BENCH_TRIAL=`mode`."""
    seconds = parse(mode)

    def run(
        config: dict[str, Any],
        progress=None,
        out_dir=None,
        cache=None,
        log=print,
        data_fingerprint=None,
    ) -> dict[str, Any]:
        return _trial(config, progress or (lambda event: None), out_dir, seconds)

    return run


def _trial(cfg: dict[str, Any], emit, out_dir, seconds: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        pass
    work = time.perf_counter() - t0  # the trial's "compute": what it was asked to spend
    blob = json.dumps(cfg, sort_keys=True, default=str)
    rng = random.Random(int(hashlib.sha256(blob.encode()).hexdigest()[:16], 16))
    keys = {
        s: hashlib.sha256(f"{s}{blob}".encode()).hexdigest()[:32]
        for s in ("data", "backbone", "vae")
    }
    cache = {s: {"key": k, "hit": True, "waited_s": 0.0, "build_s": 0.0} for s, k in keys.items()}
    history: list[dict] = []

    def lookup(stage: str) -> None:
        emit(
            {
                "stage": "cache",
                "name": stage,
                "key": keys[stage],
                "hit": True,
                "waited_s": 0.0,
                "repaired": None,
            }
        )

    def epochs(stage: str, n: int, replayed: bool) -> None:
        for epoch in range(n):
            row = {
                "stage": stage,
                "epoch": epoch,
                "seconds": 0.0,
                **{k: rng.random() for k in STAGE_KEYS[stage]},
            }
            history.append(row)
            emit({**row, "replayed": True} if replayed else row)
        if stage != "vae":
            best = {"stage": stage, "best_epoch": max(0, n - 1)}
            history.append(best)
            emit({**best, "replayed": True} if replayed else best)

    report = {
        "root": str(cfg.get("data")),
        "layout": "fashionstyle14",
        "splits": {s: {"listed": n, "usable": n} for s, n in SPLITS.items()},
        "summary": {},
        "problems": [],
    }
    lookup("data")
    emit(
        {"stage": "data", "summary": report["summary"], "splits": report["splits"], "examples": {}}
    )
    lookup("backbone")
    epochs("backbone", int(cfg.get("backbone_epochs", 2)), replayed=True)
    lookup("vae")
    epochs("vae", int(cfg.get("vae_epochs", 1)), replayed=False)
    epochs("classifier", int(cfg.get("classifier_epochs", 1)), replayed=False)
    minority = sorted(rng.sample(CLASSES, 5))
    metrics: dict[str, float] = {}
    confusion = {}
    for split in ("val", "test"):
        per_class = {c: rng.random() for c in CLASSES}
        maj = sum(v for c, v in per_class.items() if c not in minority) / (14 - 5)
        mnr = sum(per_class[c] for c in minority) / 5
        h = 0.0 if maj + mnr == 0 else 2 * maj * mnr / (maj + mnr)
        metrics.update(
            {
                f"{split}_acc": rng.random(),
                f"{split}_acc_majority": maj,
                f"{split}_acc_minority": mnr,
                f"{split}_acc_h": h,
                f"{split}_acc_majority_samples": maj,
                f"{split}_acc_minority_samples": mnr,
                f"{split}_acc_h_samples": h,
                f"{split}_acc_mean_class": sum(per_class.values()) / 14,
            }
        )
        metrics.update({f"{split}_class_acc/{c}": v for c, v in per_class.items()})
        confusion[split] = [[rng.randrange(4) for _ in CLASSES] for _ in CLASSES]
    # timings["total"] is the busy work only: the harness's own time inside the trial (its
    # progress callbacks write MLflow batches) stays on the harness's side of the ledger.
    record = {
        "metrics": metrics,
        "confusion": confusion,
        "classes": list(CLASSES),
        "minority_classes": minority,
        "cache": cache,
        "timings": {
            "data": 0.0,
            "backbone": 0.0,
            "vae": 0.0,
            "classifier": work,
            "total": work,
            "waited": 0.0,
        },
        "cost": {
            "wall_s": work,
            "cpu_s": work,
            "gpu_s": 0.0,
            "gpu_peak_mb": 0.0,
            "host_peak_mb": 0.0,
        },
        "history": history,
        "data_summary": report["summary"],
        "config": cfg,
    }
    if out_dir is not None:
        _outputs(Path(out_dir), record, report, rng)
    return record


def _outputs(out: Path, record: dict, report: dict, rng: random.Random) -> None:
    """The files run_trial writes, with contents of their usual size."""

    def write(path: Path, obj: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=1, default=str))

    write(out / "config.json", record["config"])
    write(out / "data_report.json", report)
    for split, n in (("train", 120), ("val", 28), ("test", 84)):
        lines = [
            f"dataset/{rng.choice(CLASSES)}/{i:06d}.jpg\t{rng.choice(CLASSES)}" for i in range(n)
        ]
        (out / "split").mkdir(parents=True, exist_ok=True)
        (out / "split" / f"{split}.txt").write_text("".join(x + "\n" for x in lines))
    write(out / "split" / "split.json", {"minority_classes": record["minority_classes"]})
    for name in ("metrics", "confusion", "cache", "timings", "history"):
        write(out / f"{name}.json", record[name])
    from fsvae import packaged

    packaged.save_trial_part(out / "model", record, None, None)  # model.json as run_trial's
    (out / "model" / "head.pt").write_bytes(rng.randbytes(36_000))  # a head's size
