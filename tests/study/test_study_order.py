"""Grid order: every distinct backbone's first trial comes before any trial that reuses a
backbone, so concurrent trials build different backbones instead of queueing on one."""

from __future__ import annotations

import json

import search_spaces
from fsvae import config as config_mod
from study.driver.tuner import order_for_sharing


def backbone_group(point: dict, preset: str) -> str:
    cfg = config_mod.resolve(point, preset=preset)
    oversample = cfg["sampling_factor"] if cfg["method"] == "oversample" else 1
    return json.dumps([cfg["n_f"], cfg["seed"], oversample], sort_keys=True)


def test_paper_grid_builds_each_backbone_before_any_reuse():
    space = search_spaces.load("paper")
    ordered = order_for_sharing(space.trials(), {}, space.preset)
    groups = [backbone_group(p, space.preset) for p in ordered]
    distinct = len(set(groups))
    assert distinct == 4 * 3 * 3  # n_f x seeds x (plain/vae, oversample x30, x50)
    assert len(set(groups[:distinct])) == distinct
    assert sorted(map(json.dumps, ordered)) == sorted(map(json.dumps, space.trials()))


def test_order_keeps_every_trial_exactly_once():
    space = search_spaces.load("ablations")
    ordered = order_for_sharing(space.trials(), {}, space.preset)
    assert len(ordered) == len(space.trials()) == 280
    assert len({json.dumps(p, sort_keys=True) for p in ordered}) == 280
