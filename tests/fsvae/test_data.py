"""fsvae.data: what a Dataset holds, its layouts, and the datasets it refuses."""

from __future__ import annotations

import pytest
import torch

from fsvae import data, demo_data
from fsvae.data import DataError
from helpers import make_folders, make_fs14, quiet, write_image

# -- what a Dataset holds ---------------------------------------------------------------------


def test_images_are_square_uint8_tensors_of_load_size(demo_ds):
    assert demo_ds.images.dtype == torch.uint8
    assert tuple(demo_ds.images.shape) == (len(demo_ds.paths), 3, 18, 18)


def test_label_of_each_image_is_its_folder_class(demo_ds):
    for path, label in zip(demo_ds.paths, demo_ds.labels.tolist()):
        assert path.split("/")[-2] == demo_ds.classes[label]


def test_fashionstyle14_classes_are_the_fourteen_styles(demo_ds):
    assert demo_ds.layout == "fashionstyle14"
    assert demo_ds.classes == sorted(demo_data.CLASSES)


def test_saved_dataset_restores_equal(demo_ds, tmp_path):
    data.save(demo_ds, tmp_path)
    back = data.restore(tmp_path)
    assert torch.equal(back.images, demo_ds.images) and torch.equal(back.labels, demo_ds.labels)
    assert (back.paths, back.split_of, back.classes, back.content_hash, back.report) == (
        demo_ds.paths,
        demo_ds.split_of,
        demo_ds.classes,
        demo_ds.content_hash,
        demo_ds.report,
    )


def test_decoding_in_worker_processes_gives_the_same_dataset(demo_root, demo_ds):
    # 288 files to decode: above the 256 where the reader uses a process pool.
    parallel = data.load(demo_root, load_size=18, workers=2, log=quiet)
    assert torch.equal(parallel.images, demo_ds.images)
    assert (parallel.paths, parallel.content_hash, parallel.report) == (
        demo_ds.paths,
        demo_ds.content_hash,
        demo_ds.report,
    )


def test_fingerprint_changes_when_a_listed_file_changes(tmp_path):
    root = make_fs14(
        tmp_path / "r",
        {"train": ["dataset/a/a1.jpg"], "val": ["dataset/a/a2.jpg"], "test": ["dataset/a/a3.jpg"]},
    )
    before = data.fingerprint(root)
    assert data.fingerprint(root) == before
    write_image(root / "dataset/a/a2.jpg", seed=555, size=14)
    assert data.fingerprint(root) != before


# -- layouts and unusable datasets ------------------------------------------------------------


def test_folders_layout_reads_split_class_file(tmp_path):
    root = make_folders(
        tmp_path / "r",
        {"train": {"cat": 3, "dog": 2}, "val": {"cat": 1, "dog": 1}, "test": {"cat": 2, "dog": 1}},
    )
    ds = data.load(root, 8, workers=1, log=quiet)
    assert ds.layout == "folders" and ds.classes == ["cat", "dog"]
    assert {s: c["usable"] for s, c in ds.report["splits"].items()} == {
        "train": 5,
        "val": 2,
        "test": 3,
    }
    assert "train/cat/cat_0.jpg" in ds.paths
    assert ds.labels[ds.paths.index("test/dog/dog_0.jpg")].item() == 1


def test_root_in_neither_layout_raises_data_error(tmp_path):
    (tmp_path / "r" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="neither layout"):
        data.load(tmp_path / "r", 8, log=quiet)


def test_missing_root_raises_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match="nowhere.*not a directory"):
        data.load(tmp_path / "nowhere", 8, log=quiet)


def test_class_with_no_usable_image_in_a_split_raises_data_error_naming_both(tmp_path):
    root = make_folders(
        tmp_path / "r",
        {"train": {"cat": 2, "dog": 2}, "val": {"cat": 1, "dog": 1}, "test": {"cat": 1}},
    )
    (root / "test" / "dog").mkdir()
    (root / "test" / "dog" / "readme.jpg").write_text("not a picture")
    with pytest.raises(DataError, match="dog.*'test'"):
        data.load(root, 8, workers=1, log=quiet)


def test_split_with_no_usable_image_raises_data_error_naming_it(tmp_path):
    root = make_folders(tmp_path / "r", {"train": {"cat": 2}, "test": {"cat": 1}})
    (root / "val" / "cat").mkdir(parents=True)
    (root / "val" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(DataError, match="split 'val' has no usable image"):
        data.load(root, 8, workers=1, log=quiet)


def test_dataset_listing_nothing_raises_data_error(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    for split in data.SPLITS:
        (root / f"{split}.csv").write_text("")
    with pytest.raises(DataError, match="lists no file"):
        data.load(root, 8, log=quiet)
