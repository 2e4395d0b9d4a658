"""fsvae.predict: image files decoded as a dataset's are, classified by a packaged model;
files that do not decode are skipped and reported."""

from __future__ import annotations

import pytest
import torch

from fsvae import packaged, split
from fsvae.errors import DataError
from fsvae.predict import image_files, predict_files
from helpers import TINY, write_image


@pytest.fixture(scope="module")
def model(trials, stage_cache, tmp_path_factory):
    _, out = trials["vae"]
    return packaged.assemble(
        out / "model", stage_cache.root, tmp_path_factory.mktemp("predict") / "model"
    )


def test_a_file_gets_the_style_the_model_gives_its_decoded_dataset_image(model, demo_ds, demo_root):
    rows = split.gfsl_split(demo_ds, TINY["n_f"], 5, 0).test
    paths = [demo_root / demo_ds.paths[i] for i in rows]
    predicted, skipped = predict_files(model, paths)
    with torch.no_grad():
        probs = model(demo_ds.images[rows])
    assert skipped == []
    assert [p for p, _, _ in predicted] == [str(p) for p in paths]
    assert [s for _, s, _ in predicted] == [model.classes[i] for i in probs.argmax(1)]
    assert [p for _, _, p in predicted] == pytest.approx(probs.max(1).values.tolist(), abs=1e-5)


def test_files_that_do_not_decode_are_skipped_with_their_reason(model, tmp_path):
    good = write_image(tmp_path / "good.jpg", seed=1, size=24)
    (tmp_path / "notes.txt").write_text("not an image")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(write_image(tmp_path / "whole.jpg", 2, 24).read_bytes()[:200])
    predicted, skipped = predict_files(model, image_files(tmp_path))
    assert [p for p, _, _ in predicted] == [str(good), str(tmp_path / "whole.jpg")]
    assert dict(skipped).keys() == {str(truncated), str(tmp_path / "notes.txt")}
    assert dict(skipped)[str(tmp_path / "notes.txt")].startswith("not_image")
    assert dict(skipped)[str(truncated)].startswith("unreadable")


def test_image_files_are_every_file_under_the_folder_sorted_by_path(tmp_path):
    for rel in ("b.jpg", "a/z.png", "a/y/x.jpg", "c"):
        write_image(tmp_path / rel, seed=len(rel))
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == [
        "a/y/x.jpg",
        "a/z.png",
        "b.jpg",
        "c",
    ]


def test_a_missing_images_folder_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match="nowhere.*is not a directory"):
        image_files(tmp_path / "nowhere")


def test_an_empty_images_folder_is_a_data_error_naming_it(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="holds no file"):
        image_files(tmp_path)
