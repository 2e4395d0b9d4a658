"""fsvae.cache in real trials: which config keys move which stage's key, and a truncated
entry rebuilt to the same results (test_cache.py: the StageCache itself)."""

from __future__ import annotations

import shutil

import pytest
import torch

from fsvae.cache import StageCache
from fsvae.trial import run_trial
from helpers import quiet, tiny_config

# -- which config keys move which stage key, through real trials ------------------------------


@pytest.fixture(scope="module")
def trial_with(demo_root, stage_cache, trials):
    """trial_with(**overrides) -> run_trial result on the session cache (memoised)."""
    done: dict[tuple, dict] = {("vae",): trials["vae"][0]}

    def run(method: str = "vae", **overrides) -> dict:
        key = (method, *sorted(overrides.items()))
        if key not in done:
            done[key] = run_trial(
                tiny_config(demo_root, method=method, **overrides), cache=stage_cache, log=quiet
            )
        return done[key]

    return run


def keys(result: dict) -> dict[str, str]:
    return {stage: info["key"] for stage, info in result["cache"].items()}


@pytest.mark.parametrize(
    "change",
    [{"latent_dim": 8}, {"beta_max": 0.01}, {"sampling_factor": 7}, {"classifier_lr": 0.2}],
)
def test_vae_method_backbone_key_ignores_vae_and_classifier_keys(trial_with, change):
    other = trial_with(**change)
    assert keys(other)["backbone"] == keys(trial_with())["backbone"]
    assert other["cache"]["backbone"]["hit"]


@pytest.mark.parametrize("change", [{"n_f": 3}, {"seed": 1}, {"backbone_epochs": 2}])
def test_backbone_key_changes_with_split_and_backbone_keys(trial_with, change):
    assert keys(trial_with(**change))["backbone"] != keys(trial_with())["backbone"]


def test_plain_and_vae_share_one_backbone(trials):
    plain, vae = trials["plain"][0], trials["vae"][0]
    assert keys(plain)["backbone"] == keys(vae)["backbone"]


def test_oversample_backbone_key_changes_with_sampling_factor(trial_with, trials):
    four = trials["oversample"][0]  # sampling_factor 4
    two = trial_with("oversample", sampling_factor=2)
    assert keys(two)["backbone"] != keys(four)["backbone"]
    assert keys(four)["backbone"] != keys(trials["plain"][0])["backbone"]


@pytest.mark.parametrize("change", [{"latent_dim": 8}, {"beta_max": 0.01}])
def test_vae_key_changes_with_vae_keys(trial_with, change):
    assert keys(trial_with(**change))["vae"] != keys(trial_with())["vae"]


@pytest.mark.parametrize("change", [{"sampling_factor": 7}, {"classifier_lr": 0.2}])
def test_vae_key_ignores_classifier_keys(trial_with, change):
    other = trial_with(**change)
    assert keys(other)["vae"] == keys(trial_with())["vae"] and other["cache"]["vae"]["hit"]


def test_vae_key_changes_with_the_backbone(trial_with):
    assert keys(trial_with(n_f=3))["vae"] != keys(trial_with())["vae"]


def test_inactive_schedule_keys_do_not_change_the_vae_key(trial_with):
    # beta_cycles only matters for beta_schedule=cyclical; the trials use linear.
    assert keys(trial_with(beta_cycles=9))["vae"] == keys(trial_with())["vae"]


def test_methods_without_vae_have_no_vae_stage(trials, trial_with):
    assert "vae" not in trials["plain"][0]["cache"]
    assert "vae" not in trial_with("crt")["cache"]


def test_data_key_is_shared_by_every_trial_on_the_same_data(trials):
    assert len({keys(r)["data"] for r, _ in trials.values()}) == 1


# -- a damaged entry under a real trial ---------------------------------------------------


def test_trial_rebuilds_a_truncated_backbone_entry_with_the_same_results(
    tmp_path, stage_cache, trials, demo_root
):
    cache_root = tmp_path / "cache"
    shutil.copytree(stage_cache.root, cache_root)
    first = trials["vae"][0]
    entry = cache_root / "backbone" / first["cache"]["backbone"]["key"]
    features = entry / "features.pt"
    features.write_bytes(features.read_bytes()[:1000])
    logged = []
    again = run_trial(
        tiny_config(demo_root, method="vae"),
        cache=StageCache(cache_root, log=logged.append),
        log=quiet,
    )
    info = again["cache"]["backbone"]
    assert info["hit"] is False and info["key"] == first["cache"]["backbone"]["key"]
    assert info["repaired"]
    assert any("could not be read" in line for line in logged), logged
    assert again["cache"]["vae"]["hit"] is True  # its key, the backbone's key, is unchanged
    assert again["metrics"] == first["metrics"]
    assert torch.load(features, weights_only=True).keys() == {"train", "val", "test"}


def test_trial_rebuilds_a_truncated_data_entry(tmp_path, stage_cache, trials, demo_root):
    cache_root = tmp_path / "cache"
    shutil.copytree(stage_cache.root, cache_root)
    first = trials["plain"][0]
    images = cache_root / "data" / first["cache"]["data"]["key"] / "images.npy"
    images.write_bytes(images.read_bytes()[:5000])
    again = run_trial(
        tiny_config(demo_root, method="plain"), cache=StageCache(cache_root, log=quiet), log=quiet
    )
    assert again["cache"]["data"]["hit"] is False and again["cache"]["data"]["repaired"]
    assert again["cache"]["backbone"]["hit"] is True
    assert again["metrics"] == first["metrics"]
