"""Base/new class halves (CoOp's ``subsample_classes``): ceil(n/2) base classes, relabelled from 0, on every list."""
import pytest

from datasets.base import subsample_classes
from engine.data.datasets import DatasetError, Datum


def items(labels, prefix="x"):
    return [Datum(f"/{prefix}/{i}.jpg", label, 0, f"c{label}") for i, label in enumerate(labels)]


def test_37_pets_classes_split_19_base_18_new():
    train = items([y for y in range(37) for _ in range(2)])
    base, = subsample_classes(train, subsample="base")
    new, = subsample_classes(train, subsample="new")
    assert sorted({d.label for d in base}) == list(range(19))
    assert sorted({d.label for d in new}) == list(range(18))
    assert {d.classname for d in base} == {f"c{y}" for y in range(19)}
    assert {d.classname for d in new} == {f"c{y}" for y in range(19, 37)}
    assert len(base) == 38 and len(new) == 36


@pytest.mark.parametrize("n, m", [(1, 1), (2, 1), (5, 3), (10, 5), (47, 24), (101, 51), (397, 199), (1000, 500)])
def test_base_is_ceil_half(n, m):
    train = items(range(n))
    base, = subsample_classes(train, subsample="base")
    new, = subsample_classes(train, subsample="new")
    assert len(base) == m and len(new) == n - m


def test_relabelling_uses_sorted_labels_of_the_first_list():
    # Non-contiguous labels in shuffled order: sorted unique = [2, 5, 7, 9, 11] -> base {2, 5, 7}, new {9, 11}.
    train = items([9, 2, 11, 5, 7, 2])
    val = items([7, 11, 2], prefix="v")
    test = items([5, 9, 13, 2], prefix="t")  # 13 never appears in train: it belongs to neither half
    base = subsample_classes(train, val, test, subsample="base")
    new = subsample_classes(train, val, test, subsample="new")
    relabel_base, relabel_new = {2: 0, 5: 1, 7: 2}, {9: 0, 11: 1}
    for kept, relabel in ((base, relabel_base), (new, relabel_new)):
        for before, after in zip((train, val, test), kept):
            expected = [(d.impath, relabel[d.label], d.classname) for d in before if d.label in relabel]
            assert [(d.impath, d.label, d.classname) for d in after] == expected


def test_all_returns_lists_unchanged():
    train, test = items([3, 1]), items([1, 4])
    assert subsample_classes(train, test, subsample="all") == [train, test]


def test_unknown_subsample_is_one_clear_error():
    with pytest.raises(DatasetError, match="SUBSAMPLE_CLASSES must be one of all, base, new"):
        subsample_classes(items([0, 1]), subsample="novel")
