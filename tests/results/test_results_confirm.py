"""A confirmation's table on a hand-built store: a search, and a grid that reran its top two
configurations of each stratum with seeds 1-3, its parent run tagged with the search. Also
the `confirm` command's refusals, which come before any study starts.
"""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from results_store import tidy

import results
from fsvae_study.cli import main as cli_main
from helpers import T0, grid_params, hand_stats, md_cells
from results.confirm_study import default_seeds, parse_seeds
from results.confirm_table import ranked, top
from study.errors import StudyError

# The search: (trial key, n_f, latent_dim, beta_max, val_acc_h, status), in start order.
# n_f=5: #4 tried #1's configuration again (rank 2), so the top two configurations are #1
# and #2 (rank 3). n_f=10: #0 and #2 tie at 0.52; the earlier one, #0, ranks 2.
SEARCH = [
    ("n_f=5#0", 5, 16, 0.001, 0.50, "FINISHED"),
    ("n_f=5#1", 5, 32, 0.01, 0.60, "FINISHED"),
    ("n_f=5#2", 5, 8, 0.001, 0.55, "FINISHED"),
    ("n_f=5#3", 5, 64, 0.1, None, "FAILED"),
    ("n_f=5#4", 5, 32, 0.01, 0.58, "FINISHED"),
    ("n_f=10#0", 10, 64, 0.001, 0.52, "FINISHED"),
    ("n_f=10#1", 10, 16, 0.01, 0.65, "FINISHED"),
    ("n_f=10#2", 10, 8, 0.01, 0.52, "FINISHED"),
]
# The confirmation: (n_f, latent_dim, beta_max) -> val_acc_h at seeds 1, 2, 3. At n_f=5 the
# search's best (#1) falls behind #2, their intervals overlapping; at n_f=10 it stays ahead
# of #0, their intervals apart.
CONFIRMED = {
    (5, 32, 0.01): [0.50, 0.52, 0.54],
    (5, 8, 0.001): [0.56, 0.58, 0.60],
    (10, 16, 0.01): [0.62, 0.64, 0.66],
    (10, 64, 0.001): [0.40, 0.41, 0.42],
}
SEEDS = [1, 2, 3]
# Another confirmation of the same search, at n_f=5 and seed 1 only: (latent_dim, beta_max)
# of #2 (rank 3), and of a configuration the search never tried. The search's best is absent.
PARTIAL = [(8, 0.001), (128, 0.5)]


def _metrics(val_acc_h: float | None) -> dict:
    """val_acc_h and the others derived from it: val_acc +10 points, test_acc_h -5,
    test_acc +5."""
    if val_acc_h is None:
        return {}
    return {
        "val_acc_h": val_acc_h,
        "val_acc": val_acc_h + 0.10,
        "test_acc_h": val_acc_h - 0.05,
        "test_acc": val_acc_h + 0.05,
    }


def _parent(client, root, name: str, kind: str, strata: str, tags: dict | None = None):
    exp = client.create_experiment(name, artifact_location=(root / "art" / name).as_uri())
    parent = client.create_run(
        exp,
        start_time=T0 - 10_000,
        run_name=f"study:{name}",
        tags={
            "fsvae.role": "study",
            "fsvae.space_kind": kind,
            "fsvae.objective": "val_acc_h",
            "fsvae.mode": "max",
            "fsvae.strata": strata,
            **(tags or {}),
        },
    ).info.run_id
    return exp, parent


def _run(client, exp, parent, i: int, params: dict, metrics: dict, status: str, tags: dict) -> str:
    rid = client.create_run(
        exp,
        start_time=T0 + 1000 * i,
        run_name=f"trial-{i}",
        tags={"mlflow.parentRunId": parent, "fsvae.role": "trial", **tags},
    ).info.run_id
    client.log_batch(
        rid,
        params=[Param(k, str(v)) for k, v in sorted(params.items())],
        metrics=[Metric(k, float(v), T0, 0) for k, v in metrics.items()],
    )
    client.set_terminated(rid, status)
    return rid


def _params(n_f: int, latent: int, beta_max: float, seed: int) -> dict:
    return {**grid_params("vae", 30, latent, n_f, seed), "beta_max": beta_max}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("confirm-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp, parent = _parent(client, root, "s", "optuna", "n_f")
    client.log_dict(parent, {"params": {"latent_dim": {}, "beta_max": {}}}, "space.json")
    search = {}
    for i, (key, n_f, latent, beta, val, status) in enumerate(SEARCH):
        search[key] = _run(
            client,
            exp,
            parent,
            i,
            _params(n_f, latent, beta, 0),
            _metrics(val),
            status,
            {"fsvae.trial_key": key, "fsvae.stratum": f"n_f={n_f}"},
        )
    exp, parent = _parent(client, root, "s-confirm", "grid", "", {"fsvae.confirms": "s"})
    runs, i = {}, 0
    for (n_f, latent, beta), values in CONFIRMED.items():
        for seed, val in zip(SEEDS, values):
            runs[(n_f, latent, seed)] = _run(
                client,
                exp,
                parent,
                i,
                _params(n_f, latent, beta, seed),
                _metrics(val),
                "FINISHED",
                {"fsvae.trial_key": f"grid:{i}"},
            )
            i += 1
    _run(
        client,
        exp,
        parent,
        i,
        _params(5, 8, 0.001, 4),
        {},
        "FAILED",
        {"fsvae.trial_key": f"grid:{i}"},
    )
    exp, parent = _parent(client, root, "s-partial", "grid", "", {"fsvae.confirms": "s"})
    for i, (latent, beta) in enumerate(PARTIAL):
        _run(
            client,
            exp,
            parent,
            i,
            _params(5, latent, beta, 1),
            _metrics(0.5),
            "FINISHED",
            {"fsvae.trial_key": f"grid:{i}"},
        )
    exp, parent = _parent(client, root, "g", "grid", "")
    _run(client, exp, parent, 0, _params(5, 8, 0.001, 0), _metrics(0.5), "FINISHED", {})
    return {"uri": uri, "search": search, "runs": runs}


def confirmation(store) -> results.Table:
    return results.load_table("s-confirm", tracking_uri=store["uri"])


def cell(t: results.Table, row: str, metric_set: str, metric: str) -> pd.Series:
    cells = tidy(t).set_index(["row", "metric_set", "metric"])
    return cells.loc[(row, metric_set, metric)]


# -- which configurations ----------------------------------------------------------------


def test_top_configurations_count_a_configuration_tried_twice_once(store):
    search = results.load_study("s", store["uri"])
    picks = top(ranked(search, "val_acc_h", "max"), 2)
    five = picks[picks["stratum"] == "n_f=5"]
    assert list(five["trial_key"]) == ["n_f=5#1", "n_f=5#2"]
    assert list(five["rank"]) == [1, 3]


def test_tied_trials_rank_by_start_the_earlier_first(store):
    search = results.load_study("s", store["uri"])
    ten = ranked(search, "val_acc_h", "max").query("stratum == 'n_f=10'")
    assert list(ten["trial_key"]) == ["n_f=10#1", "n_f=10#0", "n_f=10#2"]
    assert list(ten["rank"]) == [1, 2, 3]


def test_failed_trials_are_not_ranked(store):
    search = results.load_study("s", store["uri"])
    assert "n_f=5#3" not in set(ranked(search, "val_acc_h", "max")["trial_key"])


# -- the table -----------------------------------------------------------------------------


def test_the_confirms_tag_chooses_the_confirmation_table(store):
    t = confirmation(store)
    assert t.kind == "confirm"
    assert t.rows == ["n_f=5 rank 1", "n_f=5 rank 3", "n_f=10 rank 1", "n_f=10 rank 2"]


@pytest.mark.parametrize(
    "metric_set, metric, shift",
    [("val", "acc_h", 0.0), ("val", "acc", 10.0), ("test", "acc_h", -5.0), ("test", "acc", 5.0)],
)
def test_cells_are_the_mean_and_95_interval_over_the_seeds(store, metric_set, metric, shift):
    c = cell(confirmation(store), "n_f=10 rank 2", metric_set, metric)
    want = hand_stats([v * 100 + shift for v in CONFIRMED[(10, 64, 0.001)]])
    assert c["mean"] == pytest.approx(want["mean"])
    assert c["std"] == pytest.approx(want["std"])
    assert (c["ci95_low"], c["ci95_high"]) == (pytest.approx(want["lo"]), pytest.approx(want["hi"]))
    assert c["n"] == 3 and c["seeds"] == "1;2;3"


def test_a_cell_names_its_runs_and_the_search_trial_it_reruns(store):
    c = cell(confirmation(store), "n_f=5 rank 3", "val", "acc_h")
    assert c["run_ids"] == ";".join(store["runs"][(5, 8, s)] for s in SEEDS)
    assert c["trial_key"] == "n_f=5#2"
    assert c["search_run_id"] == store["search"]["n_f=5#2"]
    assert c["search_value"] == pytest.approx(55.0)
    assert (c["rank"], c["of"]) == (3, 4)
    assert c["params"] == "beta_max=0.001; latent_dim=8"


def test_the_best_mean_validation_objective_of_each_stratum_is_marked(store):
    cells = tidy(confirmation(store))
    assert set(cells.loc[cells["best"], "row"]) == {"n_f=5 rank 3", "n_f=10 rank 1"}


def test_the_sentence_says_when_the_search_best_is_no_longer_best(store):
    five = confirmation(store).summaries[0]
    assert five == (
        "n_f=5: the search's best (trial n_f=5#1) is no longer the best: rank 3 "
        "(trial n_f=5#2) has the higher mean val_acc_h, 58.00 (3 seeds) against "
        "52.00 (3 seeds); their 95% intervals overlap, so these seeds do not "
        "separate the two."
    )


def test_the_sentence_says_when_the_search_best_is_still_best(store):
    ten = confirmation(store).summaries[1]
    assert ten == (
        "n_f=10: the search's best (trial n_f=10#1) is still the best by mean "
        "val_acc_h: 64.00 (3 seeds) against 41.00 (3 seeds) for rank 2 (trial "
        "n_f=10#0)."
    )


def test_the_sentence_says_when_the_search_best_was_not_confirmed(store):
    [five] = results.load_table("s-partial", tracking_uri=store["uri"]).summaries
    assert five == (
        "n_f=5: the search's best (trial n_f=5#1) has no finished confirmation "
        "run, so whether it is still best is unknown."
    )


def test_a_configuration_the_search_never_tried_has_no_rank_and_a_note(store):
    t = results.load_table("s-partial", tracking_uri=store["uri"])
    assert t.rows == ["n_f=5 rank 3", "n_f=5 not in the search"]
    unranked = [md_cells(ln) for ln in t.to_markdown().splitlines() if "latent_dim=128" in ln]
    assert unranked[0][:4] == ["n_f=5", "–", "–", "–"]
    assert "Not among the search's finished trials (no rank): n_f=5 not in the search." in t.notes


def test_failed_runs_of_the_confirmation_are_counted_in_a_note(store):
    notes = confirmation(store).notes
    assert "Not shown: 1 failed run (status FAILED), 0 stopped runs (status KILLED)." in notes


def test_markdown_shows_a_row_per_configuration_and_the_sentences(store):
    md = confirmation(store).to_markdown()
    rows = [md_cells(ln) for ln in md.splitlines() if ln.startswith("| n_f=")]
    assert rows[1][:5] == ["n_f=5", "3 of 4", "n_f=5#2", "55.00", "1, 2, 3"]
    assert rows[1][5] == "**58.00 [53.03, 62.97]**"
    assert rows[3][5] == "41.00 [38.52, 43.48]"
    assert confirmation(store).summaries[0] in md


def test_latex_has_a_row_per_configuration_and_the_sentences_as_comments(store):
    tex = confirmation(store).to_latex()
    assert r"n\_f=5 & 3 of 4 & 55.0 & \textbf{58.0 [53.0, 63.0]}" in tex
    assert "% " + confirmation(store).summaries[1] in tex


def test_compare_and_with_paper_are_refused_for_a_confirmation(store):
    for kw in ({"compare": "vae:crt"}, {"with_paper": True}):
        with pytest.raises(results.ResultsError, match="confirms the search 's'"):
            results.load_table("s-confirm", tracking_uri=store["uri"], **kw)


def test_cli_table_prints_the_confirmation(store, capsys):
    assert cli_main(["table", "--experiment", "s-confirm", "--tracking-uri", store["uri"]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("**s-confirm (confirmation of the search s)")
    assert "is still the best by mean val_acc_h" in out


# -- the command's input -------------------------------------------------------------------


def test_seeds_are_read_as_ranges_and_lists():
    assert parse_seeds("1-3") == [1, 2, 3]
    assert parse_seeds("7, 1-2,2") == [1, 2, 7]


@pytest.mark.parametrize("spec", ["3-1", "a", "", "1-", "-2"])
def test_a_bad_seeds_spec_is_an_error_naming_it(spec):
    with pytest.raises(StudyError, match=f"--seeds '{spec}'.*expected comma-separated"):
        parse_seeds(spec)


def test_default_seeds_are_the_five_after_the_largest_the_search_used():
    assert default_seeds({0}) == [1, 2, 3, 4, 5]
    assert default_seeds({0, 7, 3}) == [8, 9, 10, 11, 12]


def test_cli_bad_seeds_exits_2_naming_the_spec(store, capsys):
    rc = cli_main(
        ["confirm", "--experiment", "s", "--tracking-uri", store["uri"], "--seeds", "5-2"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--seeds '5-2': the range 5-2 runs backwards" in err[0]


def test_cli_refuses_seeds_the_search_used(store, capsys):
    rc = cli_main(
        ["confirm", "--experiment", "s", "--tracking-uri", store["uri"], "--seeds", "0-2"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "the search used seed(s) 0" in err and "default: 1-5" in err


def test_cli_refuses_a_grid_experiment(store, capsys):
    rc = cli_main(["confirm", "--experiment", "g", "--tracking-uri", store["uri"]])
    err = capsys.readouterr().err
    assert rc == 2
    assert (
        "experiment 'g' is a grid study; confirm reruns the best configurations of an "
        "Optuna search" in err
    )


def test_cli_refuses_a_confirmation(store, capsys):
    rc = cli_main(["confirm", "--experiment", "s-confirm", "--tracking-uri", store["uri"]])
    assert rc == 2 and "is itself a confirmation (of 's')" in capsys.readouterr().err
