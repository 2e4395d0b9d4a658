"""`analyze` on a grid: each varied key's effect over seeds, checked by hand."""

from __future__ import annotations

import pytest
from analysis_store import shared_stores

from helpers import hand_stats, md_cells
from results.analysis import analyze


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    return shared_stores(tmp_path_factory)


@pytest.fixture(scope="module")
def analysed(stores, tmp_path_factory):
    return analyze("grid-fx", tracking_uri=stores["uri"], out=tmp_path_factory.mktemp("grid-fx"))


def _row(analysis, key: str, setting: str, value: str, metric: str = "acc_h"):
    e = analysis.effects
    hit = e[
        (e["key"] == key)
        & (e["setting"] == setting)
        & (e["value"] == value)
        & (e["metric"] == metric)
    ]
    assert len(hit) == 1
    return hit.iloc[0]


def test_each_value_has_its_mean_and_t_interval_over_seeds(analysed):
    row, hand = _row(analysed, "sampling_factor", "n_f=5", "50"), hand_stats([50, 52, 60])
    assert (row["mean"], row["n"]) == (pytest.approx(54.0), 3)
    assert (row["ci95_low"], row["ci95_high"]) == (
        pytest.approx(hand["lo"]),
        pytest.approx(hand["hi"]),
    )
    assert row["seeds"] == "0;1;2"


def test_the_difference_from_the_first_value_pairs_seeds(analysed):
    row = _row(analysed, "sampling_factor", "n_f=5", "50")
    hand = hand_stats([10, 8, 12])  # 50-40, 52-44, 60-48
    assert row["reference"] == "30" and row["diff_n"] == 3
    assert (row["diff_mean"], row["diff_low"], row["diff_high"]) == (
        pytest.approx(10.0),
        pytest.approx(hand["lo"]),
        pytest.approx(hand["hi"]),
    )


def test_a_seed_missing_on_one_side_is_left_out_of_the_pairs(analysed):
    row = _row(analysed, "sampling_factor", "n_f=10", "50")
    hand = hand_stats([8, 6])  # seeds 0, 1: 58-50, 61-55; seed 2 failed at x50
    assert (row["n"], row["diff_n"]) == (2, 2)
    assert (row["diff_mean"], row["diff_low"], row["diff_high"]) == (
        pytest.approx(7.0),
        pytest.approx(hand["lo"]),
        pytest.approx(hand["hi"]),
    )


def test_every_varied_key_gets_a_table_and_a_figure(analysed):
    assert set(analysed.effects["key"]) == {"n_f", "sampling_factor"}
    assert {p.name for p in analysed.figures} == {"effect_n_f.png", "effect_sampling_factor.png"}
    section = analysed.markdown.split("## sampling_factor")[1]
    rows = [md_cells(ln) for ln in section.splitlines() if ln.startswith("| ")]
    assert rows[0][:4] == [
        "setting",
        "sampling_factor",
        "acc_h mean [95% CI] (n)",
        "acc_h minus sampling_factor=30 [95% CI] (n)",
    ]
    hand = hand_stats([10, 8, 12])
    assert rows[3][:4] == [
        "n_f=5",
        "50",
        "54.00 [40.86, 67.14] (n=3)",
        f"+10.00 [{hand['lo']:.2f}, {hand['hi']:.2f}] (n=3)",
    ]
    assert "![effect_sampling_factor](effect_sampling_factor.png)" in section
