"""`from results import load_table`: the table command's options as a Python function, for
notebooks."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from results_store import EXPECTED, shared_store

import results
from results import ResultsError, load_table


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


def test_the_docstring_example_runs_as_written():
    failed, attempted = doctest.testmod(results, verbose=False)
    assert attempted > 0 and failed == 0


def test_load_table_finds_the_store_under_storage_and_its_cells_are_a_dataframe(store):
    storage = Path(store["uri"].removeprefix("sqlite:///")).parent
    table = load_table("grid", storage=storage)
    cell = table.cells.set_index(["row", "n_f", "metric"]).loc[("plain", 5, "acc_h")]
    assert cell["mean"] == pytest.approx(2.0) and cell["n"] == 3  # seeds 0, 2, 4 percent
    assert len(table.cells) == len(EXPECTED)


def test_load_table_renders_every_format_of_the_command(store):
    table = load_table("grid", tracking_uri=store["uri"])
    assert table.render("markdown") == table.to_markdown() == table._repr_markdown_()
    assert table.render("latex") == table.to_latex()
    assert table.render("csv") == table.to_csv()


def test_a_bad_metric_set_is_named():
    with pytest.raises(ResultsError, match=r"metric_set='train': expected one of test, val"):
        load_table("grid", tracking_uri="sqlite:////nowhere/mlflow.db", metric_set="train")


def test_bad_compare_syntax_fails_before_the_store_is_read(tmp_path):
    with pytest.raises(ResultsError, match="expected A:B"):
        load_table("grid", storage=tmp_path / "none", compare="vae")


def test_a_bad_acc_h_is_named():
    with pytest.raises(ResultsError, match=r"acc_h='images': expected one of classes, samples"):
        load_table("grid", tracking_uri="sqlite:////nowhere/mlflow.db", acc_h="images")
