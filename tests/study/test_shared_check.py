"""The check every node runs before its trials: it reads back the markers the driver wrote
into the study's storage and cache, and finds the dataset. A node that sees another folder
at the same path (its own disk) fails it with an error naming the node and the path."""

from __future__ import annotations

import json

import pytest

from study.driver.cluster import SharedStorageError, check_shared, write_markers
from study.plan.plan import Plan


@pytest.fixture
def study(tmp_path):
    plan = Plan(
        name="s",
        storage=str(tmp_path / "studies"),
        space={},
        space_path="",
        space_text="",
        data=str(tmp_path / "data"),
        preset="tiny",
        base={},
        tracking_uri=f"sqlite:///{tmp_path / 'studies' / 'mlflow.db'}",
        cache_dir=str(tmp_path / "cache"),
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "mlflow.db").write_bytes(b"")
    marker = write_markers(plan, str(tmp_path / "studies" / "s"))
    return plan, marker, tmp_path


def test_a_node_that_sees_the_driver_s_files_passes(study):
    plan, marker, _ = study
    assert [f for f, _ in marker["files"]][1].startswith(plan.cache_dir)
    check_shared(marker)  # raises if not


def test_a_node_without_the_study_s_marker_names_the_path_and_says_it_is_missing(study):
    _, marker, tmp = study
    (tmp / "studies" / "s" / ".fsvae-shared-check.json").unlink()
    with pytest.raises(
        SharedStorageError,
        match=r"cannot see .*\.fsvae-shared-check\.json.*"
        r"missing there.*--storage",
    ):
        check_shared(marker)


def test_a_node_with_another_copy_of_the_cache_is_told_so(study):
    _, marker, tmp = study
    other = tmp / "cache" / ".fsvae-shared-check-s.json"
    other.write_text(json.dumps({"token": "someone else's"}))
    with pytest.raises(SharedStorageError, match=r"another copy there.*stage cache"):
        check_shared(marker)


def test_a_node_without_the_dataset_is_told_where_it_should_be(study):
    _, marker, tmp = study
    (tmp / "data").rmdir()
    with pytest.raises(SharedStorageError, match=r"has no dataset at .*data"):
        check_shared(marker)


def test_a_node_that_cannot_see_the_sqlite_record_is_told_to_use_a_server(study):
    _, marker, tmp = study
    (tmp / "studies" / "mlflow.db").unlink()  # as on a node whose disk does not hold it
    with pytest.raises(
        SharedStorageError,
        match=r"cannot see the MLflow store .*mlflow\.db.*"
        r"mlflow server --backend-store-uri "
        r"postgresql://",
    ):
        check_shared(marker)
