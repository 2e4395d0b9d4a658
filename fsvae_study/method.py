"""The commands on the method alone: `demo-data`, `trial`, `keys`. They start without Ray,
Optuna or MLflow."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fsvae_study.output import err


def register(sub) -> None:
    d = sub.add_parser("demo-data", help="write a synthetic dataset in FashionStyle14 layout")
    d.add_argument("dir", help="the folder to write (new, or empty); use it as --data")
    d.add_argument(
        "--per-class",
        type=int,
        default=40,
        help="images per class, split into train, val and test (default 40)",
    )
    d.add_argument(
        "--image-size",
        type=int,
        default=48,
        help="image width in px; the height is 4/3 of it (default 48)",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the generated images (default 0)")
    d.add_argument(
        "--defects",
        action="store_true",
        help="add one file of every defect kind the reader reports",
    )
    d.set_defaults(func=_demo_data)

    t = sub.add_parser("trial", help="run one trial without Ray; metrics JSON on stdout")
    t.add_argument("--data", required=True, help="dataset root")
    t.add_argument(
        "--preset",
        default="paper",
        choices=("paper", "tiny"),
        help="config preset that --set overrides: paper (the paper's settings) or "
        "tiny (sized for 2 CPU cores on demo-data output) (default: paper)",
    )
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key (repeatable); see `fsvae-study keys`",
    )
    t.add_argument("--out", help="output folder (default runs/trial-<time>)")
    t.add_argument("--cache-dir", help="reuse/build stage outputs here (default: no cache)")
    t.set_defaults(func=_trial)

    k = sub.add_parser("keys", help="print every config key with its default and meaning")
    k.set_defaults(func=_keys)


def _trial(args: argparse.Namespace) -> int:
    from fsvae import config as config_mod
    from fsvae.cache import StageCache
    from fsvae.trial import run_trial

    overrides = config_mod.parse_overrides(args.set or [])
    overrides["data"] = str(Path(args.data).resolve())
    cfg = config_mod.resolve(overrides, preset=args.preset)
    out = Path(args.out or f"runs/trial-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    cache = StageCache(args.cache_dir, log=err) if args.cache_dir else None

    def progress(event: dict) -> None:
        if event.get("stage") in ("backbone", "vae", "classifier") and "epoch" in event:
            shown = {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in event.items()
                if k not in ("stage", "seconds")
            }
            tag = " (cached)" if event.get("replayed") else ""
            shown.pop("replayed", None)
            err(f"{event['stage']}{tag}: " + " ".join(f"{k}={v}" for k, v in shown.items()))
        elif event.get("stage") == "cache" and args.cache_dir:
            err(f"cache: {event['name']} {event['key'][:12]} {'hit' if event['hit'] else 'miss'}")

    result = run_trial(cfg, progress=progress, out_dir=out, cache=cache, log=err)
    err(f"outputs: {out}")
    # The last line of stdout is the metrics, as one JSON object.
    print(json.dumps(result["metrics"], sort_keys=True))
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    from fsvae import demo_data
    from study.errors import StudyError

    try:
        info = demo_data.make(
            args.dir,
            per_class=args.per_class,
            image_size=args.image_size,
            seed=args.seed,
            defects=args.defects,
        )
    except ValueError as e:  # out-of-range --per-class / --image-size
        raise StudyError(str(e)) from None
    print(
        f"wrote {sum(info['listed'].values())} listed files ({info['listed']}) in "
        f"FashionStyle14 layout under {Path(args.dir).resolve()}"
        + (f"; {len(info['defects'])} deliberate defects" if info["defects"] else "")
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    from fsvae import config as config_mod

    print(config_mod.describe())
    return 0
