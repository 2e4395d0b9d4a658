"""The `cache` command: what the stage cache holds (docs/cache.md), and removing
entries from it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub) -> None:
    c = sub.add_parser(
        "cache", help="list the stage cache's entries (size, what they hold), or remove some"
    )
    c.add_argument(
        "--storage", help="studies' storage; the cache is <storage>/cache (default ./fsvae-studies)"
    )
    c.add_argument("--cache-dir", help="a cache elsewhere (a study's --cache-dir)")
    c.add_argument(
        "--remove",
        nargs="+",
        metavar="KEY",
        help="delete these entries (a unique key prefix is enough)",
    )
    c.set_defaults(func=_cache)


def _cache(args: argparse.Namespace) -> int:
    from fsvae import cache as cache_mod
    from study.errors import StudyError

    if args.cache_dir and args.storage:
        raise StudyError("--cache-dir and --storage both name the cache; give one")
    root = Path(args.cache_dir or Path(args.storage or "fsvae-studies") / "cache").resolve()
    if not root.is_dir():
        raise StudyError(
            f"no stage cache at {root} (a study's cache is <storage>/cache, or its --cache-dir)"
        )
    for prefix in args.remove or []:
        try:
            entry = cache_mod.remove(root, prefix)
        except (ValueError, TimeoutError) as e:
            raise StudyError(str(e)) from None
        print(f"removed {entry['stage']} {entry['key']} ({_size(entry['bytes'])})")
    if args.remove:
        return 0
    order = {"data": 0, "backbone": 1, "vae": 2}  # pipeline order, then by date
    rows = sorted(
        cache_mod.entries(root), key=lambda e: (order.get(e["stage"], 3), e["stage"], e["created"])
    )
    total = sum(e["bytes"] for e in rows)
    print(
        f"stage cache {root}: {sum(e['state'] == 'complete' for e in rows)} entries, {_size(total)}"
    )
    if not rows:
        return 0
    print("\n| stage | key | size | created | build s | what |\n|---|---|---|---|---|---|")
    for row in rows:
        key = row["key"][:12] + (" (unfinished build)" if row["state"] == "building" else "")
        built = f"{row['build_s']:.1f}" if row["build_s"] is not None else ""
        print(
            f"| {row['stage']} | {key} | {_size(row['bytes'])} | "
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(row['created']))} | {built} | "
            f"{_what(row['stage'], row['parts'])} |"
        )
    print(
        "\nRemove an entry with `fsvae-study cache --remove KEY` (a unique prefix will do); "
        "a trial that needs it again rebuilds it."
    )
    return 0


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GB"


def _what(stage: str, parts: dict) -> str:
    """The config values that tell one entry from another, shortly."""
    if stage == "data":
        return f"load_size={parts.get('load_size')}"
    if stage == "backbone":
        split, bb = parts.get("split", {}), parts.get("backbone", {})
        shown = [f"{k}={split[k]}" for k in ("n_f", "num_minority", "seed") if k in split]
        shown += [
            f"{k}={bb[k]}"
            for k in ("backbone", "backbone_weights", "backbone_epochs", "image_size")
            if k in bb
        ]
        if parts.get("oversample", 1) != 1:
            shown.append(f"oversample x{parts['oversample']}")
        return " ".join(shown)
    if stage == "vae":
        from fsvae.config import short

        v = parts.get("vae", {})
        shown = [
            f"{k}={short(v[k])}"
            for k in ("latent_dim", "beta_schedule", "beta_max", "vae_epochs")
            if k in v
        ]
        return " ".join(shown + [f"on backbone {str(parts.get('backbone', ''))[:12]}"])
    return ""
