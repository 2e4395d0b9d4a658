"""A search stratum's shared backbone is built once, before its trials, by one Ray task
holding the CPUs of all its concurrent trials; every trial then finds it in the cache. The
study's parent run records the build; no trial builds a backbone."""

from __future__ import annotations

import dataclasses
import re

import pytest

import search_spaces
from helpers import FAST, cli, client, make_data, runs, tracking_uri, trial_runs
from study.driver.prebuild import shared_config as _shared_config
from study.plan.plan import Plan

pytestmark = pytest.mark.slow


N = 3


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prebuild")
    data = make_data(tmp / "data")
    storage = tmp / "studies"
    proc = cli(
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "p",
        "--num-samples",
        str(N),
        "--max-concurrent",
        "2",
        *FAST,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    df = runs(tracking_uri(storage), "p")
    parent = df[df["tags.fsvae.role"] == "study"].iloc[0]
    return {
        "proc": proc,
        "storage": storage,
        "uri": tracking_uri(storage),
        "parent": parent,
        "trials": trial_runs(tracking_uri(storage), "p"),
    }


def test_the_shared_backbone_is_built_once_before_the_trials(study):
    parent, trials = study["parent"], study["trials"]
    assert parent["tags.cache.backbone.prebuild.n_f-5"] == "miss"
    key = parent["tags.cache.backbone.prebuild.n_f-5.key"]
    assert len(trials) == N and set(trials["status"]) == {"FINISHED"}
    assert set(trials["tags.cache.backbone"]) == {"hit"}  # no trial built or waited
    assert set(trials["tags.cache.backbone.key"]) == {key}
    assert [
        p.name
        for p in (study["storage"] / "cache" / "backbone").iterdir()
        if not p.name.endswith(".lock")
    ] == [key]
    assert (
        "n_f=5: shared backbone" in study["proc"].stdout
        and "built for the trials" in study["proc"].stdout
    )


def test_the_build_held_the_cpus_of_both_concurrent_trials(study):
    history = client(study["uri"]).get_metric_history(study["parent"]["run_id"], "prebuild_cpus")
    assert [m.value for m in history] == [2.0]
    assert study["parent"]["metrics.prebuild_s"] > 0
    assert study["parent"]["metrics.prebuild_wall_s"] >= study["parent"]["metrics.prebuild_s"]
    assert study["parent"]["metrics.prebuild_cpu_s"] > 0


def test_trials_still_carry_the_backbone_curves(study):
    run_id = study["trials"]["run_id"].iloc[0]
    assert client(study["uri"]).get_metric_history(run_id, "backbone_train_loss")


def _plan(cache_dir) -> Plan:
    # The data path is only carried into the config here, never read.
    return Plan(
        name="s",
        storage="studies",
        space={},
        space_path="",
        space_text="",
        data="data",
        preset="tiny",
        base={"data": "data", "method": "vae"},
        tracking_uri="",
        cache_dir=None if cache_dir is None else str(cache_dir),
    )


def test_no_shared_build_when_a_searched_key_changes_the_backbone(tmp_path):
    space = search_spaces.load("smoke-search")
    assert _shared_config(_plan(tmp_path), space, {"n_f": 5}, 2) == {
        "data": "data",
        "method": "vae",
        "n_f": 5,
    }
    for key, spec in (
        ("backbone_lr", {"type": "float", "low": 1e-3, "high": 1e-1}),
        ("seed", {"type": "int", "low": 0, "high": 3}),
        ("image_size", {"type": "categorical", "choices": [16, 32]}),
    ):
        searched = dataclasses.replace(space, params={**space.params, key: spec})
        assert _shared_config(_plan(tmp_path), searched, {"n_f": 5}, 2) is None, key


def test_no_shared_build_without_cache_concurrency_or_for_grids(tmp_path):
    space = search_spaces.load("smoke-search")
    assert _shared_config(_plan(None), space, {"n_f": 5}, 2) is None
    assert _shared_config(_plan(tmp_path), space, {"n_f": 5}, 1) is None
    assert _shared_config(_plan(tmp_path), search_spaces.load("smoke"), {}, 2) is None


def test_oversampling_searches_over_sampling_factor_build_per_trial(tmp_path):
    space = search_spaces.load("smoke-search")
    plan = _plan(tmp_path)
    plan.base["method"] = "oversample"
    assert _shared_config(plan, space, {"n_f": 5}, 2) is None


def test_console_counts_a_started_trial_as_running(study):
    started = [ln for ln in study["proc"].stdout.splitlines() if " started: " in ln]
    running = [int(re.search(r"running (\d+)", ln).group(1)) for ln in started]
    assert len(running) == N
    assert all(1 <= r <= 2 for r in running), started
