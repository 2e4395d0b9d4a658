"""`fsvae-study cache`: what the stage cache holds (stage, key, size, the config values that
tell entries apart), and removing entries by key prefix, on a cache built by real trials."""

from __future__ import annotations

import shutil

import pytest

from helpers import cli as fsvae_study


def cli(*args: str):
    return fsvae_study("cache", *args, timeout=120)


@pytest.fixture
def cache_copy(tmp_path, stage_cache, trials):
    root = tmp_path / "cache"
    shutil.copytree(stage_cache.root, root)
    return root


def test_lists_every_entry_with_what_it_holds(cache_copy, trials):
    proc = cli("--cache-dir", str(cache_copy))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    keys = {stage: info["key"][:12] for stage, info in trials["vae"][0]["cache"].items()}
    backbone_row = next(ln for ln in lines if f"| {keys['backbone']} |" in ln)
    assert (
        backbone_row.startswith("| backbone |") and "n_f=5" in backbone_row and "MB" in backbone_row
    )
    vae_row = next(ln for ln in lines if f"| {keys['vae']} |" in ln)
    assert f"on backbone {keys['backbone']}" in vae_row and "latent_dim=" in vae_row
    assert any("oversample x" in ln for ln in lines)  # the oversample trial's own backbone
    n = sum(1 for p in cache_copy.glob("*/*") if p.is_dir() and not p.name.startswith("."))
    assert lines[0].startswith(f"stage cache {cache_copy}: {n} entries, ")


def test_remove_deletes_an_entry_by_key_prefix(cache_copy, trials):
    key = trials["vae"][0]["cache"]["vae"]["key"]
    proc = cli("--cache-dir", str(cache_copy), "--remove", key[:10])
    assert proc.returncode == 0, proc.stderr
    assert f"removed vae {key}" in proc.stdout
    assert not (cache_copy / "vae" / key).exists()
    assert (cache_copy / "backbone" / trials["vae"][0]["cache"]["backbone"]["key"]).is_dir()


def test_an_ambiguous_prefix_is_refused_and_nothing_is_removed(cache_copy):
    before = sorted(p.name for p in cache_copy.glob("*/*"))
    proc = cli("--cache-dir", str(cache_copy), "--remove", "")
    assert proc.returncode == 2 and "give more of the key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in cache_copy.glob("*/*")) == before


def test_a_missing_cache_is_a_clear_error(tmp_path):
    proc = cli("--storage", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert f"no stage cache at {tmp_path / 'nowhere' / 'cache'}" in proc.stderr
