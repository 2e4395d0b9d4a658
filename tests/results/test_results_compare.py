"""`--compare A:B`: per-seed paired differences, checked against differences worked out by
hand from the store's runs.
"""

from __future__ import annotations

import math
import re

import pytest
from results_store import ROW_ORDER, shared_store, table, tidy

import results
from helpers import hand_stats, same
from results import ResultsError


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
    assert (
        got[("vae x30 [latent_dim=32] minus crt x30", 5, "acc_h")].run_ids.split(";")[0]
        == f"{store['ids'][8]}:{store['ids'][19]}"
    )
    line = next(s for s in t.summaries if s.startswith("vae x30 [latent_dim=32] minus crt x30"))
    lo, hi = 5 - 4.302653 * 2 / math.sqrt(3), 5 + 4.302653 * 2 / math.sqrt(3)
    assert line.startswith(
        f"vae x30 [latent_dim=32] minus crt x30 at n_f=5: +5.00 acc_h "
        f"points, 95% CI [{lo:.2f}, {hi:.2f}]; +1.33 acc points"
    )
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
    # acc_h 5, 6 and acc 1, 2: t(0.975, 1) = 12.706 -> half-widths 6.35
    assert (
        "\n".join(
            [
                r"\multicolumn{4}{l}{vae x50 [latent\_dim=32] minus crt x50} \\",
                r"5 & +5.5 [$-$0.9, 11.9] & +1.5 [$-$4.9, 7.9] & 2 \\",
            ]
        )
        in tex
    )
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 2
    comp = csv[csv["section"] == "comparison"]
    assert len(comp) == 6 and set(comp["a"]) == {
        "vae x30 [latent_dim=32]",
        "vae x30 [latent_dim=64]",
        "vae x50 [latent_dim=32]",
    }
    assert md.rstrip().endswith("2 seeds.")  # the plain-language lines follow the table


@pytest.mark.parametrize(
    "text, message",
    [
        ("vae-crt", "expected A:B where A and B are METHOD or METHOD@SAMPLING_FACTOR"),
        ("vae:crt:plain", "expected A:B"),
        ("vae:vae", "with itself"),
        (
            "noise:crt",
            "no finished runs of method 'noise'; methods with finished runs: plain, "
            "oversample, vae, crt",
        ),
        ("vae@70:crt", "no finished runs of vae@70; vae has sampling factors: 30, 50"),
    ],
)
def test_compare_errors_name_the_problem(store, text, message):
    with pytest.raises(ResultsError, match=re.escape(message)):
        table(store, compare=text)


# -- pairing only like with like ---------------------------------------------------------


def test_compare_pairs_only_runs_that_agree_on_every_key_both_methods_use(store):
    t = table(store, experiment="setups", compare="vae:crt")
    got = _comparisons(t)
    # vae at backbone_lr 0.01 minus crt (at 0.01) per seed, by hand from SETUPS (points);
    # vae at 0.1 is a different setup and is not paired with crt
    pair = "vae x30 [backbone_lr=0.01] minus crt x30"
    assert set(got) == {(pair, 5, "acc_h"), (pair, 5, "acc")}
    for metric, diffs in (("acc_h", [2, 3, 6]), ("acc", [0, 1, 2])):
        h, r = hand_stats(diffs), got[(pair, 5, metric)]
        assert same(r.mean, h["mean"]) and same(r.std, h["std"]) and r.n == 3, metric
        assert same(r.ci95_low, h["lo"]) and same(r.ci95_high, h["hi"]), metric
    ids = store["setups_ids"]
    assert got[(pair, 5, "acc_h")].run_ids.split(";") == [
        f"{ids[3 + s]}:{ids[6 + s]}" for s in range(3)
    ]


def test_a_key_only_one_method_uses_is_not_matched(store):
    # only vae logs latent_dim (32); crt has no such key, and the rows still pair
    t = table(store, experiment="setups", compare="crt:vae")
    assert {k[0] for k in _comparisons(t)} == {"crt x30 minus vae x30 [backbone_lr=0.01]"}


def test_a_row_without_partner_is_listed_as_unmatched_with_the_differing_keys(store):
    t = table(store, experiment="setups", compare="vae:crt")
    assert t.summaries[-1] == (
        "Unmatched, not compared: vae x30 [backbone_lr=0.1] (nearest: "
        "crt x30, which differs in backbone_lr: 0.1 vs 0.01)."
    )
    assert "vae x30 [backbone_lr=0.1] minus" not in t.to_markdown()


def test_a_sampling_factor_both_use_is_matched_and_the_other_rows_listed(store):
    # crt and oversample both use a factor: crt x50 has no oversample x50 to pair with
    t = table(store, compare="crt:oversample")
    assert {k[0] for k in _comparisons(t)} == {"crt x30 minus oversample x30"}
    assert t.summaries[-1] == (
        "Unmatched, not compared: crt x50 (nearest: oversample x30, "
        "which differs in sampling_factor: 50 vs 30)."
    )


def test_no_row_pair_that_agrees_is_an_error_naming_the_differing_keys(store):
    with pytest.raises(ResultsError) as e:
        table(store, experiment="setups", compare="noise:crt")
    assert str(e.value) == (
        "--compare noise:crt: no configuration of noise agrees with one of crt on the keys "
        "both use. Unmatched, not compared: noise x30 (nearest: crt x30, which differs in "
        "backbone_lr: 0.1 vs 0.01). Unmatched, not compared: crt x30 (nearest: noise x30, "
        "which differs in backbone_lr: 0.01 vs 0.1)."
    )
