"""fsvae.split: the GFSL split (docs/trial.md#the-gfsl-split)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from fsvae import split
from fsvae.split import SplitError


def per_class(ds, idx) -> list[int]:
    return torch.bincount(ds.labels[idx], minlength=len(ds.classes)).tolist()


def available(ds, name: str) -> list[int]:
    return per_class(ds, ds.indices(name))


def test_minority_classes_have_exactly_n_f_train_images(demo_ds):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0)
    counts = per_class(demo_ds, sp.train)
    assert [counts[c] for c in sp.minority] == [5] * 5


def test_minority_val_has_n_f_images_when_more_are_available(demo_ds):
    # The demo has 2 val images per class.
    sp = split.gfsl_split(demo_ds, n_f=1, num_minority=5, seed=0)
    counts = per_class(demo_ds, sp.val)
    assert [counts[c] for c in sp.minority] == [1] * 5


def test_minority_val_keeps_all_images_when_fewer_than_n_f(demo_ds):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0)
    counts, have = per_class(demo_ds, sp.val), available(demo_ds, "val")
    assert [counts[c] for c in sp.minority] == [min(5, have[c]) for c in sp.minority] == [2] * 5


def test_majority_classes_keep_every_train_and_val_image(demo_ds):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0)
    majority = [c for c in range(len(demo_ds.classes)) if c not in sp.minority]
    for name in ("train", "val"):
        counts, have = per_class(demo_ds, getattr(sp, name)), available(demo_ds, name)
        assert [counts[c] for c in majority] == [have[c] for c in majority], name


def test_test_set_is_never_subsampled(demo_ds):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=3)
    assert sp.test.tolist() == demo_ds.indices("test").tolist()


def test_num_minority_classes_are_chosen(demo_ds):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=3, seed=0)
    assert len(sp.minority) == len(set(sp.minority)) == 3


def test_same_seed_gives_the_same_split(demo_ds):
    a = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=11)
    b = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=11)
    assert split.to_dict(a) == split.to_dict(b)


def test_another_seed_gives_other_minority_classes(demo_ds):
    first = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0).minority
    others = [
        split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=s).minority for s in (1, 2, 3, 4)
    ]
    assert any(m != first for m in others)


def test_minority_classes_do_not_depend_on_n_f(demo_ds):
    small = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=7)
    large = split.gfsl_split(demo_ds, n_f=10, num_minority=5, seed=7)
    assert small.minority == large.minority


def test_n_f_5_train_set_is_inside_the_n_f_10_train_set(demo_ds):
    small = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=7)
    large = split.gfsl_split(demo_ds, n_f=10, num_minority=5, seed=7)
    assert set(small.train.tolist()) < set(large.train.tolist())


def test_no_image_index_is_in_two_splits(demo_ds):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0)
    parts = [set(t.tolist()) for t in (sp.train, sp.val, sp.test)]
    assert sum(len(p) for p in parts) == len(set().union(*parts))
    for idx, name in zip(parts, ("train", "val", "test")):
        assert {demo_ds.split_of[i] for i in idx} == {name}


def test_no_train_image_is_byte_identical_to_a_test_image(demo_ds, demo_root):
    # The demo lists a train copy of a test image; the reader drops it before the split.
    sp = split.gfsl_split(demo_ds, n_f=10, num_minority=5, seed=0)

    def digests(idx):
        return {
            hashlib.sha256((demo_root / demo_ds.paths[i]).read_bytes()).hexdigest()
            for i in idx.tolist()
        }

    assert not digests(sp.train) & digests(sp.test)


def test_n_f_larger_than_available_raises_split_error_naming_the_class(demo_ds):
    with pytest.raises(SplitError, match="n_f=100: minority class '.*' has only 1[2-5] usable"):
        split.gfsl_split(demo_ds, n_f=100, num_minority=5, seed=0)


@pytest.mark.parametrize("num_minority", [0, 14, 20])
def test_num_minority_out_of_range_raises_split_error(demo_ds, num_minority):
    with pytest.raises(SplitError, match=f"num_minority={num_minority}: expected 1..13"):
        split.gfsl_split(demo_ds, n_f=5, num_minority=num_minority, seed=0)


def test_save_writes_one_file_list_per_split(demo_ds, tmp_path):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0)
    split.save(demo_ds, sp, tmp_path / "split")
    for name in ("train", "val", "test"):
        lines = (tmp_path / "split" / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        expected = [
            f"{demo_ds.paths[i]}\t{demo_ds.classes[demo_ds.labels[i]]}"
            for i in getattr(sp, name).tolist()
        ]
        assert lines == expected, name


def test_save_writes_minority_classes_and_counts(demo_ds, tmp_path):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0)
    split.save(demo_ds, sp, tmp_path)
    meta = json.loads((tmp_path / "split.json").read_text(encoding="utf-8"))
    names = [demo_ds.classes[c] for c in sp.minority]
    assert meta["minority_classes"] == names
    assert (meta["n_f"], meta["num_minority"], meta["seed"]) == (5, 5, 0)
    assert all(meta["counts"]["train"][n] == 5 for n in names)


def test_split_round_trips_through_a_dict(demo_ds):
    sp = split.gfsl_split(demo_ds, n_f=5, num_minority=5, seed=0)
    back = split.from_dict(json.loads(json.dumps(split.to_dict(sp))))
    assert split.to_dict(back) == split.to_dict(sp)
