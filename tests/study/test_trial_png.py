"""A trial's PNG figures (study/figures/trial_png.py): what they show, read back from the pixels."""

from __future__ import annotations

import math
from typing import cast

from PIL import Image

from study.figures import trial_png
from study.hooks.bench_trial import synthetic_trial

C0 = (31, 119, 180)  # matplotlib's first colour, the first left-axis line of every panel


def rgb(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return r, g, b


def colours(path) -> set[tuple[int, int, int]]:
    img = Image.open(path)
    assert img.format == "PNG" and img.mode == "RGB"
    counts = img.getcolors(maxcolors=1 << 20)
    assert counts is not None  # None only past maxcolors, more than a figure holds
    # An RGB image's colours are (r, g, b) triples; PIL types them for every mode at once.
    return {cast(tuple[int, int, int], c) for _, c in counts}


def rows(stage: str, n: int, **values) -> list[dict]:
    return [{"stage": stage, "epoch": e, **{k: v(e) for k, v in values.items()}} for e in range(n)]


def test_a_trial_gets_its_curves_and_both_confusion_matrices(tmp_path):
    result = synthetic_trial("instant")(
        {"backbone_epochs": 3, "vae_epochs": 4, "classifier_epochs": 5}
    )
    paths = trial_png.trial_figures(result, tmp_path)
    assert [p.name for p in paths] == ["curves.png", "confusion_val.png", "confusion_test.png"]
    curves = Image.open(paths[0])
    assert curves.size == (3 * trial_png.PANEL_W, trial_png.PANEL_H)  # all three stages
    for colour in (C0, rgb(trial_png.COLORS[1]), rgb(trial_png.COLORS[2])):
        assert colour in colours(paths[0])


def test_the_curves_have_one_panel_per_stage_present(tmp_path):
    history = rows("classifier", 4, train_loss=lambda e: 1 / (e + 1), val_acc=lambda e: e / 4)
    path = trial_png.curves(history, tmp_path / "c.png", "title")
    assert Image.open(path).size == (trial_png.PANEL_W, trial_png.PANEL_H)
    assert C0 in colours(path)


def test_no_stage_with_an_epoch_draws_nothing(tmp_path):
    history = [{"stage": "cache", "name": "data"}, {"stage": "vae", "best_epoch": 0}]
    assert trial_png.curves(history, tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_missing_constant_and_single_values_are_drawn_without_failing(tmp_path):
    history = (
        rows("vae", 1, recon=lambda e: 2.0, kl=lambda e: None, beta=lambda e: 0.0)
        + rows(
            "classifier",
            5,
            train_loss=lambda e: [1.0, math.nan, None, 0.5, math.inf][e],
            train_acc=lambda e: 0.5,
            val_acc=lambda e: None,
            val_acc_h=lambda e: None,
        )
        + [{"stage": "classifier", "best_epoch": 3}]
    )
    path = trial_png.curves(history, tmp_path / "c.png")
    assert Image.open(path).size == (2 * trial_png.PANEL_W, trial_png.PANEL_H)
    assert C0 in colours(path)  # the classifier's loss, drawn around its gaps


def test_the_confusion_matrix_shades_counts_as_blues_from_blank_to_the_largest(tmp_path):
    classes = ["a", "b", "c"]
    matrix = [[9, 0, 0], [0, 5, 1], [0, 0, 0]]
    path = trial_png.confusion(matrix, classes, ["c"], tmp_path / "m.png", "val")
    img = Image.open(path)
    blues = trial_png._blues()
    found = colours(path)
    assert blues[255] in found and blues[0] in found  # 9 darkest, 0 lightest
    assert blues[round(5 / 9 * 255)] in found and blues[round(1 / 9 * 255)] in found
    bigger = trial_png.confusion([[1] * 6] * 6, classes * 2, [], tmp_path / "n.png", "val")
    assert Image.open(bigger).width > img.width  # one cell more per class


def test_an_all_zero_matrix_is_drawn_blank(tmp_path):
    path = trial_png.confusion([[0, 0], [0, 0]], ["a", "b"], ["a"], tmp_path / "m.png", "t")
    blues = trial_png._blues()
    assert blues[0] in colours(path) and blues[255] not in colours(path)
