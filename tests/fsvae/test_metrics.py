"""fsvae.metrics against hand-computed cases (docs/method.md#metrics)."""

import pytest
import torch

from fsvae.metrics import compute, confusion, harmonic

CLASSES = ["a", "b", "c", "d"]
MINORITY = [2, 3]


def run(y_true, y_pred, minority=MINORITY, classes=CLASSES, prefix=""):
    return compute(torch.tensor(y_true), torch.tensor(y_pred), minority, classes, prefix)


# Majority a: 4 samples, 4 right; b: 2 samples, 0 right. Minority c: 1 of 1; d: 1 of 3.
Y_TRUE = [0, 0, 0, 0, 1, 1, 2, 3, 3, 3]
Y_PRED = [0, 0, 0, 0, 0, 2, 2, 3, 0, 1]


def test_acc_is_the_sample_accuracy_over_all_classes():
    m, _ = run(Y_TRUE, Y_PRED)
    assert m["acc"] == pytest.approx(6 / 10)


def test_group_accuracy_is_the_mean_of_per_class_accuracies():
    m, _ = run(Y_TRUE, Y_PRED)
    assert m["acc_majority"] == pytest.approx((4 / 4 + 0 / 2) / 2)
    assert m["acc_minority"] == pytest.approx((1 / 1 + 1 / 3) / 2)


def test_samples_variants_are_sample_weighted():
    m, _ = run(Y_TRUE, Y_PRED)
    assert m["acc_majority_samples"] == pytest.approx(4 / 6)
    assert m["acc_minority_samples"] == pytest.approx(2 / 4)
    assert m["acc_h_samples"] == pytest.approx(2 * (4 / 6) * (2 / 4) / (4 / 6 + 2 / 4))


def test_acc_h_is_the_harmonic_mean_of_the_group_accuracies():
    m, _ = run(Y_TRUE, Y_PRED)
    maj, mnr = 0.5, 2 / 3
    assert m["acc_h"] == pytest.approx(2 * maj * mnr / (maj + mnr))


def test_acc_h_is_zero_when_the_minority_group_is_zero():
    m, _ = run([0, 1, 2, 3], [0, 1, 0, 0])
    assert (m["acc_majority"], m["acc_minority"], m["acc_h"]) == (1.0, 0.0, 0.0)


def test_acc_h_is_zero_when_the_majority_group_is_zero():
    m, _ = run([0, 1, 2, 3], [2, 2, 2, 3])
    assert (m["acc_majority"], m["acc_minority"], m["acc_h"]) == (0.0, 1.0, 0.0)


def test_acc_h_is_zero_when_both_groups_are_zero():
    m, _ = run([0, 1, 2, 3], [1, 0, 3, 2])
    assert (m["acc"], m["acc_h"], m["acc_h_samples"]) == (0.0, 0.0, 0.0)


def test_harmonic_of_zeros_is_zero():
    assert harmonic(0.0, 0.0) == 0.0
    assert harmonic(0.5, 1.0) == pytest.approx(2 / 3)


def test_confusion_rows_are_true_classes_and_columns_predictions():
    cm = confusion(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 2]), 3)
    assert cm.tolist() == [[0, 2, 0], [0, 0, 1], [0, 0, 0]]


def test_compute_returns_the_confusion_matrix_row_true():
    _, cm = run(Y_TRUE, Y_PRED)
    assert cm[3] == [1, 1, 0, 1]  # true d: predicted a, b, d once each
    assert [row[0] for row in cm] == [4, 1, 0, 1]


def test_classes_absent_from_the_evaluated_set_are_left_out_of_the_means():
    # No sample of class b: the majority mean is class a's accuracy alone.
    m, _ = run([0, 0, 2, 3], [0, 1, 2, 3])
    assert m["acc_majority"] == pytest.approx(0.5)
    assert "class_acc/b" not in m


def test_per_class_accuracy_is_reported_by_name():
    m, _ = run(Y_TRUE, Y_PRED)
    assert m["class_acc/a"] == 1.0 and m["class_acc/d"] == pytest.approx(1 / 3)


def test_mean_class_accuracy_averages_every_present_class():
    m, _ = run(Y_TRUE, Y_PRED)
    assert m["acc_mean_class"] == pytest.approx((1 + 0 + 1 + 1 / 3) / 4)


def test_prefix_is_put_before_every_key():
    m, _ = run(Y_TRUE, Y_PRED, prefix="val_")
    assert m and all(k.startswith("val_") for k in m)
    assert m["val_acc"] == pytest.approx(0.6)
