"""Exactly once, whatever is killed and when: the driver is SIGKILLed at each point a study
can be at (before any trial finished, mid-trial, while a trial writes its run, after its
run FINISHED but before anyone heard, before the driver told Optuna, during the shared
backbone build, after some trials finished), for a grid and for an Optuna search with a
seeded and an unseeded sampler; then `resume`. A killed worker process is retried without
a resume. This module holds a seeded search killed before, during and after its trials'
writes; test_study_kills_later.py and test_study_kills_workers.py hold the rest (three
modules, so that parallel test processes share them out). Kills are triggered by the
processes themselves reaching a named point (study/hooks/faults.py), never by sleeps or by
racing a console line: "after some trials finished" holds the later trials at their start.

After each: exactly one FINISHED run per trial key and as many keys as the study has
trials, no RUNNING run (deleted ones included), finished runs kept rather than recomputed,
and, for a search, an Optuna study holding exactly those trials, all COMPLETE, with the
values MLflow has."""

from __future__ import annotations

import re

import pytest

from helpers.kills import N, assert_exactly_once, kill_then_resume, make_base

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory)


def test_search_killed_before_any_trial_finished(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "trial_start", count=2)
    assert result["before"] is None or not (result["before"]["status"] == "FINISHED").any()
    assert_exactly_once(result, N, search=True)


def test_search_killed_after_runs_finished_unseen_adopts_them(base, tmp_path):
    # Both trials' runs are FINISHED in MLflow; neither Tune nor Optuna has heard.
    result = kill_then_resume(base, tmp_path, "smoke-search", "trial_finished", count=2)
    assert (result["before"]["status"] == "FINISHED").sum() == 2
    assert "had finished in MLflow before the last driver stopped" in result["resumed"].stdout
    assert "2 adopted from MLflow" in result["resumed"].stdout
    assert_exactly_once(result, N, search=True)


def test_search_killed_before_the_driver_told_optuna(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "searcher_tell", count=1)
    # The run that finished is adopted (and maybe the other trial's, which went on while
    # the driver waited).
    assert re.search(r"[12] adopted from MLflow", result["resumed"].stdout)
    assert_exactly_once(result, N, search=True)


def test_search_killed_while_a_trial_writes_its_run(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "trial_finishing", count=1)
    assert_exactly_once(result, N, search=True)
