"""fsvae.data's defect report: each defect demo_data writes, duplicates and label conflicts,
files listed outside the root."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import sys
from pathlib import Path

import pytest

from fsvae import data, demo_data
from helpers import make_fs14, quiet, write_image

# Where demo_data.make(defects=True) puts each defect, and what the reader must do with it.
DEFECTS = {
    "dataset/conservative/missing_0001.jpg": ("missing", "skipped"),
    "dataset/conservative/truncated_0001.jpg": ("unreadable", "skipped"),
    "dataset/conservative/notes_0001.jpg": ("not_image", "skipped"),
    "dataset/conservative/noext_0001": ("odd_extension", "kept"),
    "dataset/dressy/ドレス_0001.jpg": ("non_ascii_name", "kept"),
    "dataset/dressy/copy_0001.jpg": ("duplicate", "skipped"),
    "dataset/dressy/leak_0001.jpg": ("duplicate_across_splits", "skipped"),
    "dataset/conservative/conflict_0001.jpg": ("label_conflict", "skipped"),
    "dataset/dressy/conflict_0002.jpg": ("label_conflict", "skipped"),
    "dataset/../../outside_0001.jpg": ("outside_root", "refused"),
}


def rows_for(ds: data.Dataset, rel: str) -> list[dict]:
    return [p for p in ds.report["problems"] if p["file"] == rel]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- demo_data --------------------------------------------------------------------------------


def test_demo_data_with_defects_writes_one_file_of_each_defect_kind(tmp_path):
    info = demo_data.make(tmp_path / "d", per_class=10, image_size=8, defects=True)
    kinds = sorted({d["expect"] for d in info["defects"]})
    assert kinds == sorted(data.SKIPPED + data.NOTED)
    for kind in kinds:
        written = [d for d in info["defects"] if d["expect"] == kind]
        assert len(written) == {"label_conflict": 2}.get(kind, 1), kind


def test_demo_data_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        demo_data.make(tmp_path / "d", per_class=10, image_size=8)


# -- the defect report ------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(DEFECTS))
def test_reader_reports_each_demo_defect_with_its_kind_and_action(demo_ds, rel):
    kind, action = DEFECTS[rel]
    rows = rows_for(demo_ds, rel)
    assert [(r["problem"], r["action"], r["split"]) for r in rows] == [(kind, action, "train")]
    assert rows[0]["detail"]


def test_report_summary_counts_each_defect_kind(demo_ds):
    assert demo_ds.report["summary"] == {
        "missing": 1,
        "outside_root": 1,
        "not_image": 1,
        "unreadable": 1,
        "duplicate": 1,
        "duplicate_across_splits": 1,
        "label_conflict": 2,
        "odd_extension": 1,
        "non_ascii_name": 1,
    }


def test_report_has_one_problem_row_per_defect_and_none_for_clean_files(demo_ds):
    assert sorted(p["file"] for p in demo_ds.report["problems"]) == sorted(DEFECTS)


def test_report_split_counts_are_listed_and_usable_files(demo_ds):
    # 20 per class: 12 train, 2 val, 6 test; 10 defects + 1 ignored empty line in train.
    splits = demo_ds.report["splits"]
    assert splits["val"] == {"listed": 28, "usable": 28}
    assert splits["test"] == {"listed": 84, "usable": 84}
    assert splits["train"] == {"listed": 168 + 10, "usable": 168 + 2}


def test_skipped_and_refused_files_are_not_in_the_dataset(demo_ds):
    dropped = {rel for rel, (_, action) in DEFECTS.items() if action != "kept"}
    assert not dropped & set(demo_ds.paths)


def test_files_with_noted_defects_are_kept(demo_ds):
    kept = {rel for rel, (_, action) in DEFECTS.items() if action == "kept"}
    assert kept <= set(demo_ds.paths)


def test_reader_logs_the_report_counts(demo_loaded):
    _, lines = demo_loaded
    text = "\n".join(lines)
    assert "282 usable of 290 listed" in text
    assert "1 missing" in text and "1 odd_extension" in text and "1 outside_root" in text
    assert "train: 170 usable of 178 listed" in text


def test_duplicate_within_a_split_keeps_the_first_copy(demo_ds):
    row = rows_for(demo_ds, "dataset/dressy/copy_0001.jpg")[0]
    original = row["detail"].split(" as ")[1]
    assert original in demo_ds.paths
    assert demo_ds.split_of[demo_ds.paths.index(original)] == "train"


def test_duplicate_across_splits_is_kept_in_test_and_skipped_from_train(demo_ds, demo_root):
    leak = demo_root / "dataset/dressy/leak_0001.jpg"
    twins = [i for i, p in enumerate(demo_ds.paths) if sha(demo_root / p) == sha(leak)]
    assert [demo_ds.split_of[i] for i in twins] == ["test"]


def test_no_train_image_is_byte_identical_to_a_test_image(demo_ds, demo_root):
    digests = {
        s: {sha(demo_root / p) for p, sp in zip(demo_ds.paths, demo_ds.split_of) if sp == s}
        for s in data.SPLITS
    }
    assert not digests["train"] & digests["test"]
    assert not digests["val"] & digests["test"]


def test_duplicate_across_val_and_train_keeps_the_val_copy(tmp_path):
    root = make_fs14(
        tmp_path / "r",
        {
            "train": ["dataset/a/a1.jpg", "dataset/b/b1.jpg", "dataset/b/copy.jpg"],
            "val": ["dataset/a/a2.jpg", "dataset/b/b2.jpg"],
            "test": ["dataset/a/a3.jpg", "dataset/b/b3.jpg"],
        },
    )
    (root / "dataset/b/copy.jpg").write_bytes((root / "dataset/b/b2.jpg").read_bytes())
    ds = data.load(root, 8, workers=1, log=quiet)
    assert rows_for(ds, "dataset/b/copy.jpg")[0]["problem"] == "duplicate_across_splits"
    assert "dataset/b/b2.jpg" in ds.paths and "dataset/b/copy.jpg" not in ds.paths


def test_identical_files_under_two_classes_are_a_label_conflict_naming_both(tmp_path):
    root = make_fs14(
        tmp_path / "r",
        {
            "train": ["dataset/a/a1.jpg", "dataset/a/x.jpg", "dataset/b/b1.jpg", "dataset/b/y.jpg"],
            "val": ["dataset/a/a2.jpg", "dataset/b/b2.jpg"],
            "test": ["dataset/a/a3.jpg", "dataset/b/b3.jpg"],
        },
    )
    (root / "dataset/b/y.jpg").write_bytes((root / "dataset/a/x.jpg").read_bytes())
    ds = data.load(root, 8, workers=1, log=quiet)
    for rel in ("dataset/a/x.jpg", "dataset/b/y.jpg"):
        [row] = rows_for(ds, rel)
        assert (row["problem"], row["action"]) == ("label_conflict", "skipped")
        assert "classes 'a' and 'b'" in row["detail"]
        assert "dataset/a/x.jpg in train" in row["detail"]
        assert "dataset/b/y.jpg in train" in row["detail"]
    assert ds.report["summary"]["duplicate"] == 0


def test_every_copy_of_a_label_conflict_is_skipped_the_test_copy_too(tmp_path):
    root = make_fs14(
        tmp_path / "r",
        {
            "train": ["dataset/a/a1.jpg", "dataset/a/x.jpg", "dataset/b/b1.jpg"],
            "val": ["dataset/a/a2.jpg", "dataset/b/b2.jpg"],
            "test": ["dataset/a/a3.jpg", "dataset/b/b3.jpg", "dataset/b/y.jpg"],
        },
    )
    (root / "dataset/b/y.jpg").write_bytes((root / "dataset/a/x.jpg").read_bytes())
    ds = data.load(root, 8, workers=1, log=quiet)
    assert "dataset/a/x.jpg" not in ds.paths and "dataset/b/y.jpg" not in ds.paths
    assert [r["problem"] for r in rows_for(ds, "dataset/b/y.jpg")] == ["label_conflict"]
    assert ds.report["splits"]["test"] == {"listed": 3, "usable": 2}


def test_the_same_file_listed_twice_in_a_split_is_read_once(tmp_path):
    lists = {
        "train": ["dataset/a/a1.jpg", "dataset/a/a1.jpg"],
        "val": ["dataset/a/a2.jpg"],
        "test": ["dataset/a/a3.jpg"],
    }
    root = make_fs14(tmp_path / "r", lists)
    ds = data.load(root, 8, workers=1, log=quiet)
    assert ds.paths.count("dataset/a/a1.jpg") == 1
    assert rows_for(ds, "dataset/a/a1.jpg")[0]["detail"].startswith("same file listed again")


def test_truncated_jpeg_is_reported_unreadable(tmp_path):
    root = make_fs14(
        tmp_path / "r",
        {
            "train": ["dataset/a/a1.jpg", "dataset/a/cut.jpg"],
            "val": ["dataset/a/a2.jpg"],
            "test": ["dataset/a/a3.jpg"],
        },
    )
    whole = (root / "dataset/a/cut.jpg").read_bytes()
    (root / "dataset/a/cut.jpg").write_bytes(whole[: len(whole) // 2])
    ds = data.load(root, 8, workers=1, log=quiet)
    assert [r["problem"] for r in rows_for(ds, "dataset/a/cut.jpg")] == ["unreadable"]
    assert ds.report["splits"]["train"]["usable"] == 1


def test_odd_extension_of_a_file_skipped_as_unreadable_is_not_reported_kept(tmp_path):
    root = make_fs14(
        tmp_path / "r",
        {
            "train": ["dataset/a/a1.jpg", "dataset/a/cut.jfif"],
            "val": ["dataset/a/a2.jpg"],
            "test": ["dataset/a/a3.jpg"],
        },
    )
    whole = (root / "dataset/a/cut.jfif").read_bytes()
    (root / "dataset/a/cut.jfif").write_bytes(whole[: len(whole) // 2])
    ds = data.load(root, 8, workers=1, log=quiet)
    rows = rows_for(ds, "dataset/a/cut.jfif")
    assert [(r["problem"], r["action"]) for r in rows] == [
        ("odd_extension", "skipped"),
        ("unreadable", "skipped"),
    ]


def test_jpeg_and_png_are_ordinary_extensions_not_reported(tmp_path):
    # Real copies mix .jpg, .jpeg and .png: a report row for each would bury the defects.
    root = make_fs14(
        tmp_path / "r",
        {
            "train": ["dataset/a/a1.jpeg", "dataset/a/a2.png", "dataset/a/a3.jfif", "dataset/a/a4"],
            "val": ["dataset/a/v.jpg"],
            "test": ["dataset/a/t.jpg"],
        },
    )
    ds = data.load(root, 8, workers=1, log=quiet)
    odd = sorted(p["file"] for p in ds.report["problems"] if p["problem"] == "odd_extension")
    assert odd == ["dataset/a/a3.jfif", "dataset/a/a4"]


# -- outside the root -------------------------------------------------------------------------


class OpenWatch:
    """Records whether a file is opened, through Linux inotify (IN_OPEN | IN_ACCESS)."""

    IN_ACCESS, IN_OPEN = 0x1, 0x20

    def __init__(self, path: Path):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        if (
            self.fd < 0
            or libc.inotify_add_watch(self.fd, str(path).encode(), self.IN_OPEN | self.IN_ACCESS)
            < 0
        ):
            pytest.skip("inotify is not available")

    def opened(self) -> bool:
        try:
            return len(os.read(self.fd, 4096)) > 0
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self.fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses Linux inotify")
def test_listed_file_outside_the_root_is_refused_and_never_opened(tmp_path):
    outside = write_image(tmp_path / "outside.jpg", seed=123)  # exists, beside the root
    root = make_fs14(
        tmp_path / "root",
        {"train": ["dataset/a/a1.jpg"], "val": ["dataset/a/a2.jpg"], "test": ["dataset/a/a3.jpg"]},
    )
    with open(root / "train.csv", "a", encoding="utf-8") as f:
        f.write("dataset/../../outside.jpg\n")
    watch = OpenWatch(outside)
    try:
        ds = data.load(root, 8, workers=1, log=quiet)
        assert not watch.opened()
        outside.read_bytes()
        assert watch.opened()  # the watch works: reading the file is seen
    finally:
        watch.close()
    assert rows_for(ds, "dataset/../../outside.jpg")[0]["action"] == "refused"
    assert ds.report["splits"]["train"]["usable"] == 1


def test_symlink_inside_the_root_to_a_file_outside_is_refused(tmp_path):
    outside = write_image(tmp_path / "secret.jpg", seed=7)
    root = make_fs14(
        tmp_path / "root",
        {"train": ["dataset/a/a1.jpg"], "val": ["dataset/a/a2.jpg"], "test": ["dataset/a/a3.jpg"]},
    )
    (root / "dataset/a/link.jpg").symlink_to(outside)
    with open(root / "train.csv", "a", encoding="utf-8") as f:
        f.write("dataset/a/link.jpg\n")
    ds = data.load(root, 8, workers=1, log=quiet)
    assert [r["problem"] for r in rows_for(ds, "dataset/a/link.jpg")] == ["outside_root"]
    assert "dataset/a/link.jpg" not in ds.paths


def test_absolute_listed_path_is_refused(tmp_path):
    outside = write_image(tmp_path / "abs.jpg", seed=8)
    root = make_fs14(
        tmp_path / "root",
        {"train": ["dataset/a/a1.jpg"], "val": ["dataset/a/a2.jpg"], "test": ["dataset/a/a3.jpg"]},
    )
    with open(root / "train.csv", "a", encoding="utf-8") as f:
        f.write(f"{outside}\n")
    ds = data.load(root, 8, workers=1, log=quiet)
    assert rows_for(ds, str(outside))[0]["problem"] == "outside_root"
