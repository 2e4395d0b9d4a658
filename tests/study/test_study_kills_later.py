"""Exactly once, whatever is killed and when (continued from test_study_kills.py): the
driver SIGKILLed during the shared backbone build and, for an unseeded search and a grid,
mid-trial or after some trials finished; then `resume`."""

from __future__ import annotations

import json

import pytest

from helpers.kills import N, assert_exactly_once, counted_from, kill_then_resume, make_base

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory)


def test_search_killed_during_the_shared_backbone_build(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "shared_build", count=1)
    assert_exactly_once(result, N, search=True)


def test_unseeded_search_killed_after_some_trials_finished(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "unseeded", None, done=2)
    assert (result["before"]["status"] == "FINISHED").sum() == 2
    assert counted_from(result["resumed"].stdout) == 2
    assert_exactly_once(result, N, search=True)
    # The first session built the stratum's shared backbone: the resume starts no build task.
    assert "built by an earlier session, still in the cache" in result["resumed"].stdout
    assert "built for the trials" not in result["resumed"].stdout
    space = json.loads((result["storage"] / "k" / "study.json").read_text())["space"]
    assert space["sampler_seed"] is None


@pytest.mark.essential
def test_grid_killed_mid_trial(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "grid4", "trial_running", count=2)
    assert_exactly_once(result, 4, search=False)


def test_grid_killed_after_some_trials_finished(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "grid4", None, done=2)
    assert (result["before"]["status"] == "FINISHED").sum() == 2
    assert counted_from(result["resumed"].stdout) == 2
    assert_exactly_once(result, 4, search=False)
