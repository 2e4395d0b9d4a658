"""Nothing stale is reused: a changed data file or changed stage code gives new keys."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from PIL import Image, ImageOps

import fsvae
from helpers import quiet, tiny_config
from fsvae import data, demo_data
from fsvae.cache import StageCache, code_version
from fsvae.trial import run_trial


def test_code_version_is_the_hash_of_the_stage_sources():
    src = Path(fsvae.__file__).parent
    h = hashlib.sha256()
    for name in sorted(["backbone", "transforms"]):
        h.update((src / f"{name}.py").read_bytes())
    assert code_version("transforms", "backbone") == h.hexdigest()[:16]
    assert code_version("vae") != code_version("backbone")


def test_backbone_entry_is_keyed_on_its_stage_code(demo_root, stage_cache, trials):
    result = trials["vae"][0]
    entry = stage_cache.entry("backbone", result["cache"]["backbone"]["key"])
    parts = json.loads((entry / "entry.json").read_text())["parts"]
    assert parts["code"] == code_version("backbone", "sampler", "transforms", "split",
                                         "metrics")
    vae_entry = stage_cache.entry("vae", result["cache"]["vae"]["key"])
    assert json.loads((vae_entry / "entry.json").read_text())["parts"]["code"] == \
        code_version("vae")


def test_fingerprint_changes_when_a_listed_file_changes(tmp_path):
    root = tmp_path / "d"
    demo_data.make(root, per_class=10, image_size=16, seed=0)
    before = data.fingerprint(root)
    target = next((root / "dataset" / "dressy").glob("*.jpg"))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert data.fingerprint(root) != before


def test_changed_image_bytes_give_new_data_and_backbone_keys(tmp_path):
    root = tmp_path / "d"
    demo_data.make(root, per_class=10, image_size=24, seed=0)
    cache = StageCache(tmp_path / "cache", log=quiet)
    cfg = tiny_config(root, method="plain", n_f=2)
    first = run_trial(cfg, cache=cache, log=quiet)["cache"]
    again = run_trial(cfg, cache=cache, log=quiet)["cache"]
    assert again["backbone"]["hit"] and again["backbone"]["key"] == first["backbone"]["key"]
    # Replace one image by a new valid one (the first, mirrored).
    image = sorted((root / "dataset" / "rock").glob("*.jpg"))[0]
    with Image.open(image) as im:
        ImageOps.mirror(im.convert("RGB")).save(image, quality=90)
    changed = run_trial(cfg, cache=cache, log=quiet)["cache"]
    assert changed["data"]["key"] != first["data"]["key"] and not changed["data"]["hit"]
    assert changed["backbone"]["key"] != first["backbone"]["key"]
    assert not changed["backbone"]["hit"]
