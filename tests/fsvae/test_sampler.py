"""fsvae.sampler: the rows one epoch visits, minority rows repeated (stages 1 and 3)."""

import pytest
import torch

from fsvae.sampler import repeat_minority


def test_repeat_minority_gives_majority_rows_plus_factor_times_minority_rows():
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 3])
    rows = repeat_minority(labels, [2, 3], 30)
    assert len(rows) == 4 + 30 * 3


def test_repeat_minority_repeats_each_minority_row_factor_times_and_others_once():
    labels = torch.tensor([0, 0, 1, 2, 2, 3])
    rows = repeat_minority(labels, [2, 3], 5)
    assert torch.bincount(rows, minlength=6).tolist() == [1, 1, 1, 5, 5, 5]


def test_repeat_minority_with_factor_one_is_every_row_once():
    labels = torch.tensor([0, 1, 2])
    assert repeat_minority(labels, [2], 1).tolist() == [0, 1, 2]


@pytest.mark.parametrize("factor", [0, -3, 2.5])
def test_repeat_minority_refuses_a_factor_that_is_not_a_positive_integer(factor):
    with pytest.raises(ValueError, match=f"sampling factor {factor!r}: expected an integer >= 1"):
        repeat_minority(torch.tensor([0, 1]), [1], factor)
