"""A real search (the shipped smoke-search, 4 trials at seed 0) confirmed with `fsvae-study
confirm --top 2 --seeds 1-3`: its two best configurations rerun with three new seeds as a
grid study, the two parent runs linked, one backbone built per seed, and a table whose
numbers are the runs'."""

from __future__ import annotations

import pytest

import results
from helpers import FAST, cli, hand_stats, make_data, runs, tracking_uri, trial_runs

pytestmark = pytest.mark.slow

BOOKKEEPING = ("data", "data_workers", "device", "seed")


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("confirm")
    data = make_data(tmp / "data")
    storage = tmp / "studies"
    search = cli(
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "s",
        "--num-samples",
        "4",
        *FAST,
    )
    assert search.returncode == 0, search.stdout + search.stderr
    confirm = cli(
        "confirm", "--experiment", "s", "--storage", str(storage), "--top", "2", "--seeds", "1-3"
    )
    uri = tracking_uri(storage)
    return {
        "confirm": confirm,
        "uri": uri,
        "storage": storage,
        "search": trial_runs(uri, "s"),
        "runs": trial_runs(uri, "s-confirm"),
    }


def configuration(run) -> tuple:
    """A run's params but the seed and where it ran: what a confirmation must keep."""
    return tuple(
        sorted(
            (c[len("params.") :], v)
            for c, v in run.items()
            if c.startswith("params.")
            and isinstance(v, str)
            and c[len("params.") :] not in BOOKKEEPING
        )
    )


def top_two(search) -> list[tuple]:
    """The search's two best configurations by val_acc_h (ties: the lowest trial number,
    worked out here from the trial key "n_f=5#<number>")."""
    ok = search[search["status"] == "FINISHED"]
    number = ok["tags.fsvae.trial_key"].str.rsplit("#", n=1).str[1].astype(int)
    ok = ok.assign(_number=number).sort_values("_number", kind="stable")
    ranked = ok.sort_values("metrics.val_acc_h", ascending=False, kind="stable")
    return list(dict.fromkeys(configuration(r) for _, r in ranked.iterrows()))[:2]


def test_confirm_runs_to_its_end_and_says_what_it_reruns(confirmed):
    out = confirmed["confirm"]
    assert out.returncode == 0, out.stdout + out.stderr
    assert "confirm s: seeds 1-3 x 2 configuration(s) = 6 trials" in out.stdout
    assert "n_f=5: rank 1 (trial n_f=5#" in out.stdout


def test_the_top_two_configurations_rerun_with_each_new_seed(confirmed):
    rerun = confirmed["runs"]
    assert len(rerun) == 6 and set(rerun["status"]) == {"FINISHED"}
    by_config: dict[tuple, set] = {}
    for _, run in rerun.iterrows():
        by_config.setdefault(configuration(run), set()).add(run["params.seed"])
    assert set(by_config) == set(top_two(confirmed["search"]))
    assert all(seeds == {"1", "2", "3"} for seeds in by_config.values())


def test_both_parent_runs_name_each_other(confirmed):
    parents = {
        name: runs(confirmed["uri"], name).query("`tags.fsvae.role` == 'study'")
        for name in ("s", "s-confirm")
    }
    assert list(parents["s-confirm"]["tags.fsvae.confirms"]) == ["s"]
    assert list(parents["s"]["tags.fsvae.confirmed_by"]) == ["s-confirm"]


def test_one_backbone_is_built_per_seed_and_reused_by_the_other_configuration(confirmed):
    rerun = confirmed["runs"]
    keys = {}
    for seed, group in rerun.groupby("params.seed"):
        assert group["tags.cache.backbone.key"].nunique() == 1, seed
        assert sorted(group["tags.cache.backbone"]) == ["hit", "miss"], seed
        keys[seed] = group["tags.cache.backbone.key"].iloc[0]
    assert len(set(keys.values())) == 3
    assert not set(keys.values()) & set(confirmed["search"]["tags.cache.backbone.key"])


def test_the_table_cells_are_the_runs_mean_and_interval(confirmed):
    table = results.load_table("s-confirm", tracking_uri=confirmed["uri"])
    cells = table.cells.set_index(["run_ids", "metric_set", "metric"])
    rerun = confirmed["runs"].set_index("run_id")
    assert len(table.rows) == 2
    for run_ids in set(table.cells["run_ids"]):
        ids = run_ids.split(";")
        assert sorted(rerun.loc[ids, "params.seed"]) == ["1", "2", "3"]
        for metric_set in ("val", "test"):
            for metric in ("acc_h", "acc"):
                want = hand_stats(
                    list(rerun.loc[ids, f"metrics.{metric_set}_{metric}"] * 100), within=(0, 100)
                )
                got = cells.loc[(run_ids, metric_set, metric)]
                assert got["mean"] == pytest.approx(want["mean"])
                assert (got["ci95_low"], got["ci95_high"]) == (
                    pytest.approx(want["lo"]),
                    pytest.approx(want["hi"]),
                )


def test_the_table_ranks_each_configuration_in_the_search(confirmed):
    table = results.load_table("s-confirm", tracking_uri=confirmed["uri"])
    search = confirmed["search"].set_index("tags.fsvae.trial_key")
    first = table.cells.drop_duplicates("row").reset_index(drop=True)
    assert list(first["rank"]) == [1, 2]
    values = [search.loc[k, "metrics.val_acc_h"] for k in first["trial_key"]]
    assert values[0] >= values[1]
    assert first.loc[0, "search_value"] == pytest.approx(values[0] * 100)


def test_the_table_says_whether_the_search_best_is_still_best(confirmed):
    table = results.load_table("s-confirm", tracking_uri=confirmed["uri"])
    val = table.cells.query("metric_set == 'val' and metric == 'acc_h'").set_index("rank")
    held = val.loc[1, "mean"] >= val.loc[2, "mean"]
    [sentence] = table.summaries
    assert sentence.startswith("n_f=5: the search's best (trial n_f=5#")
    assert ("is still the best" in sentence) == held
    assert ("is no longer the best" in sentence) == (not held)


def test_the_table_command_prints_the_confirmation(confirmed):
    out = cli(
        "table", "--experiment", "s-confirm", "--storage", str(confirmed["storage"]), timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "(confirmation of the search s)" in out.stdout
    assert "n_f=5: the search's best (trial n_f=5#" in out.stdout
