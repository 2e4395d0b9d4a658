"""Nothing stale is reused: a changed data file, changed stage code or another torch gives
new keys."""

from __future__ import annotations

import hashlib
import json
import modulefinder
import os
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps

import fsvae
from fsvae import data, demo_data
from fsvae.cache import StageCache, make_key, source_hash, source_modules
from fsvae.trial import Stages, data_stage, locate, resolve, run_trial
from helpers import quiet, tiny_config

FSVAE = Path(fsvae.__file__).parent
MODULES = sorted(p.stem for p in FSVAE.glob("*.py") if p.stem != "__init__")
# Code a trial runs between two cache lookups that only assembles keys from values the key
# holds (the config and its key registry, the cache itself), or measures what the trial cost
# (its clocks and memory peaks, fsvae/cost.py): not part of any stage's work, nothing a stage
# computes from.
ORCHESTRATION = {"trial", "cache", "config", "config_keys", "cost"}


def test_source_hash_is_the_hash_of_the_named_modules_sources():
    # transforms and sampler import nothing from fsvae: the hash is of these two alone.
    h = hashlib.sha256()
    for name in ("sampler", "transforms"):
        h.update(f"{name}\0".encode() + (FSVAE / f"{name}.py").read_bytes())
    assert source_hash("transforms", "sampler") == h.hexdigest()[:16]
    assert source_hash("vae") != source_hash("backbone")


@pytest.mark.parametrize("module", MODULES)
def test_source_modules_are_a_module_and_everything_it_imports_from_fsvae(module):
    # The standard library's own import scanner, as an independent reading of the imports.
    finder = modulefinder.ModuleFinder(path=[str(FSVAE.parent)])
    finder.run_script(str(FSVAE / f"{module}.py"))
    imported = {name.split(".")[1] for name in finder.modules if name.startswith("fsvae.")}
    assert source_modules(module) == imported | {module}


def test_source_modules_of_an_unknown_module_is_an_error_naming_it():
    with pytest.raises(ValueError, match="fsvae module 'backbon'"):
        source_modules("backbon")


def test_every_fsvae_module_a_cached_stage_runs_is_hashed_into_its_key(demo_root, tmp_path):
    # The fsvae code that runs between one cache lookup and the next is that stage's work and
    # the making of its inputs (the split, before the backbone): all of it must be in the key.
    phases = ["data", "backbone", "vae", "classifier"]
    ran: dict[str, set[str]] = {phase: set() for phase in phases}
    at = [0]

    def progress(event: dict) -> None:
        if event["stage"] == "cache":
            at[0] += 1

    def profile(frame, event, arg) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(str(FSVAE)):
            ran[phases[at[0]]].add(Path(frame.f_code.co_filename).stem)

    cache = StageCache(tmp_path, log=quiet)
    sys.setprofile(profile)
    try:
        result = run_trial(
            tiny_config(demo_root, method="vae"), progress=progress, cache=cache, log=quiet
        )
    finally:
        sys.setprofile(None)
    for stage in ("data", "backbone", "vae"):
        entry = cache.entry(stage, result["cache"][stage]["key"])
        parts = json.loads((entry / "entry.json").read_text())["parts"]
        work = ran[stage] - ORCHESTRATION
        assert stage in work  # the profile saw the stage run
        assert work <= set(parts["sources"]), stage
        assert parts["code"] == source_hash(*parts["sources"])


def test_fingerprint_changes_when_a_listed_file_changes(tmp_path):
    root = tmp_path / "d"
    demo_data.make(root, per_class=10, image_size=16, seed=0)
    before = data.fingerprint(root)
    target = next((root / "dataset" / "dressy").glob("*.jpg"))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert data.fingerprint(root) != before


def test_a_fingerprint_the_caller_computed_keys_the_data_stage_as_its_own_would(tmp_path):
    """A study computes the dataset's fingerprint once per session and hands it to its
    trials (run_trial's data_fingerprint) instead of each trial stat-ing every file."""
    root = tmp_path / "d"
    demo_data.make(root, per_class=10, image_size=16, seed=0)
    cfg = resolve(tiny_config(root))
    stages = Stages(StageCache(tmp_path / "cache", log=quiet), None)
    data_stage(cfg, *locate(cfg), stages, quiet)
    computed = stages.info["data"]["key"]
    data_stage(cfg, *locate(cfg), stages, quiet, data.fingerprint(root))
    assert stages.info["data"]["key"] == computed and stages.info["data"]["hit"]
    data_stage(cfg, *locate(cfg), stages, quiet, "0" * 64)  # another dataset's
    assert stages.info["data"]["key"] != computed and not stages.info["data"]["hit"]


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


def test_the_key_changes_with_the_torch_or_torchvision_version(monkeypatch):
    import torchvision

    parts = {"data": "abc", "n_f": 5}
    before = make_key(parts)
    assert make_key(dict(parts)) == before  # same parts, same libraries: same key
    monkeypatch.setattr(torch, "__version__", "2.11.0+cu128")
    after_torch = make_key(parts)
    assert after_torch != before
    monkeypatch.setattr(torchvision, "__version__", "0.26.0")
    assert make_key(parts) not in (before, after_torch)


def test_an_entry_records_the_libraries_that_built_it(tmp_path):
    import torchvision

    cache = StageCache(tmp_path, log=quiet)
    _, info = cache.get_or_build(
        "stage",
        {"n_f": 5},
        lambda: 1,
        lambda v, d: (d / "v.json").write_text(json.dumps(v)),
        lambda d: json.loads((d / "v.json").read_text()),
    )
    meta = json.loads((tmp_path / "stage" / info["key"] / "entry.json").read_text())
    assert meta["libraries"] == {"torch": torch.__version__, "torchvision": torchvision.__version__}
