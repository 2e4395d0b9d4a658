"""`--compare A:B`: per-seed paired differences, checked against differences worked out by
hand from the store's runs.
"""
from __future__ import annotations

import math
import re

import pytest

import results
from results import ResultsError
from results_store import ROW_ORDER, hand_stats, same, shared_store, table, tidy


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


def _comparisons(t: results.Table) -> dict:
    return {(r.row, r.n_f, r.metric): r for r in t.comparisons.itertuples()}


def test_compare_pairs_seeds_with_matching_sampling_factor(store):
    t = table(store, compare="vae:crt")
    got = _comparisons(t)
    # vae - crt per seed, by hand from GRID (points)
    want = {
        ("vae x30 [latent_dim=32] minus crt x30", 5, "acc_h"): [5, 3, 7],
        ("vae x30 [latent_dim=32] minus crt x30", 5, "acc"): [1, 1, 2],
        ("vae x30 [latent_dim=64] minus crt x30", 5, "acc_h"): [-5, -7],
        ("vae x30 [latent_dim=64] minus crt x30", 5, "acc"): [-1, 0],
        ("vae x50 [latent_dim=32] minus crt x50", 5, "acc_h"): [5, 6],
        ("vae x50 [latent_dim=32] minus crt x50", 5, "acc"): [1, 2],
    }
    assert set(got) == set(want)
    for key, diffs in want.items():
        h, r = hand_stats(diffs), got[key]
        assert same(r.mean, h["mean"]) and same(r.std, h["std"]) and r.n == h["n"], key
        assert same(r.ci95_low, h["lo"]) and same(r.ci95_high, h["hi"]), key
    assert got[("vae x30 [latent_dim=32] minus crt x30", 5, "acc_h")].run_ids.split(";")[0] \
        == f"{store['ids'][8]}:{store['ids'][19]}"
    line = next(s for s in t.summaries if s.startswith("vae x30 [latent_dim=32] minus crt x30"))
    lo, hi = 5 - 4.302653 * 2 / math.sqrt(3), 5 + 4.302653 * 2 / math.sqrt(3)
    assert line.startswith(f"vae x30 [latent_dim=32] minus crt x30 at n_f=5: +5.00 acc_h "
                           f"points, 95% CI [{lo:.2f}, {hi:.2f}]; +1.33 acc points")
    assert line.endswith("3 seeds.")


def test_compare_pinned_factors(store):
    one = _comparisons(table(store, compare="vae@50:crt"))  # pins crt to x50 as well
    assert {k[0] for k in one} == {"vae x50 [latent_dim=32] minus crt x50"}
    both = _comparisons(table(store, compare="vae@50:crt@30"))  # exactly these two
    r = both[("vae x50 [latent_dim=32] minus crt x30", 5, "acc_h")]
    assert (r.mean, r.std, r.n) == (pytest.approx(15.0), pytest.approx(4.0), 3)  # 15, 11, 19


def test_compare_against_a_method_without_sampling_factor_uses_each_factor(store):
    t = table(store, compare="vae:plain")
    rows = {k[0] for k in _comparisons(t)}
    assert rows == {f"{r} minus plain" for r in ROW_ORDER if r.startswith("vae")}
    r = _comparisons(t)[("vae x50 [latent_dim=32] minus plain", 10, "acc_h")]
    assert r.n == 1 and r.mean == pytest.approx(45.0) and math.isnan(r.ci95_low)
    line = next(s for s in t.summaries if "minus plain at n_f=10" in s)
    assert "+45.00 acc_h points" in line and "CI" not in line.split(";")[0]
    assert "confidence interval is undefined" in line


def test_compare_appears_in_every_format(store):
    t = table(store, compare="vae:crt")
    md, tex, csv = t.to_markdown(), t.to_latex(), tidy(t)
    assert "| vae x50 [latent_dim=32] minus crt x50 | 5 | +5.50 |" in md
    assert r"vae x50 [latent\_dim=32] minus crt x50 & 5 & +5.50 &" in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 2
    comp = csv[csv["section"] == "comparison"]
    assert len(comp) == 6 and set(comp["a"]) == {"vae x30 [latent_dim=32]",
                                                  "vae x30 [latent_dim=64]",
                                                  "vae x50 [latent_dim=32]"}
    assert md.rstrip().endswith("2 seeds.")  # the plain-language lines follow the table


@pytest.mark.parametrize("text, message", [
    ("vae-crt", "expected A:B where A and B are METHOD or METHOD@SAMPLING_FACTOR"),
    ("vae:crt:plain", "expected A:B"),
    ("vae:vae", "with itself"),
    ("noise:crt", "no finished runs of method 'noise'; methods with finished runs: plain, "
                  "oversample, vae, crt"),
    ("vae@70:crt", "no finished runs of vae@70; vae has sampling factors: 30, 50"),
])
def test_compare_errors_name_the_problem(store, text, message):
    with pytest.raises(ResultsError, match=re.escape(message)):
        table(store, compare=text)
