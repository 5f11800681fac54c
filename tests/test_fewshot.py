"""Few-shot subsets: CoOp's exact picks for a seed, the JSON cache and its key, CoOp's own pickles."""
import json
import logging
import os
import pickle
import random
import shutil
import sys
import types
from collections import defaultdict

import pytest

from datasets.base import split_sha256
from datasets.dtd import DescribableTextures
from engine.data.datasets import DatasetBase, Datum
from tests.fakes import make_cfg, make_dtd, write_split

CLASSES = ("banded", "blotchy", "braided", "bubbly", "zigzagged")


def coop_picks(train, val, num_shots, seed):
    """CoOp's few-shot code run as CoOp runs it: ``random.seed(seed)`` (train.py), then Dassl's
    ``generate_fewshot_dataset`` on train with k shots and on val with min(k, 4), using the GLOBAL ``random``."""
    state = random.getstate()
    try:
        random.seed(seed)
        out = []
        for source, k in ((train, num_shots), (val, min(num_shots, 4))):
            tracker = defaultdict(list)
            for item in source:
                tracker[item.label].append(item)
            dataset = []
            for label, group in tracker.items():
                dataset.extend(random.sample(group, k) if len(group) >= k else group)
            out.append(dataset)
        return out
    finally:
        random.setstate(state)


def triples(items):
    return [(d.impath, d.label, d.classname) for d in items]


# --- generate_fewshot_dataset ----------------------------------------------------------------------------------------
def labelled(labels):
    return [Datum(f"/d/{i}.jpg", y, 0, f"c{y}") for i, y in enumerate(labels)]


def test_keeps_k_per_class_in_first_appearance_label_order():
    data = labelled([2, 0, 2, 1, 0, 2, 1, 0, 2])
    picked = DatasetBase().generate_fewshot_dataset(data, num_shots=2, rng=random.Random(5))
    assert [d.label for d in picked] == [2, 2, 0, 0, 1, 1]  # label 2 appears first, then 0, then 1
    assert set(picked) <= set(data) and len(set(picked)) == 6


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 12345])
def test_same_picks_as_global_random_after_seed(seed):
    train = labelled([y for _ in range(9) for y in (3, 1, 4, 0, 2)])
    val = labelled([y for _ in range(5) for y in (1, 0, 4, 2, 3)])
    base = DatasetBase()
    rng = random.Random(seed)
    got_train = base.generate_fewshot_dataset(train, num_shots=4, rng=rng)
    got_val = base.generate_fewshot_dataset(val, num_shots=min(4, 4), rng=rng)
    want_train, want_val = coop_picks(train, val, 4, seed)
    assert triples(got_train) == triples(want_train) and triples(got_val) == triples(want_val)


def test_seed_changes_the_picks_and_global_random_is_untouched():
    data = labelled([y for _ in range(20) for y in range(5)])
    base = DatasetBase()
    state = random.getstate()
    picks = {s: triples(base.generate_fewshot_dataset(data, num_shots=3, rng=random.Random(s))) for s in (0, 1, 2)}
    assert random.getstate() == state
    assert picks[0] != picks[1] != picks[2] != picks[0]


def test_small_classes_keep_everything_or_repeat():
    data = labelled([0, 0, 0, 1])
    base = DatasetBase()
    kept = base.generate_fewshot_dataset(data, num_shots=2, rng=random.Random(0))
    assert [d.label for d in kept] == [0, 0, 1] and kept[2] is data[3]
    repeated = base.generate_fewshot_dataset(data, num_shots=3, repeat=True, rng=random.Random(7))
    ref = random.Random(7)
    assert triples(repeated) == triples(ref.sample(data[:3], 3) + ref.choices(data[3:], k=3))


def test_no_shots_returns_input_and_several_sources_give_several_lists():
    a, b = labelled([0, 1, 0, 1]), labelled([1, 1, 0, 0])
    base = DatasetBase()
    assert base.generate_fewshot_dataset(a, num_shots=-1) is a
    out = base.generate_fewshot_dataset(a, b, num_shots=1, rng=random.Random(3))
    assert len(out) == 2 and [len(x) for x in out] == [2, 2]


# --- BenchmarkDataset: sampling order, cache, pickles ----------------------------------------------------------------
def released_split(dataset_dir):
    """A split with labels interleaved (first appearance: 3, 0, 4, 1, 2) - a stand-in for CoOp's JSON."""
    order = (3, 0, 4, 1, 2)
    split = {"train": [], "val": [], "test": []}
    for i in range(10):
        key = "train" if i < 6 else "val" if i < 8 else "test"
        for label in order:
            c = CLASSES[label]
            split[key].append([f"{c}/{c}_{i:04d}.jpg", label, c])
    write_split(dataset_dir / "split_zhou_DescribableTextures.json", split)
    return split


@pytest.fixture
def dtd(tmp_path):
    root = tmp_path / "data"
    d = make_dtd(root, classes=CLASSES, per_class=10)
    split = released_split(d)
    return root, d, split


def expected_picks(dataset_dir, split, num_shots, seed):
    image_dir = str(dataset_dir / "images")
    train, val = ([Datum(os.path.join(image_dir, r), y, 0, c) for r, y, c in split[k]] for k in ("train", "val"))
    return coop_picks(train, val, num_shots, seed)


@pytest.mark.parametrize("num_shots, seed", [(1, 1), (2, 2), (4, 3), (2, 0)])
def test_dataset_picks_are_coops(dtd, num_shots, seed):
    root, d, split = dtd
    ds = DescribableTextures(make_cfg(root, num_shots=num_shots, seed=seed))
    want_train, want_val = expected_picks(d, split, num_shots, seed)
    assert triples(ds.train_x) == triples(want_train)
    assert triples(ds.val) == triples(want_val)
    assert len(ds.train_x) == 5 * num_shots
    assert len(ds.val) == 5 * min(num_shots, 2)  # 2 val images per class: a class with fewer than k keeps all
    assert len(ds.test) == 10  # the test set is never subsampled


def cache_file(d, split, num_shots, seed):
    return d / "split_fewshot" / f"shot_{num_shots}-seed_{seed}-split_{split_sha256(split)[:12]}.json"


def test_cache_holds_paths_relative_to_the_dataset_folder_and_is_read_back(dtd):
    root, d, split = dtd
    DescribableTextures(make_cfg(root, num_shots=2, seed=0))
    path = cache_file(d, split, 2, 0)
    data = json.loads(path.read_text())
    assert data["seed"] == 0 and data["num_shots"] == 2 and data["split_sha256"] == split_sha256(split)
    assert all(rel.startswith("images/") and not os.path.isabs(rel) for rel, _, _ in data["train"] + data["val"])
    # Tamper with the cache: the dataset must serve the cached subset, not draw a new one.
    data["train"] = [[f"images/{r}", y, c] for r, y, c in split["train"][-5:]]
    path.write_text(json.dumps(data))
    ds = DescribableTextures(make_cfg(root, num_shots=2, seed=0))
    assert triples(ds.train_x) == [(str(d / "images" / r), y, c) for r, y, c in split["train"][-5:]]


def test_changed_split_file_invalidates_the_cache(dtd):
    root, d, split = dtd
    DescribableTextures(make_cfg(root, num_shots=2, seed=1))
    old = cache_file(d, split, 2, 1)
    assert old.is_file()
    split["train"] = split["train"][5:]  # drop one image of every class: a different split
    write_split(d / "split_zhou_DescribableTextures.json", split)
    ds = DescribableTextures(make_cfg(root, num_shots=2, seed=1))
    assert cache_file(d, split, 2, 1).is_file() and cache_file(d, split, 2, 1) != old
    want_train, _ = expected_picks(d, split, 2, 1)
    assert triples(ds.train_x) == triples(want_train)


def test_moved_root_still_uses_the_cache(dtd, tmp_path):
    root, d, split = dtd
    DescribableTextures(make_cfg(root, num_shots=1, seed=3))
    path = cache_file(d, split, 1, 3)
    data = json.loads(path.read_text())
    data["train"] = data["train"][::-1]  # a marker only the cache can produce
    path.write_text(json.dumps(data))
    new_root = tmp_path / "moved"
    shutil.move(str(root), str(new_root))
    ds = DescribableTextures(make_cfg(new_root, num_shots=1, seed=3))
    assert [x.impath for x in ds.train_x] == [str(new_root / "dtd" / rel) for rel, _, _ in data["train"]]
    assert all(os.path.isfile(x.impath) for x in ds.train_x)


def test_negative_seed_draws_unseeded_and_caches_nothing(dtd, caplog):
    root, d, _ = dtd
    with caplog.at_level(logging.WARNING):
        ds = DescribableTextures(make_cfg(root, num_shots=2, seed=-1))
    assert len(ds.train_x) == 10 and "drawn unseeded" in caplog.text
    assert not (d / "split_fewshot").exists()


@pytest.fixture
def fake_dassl(monkeypatch):
    """A stand-in ``dassl.data.datasets.base_dataset.Datum`` so the test can write CoOp-style pickles."""
    class Datum:  # noqa: D401 - mimics Dassl's attribute layout
        def __init__(self, impath, label, classname):
            self._impath, self._label, self._domain, self._classname = impath, label, 0, classname

    module = types.ModuleType("dassl.data.datasets.base_dataset")
    Datum.__module__ = module.__name__
    Datum.__qualname__ = "Datum"
    module.Datum = Datum
    for name in ("dassl", "dassl.data", "dassl.data.datasets"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return Datum


def test_coop_pickle_is_reused_when_it_matches_the_split(dtd, fake_dassl):
    root, d, split = dtd
    old_root = "/somewhere/else/dtd/images"  # CoOp pickles hold absolute paths of the machine that made them
    train = [fake_dassl(f"{old_root}/{r}", y, c) for r, y, c in split["train"][-5:]]
    val = [fake_dassl(f"{old_root}/{r}", y, c) for r, y, c in split["val"][:5]]
    (d / "split_fewshot").mkdir()
    with open(d / "split_fewshot" / "shot_1-seed_1.pkl", "wb") as f:
        pickle.dump({"train": train, "val": val}, f, protocol=pickle.HIGHEST_PROTOCOL)
    ds = DescribableTextures(make_cfg(root, num_shots=1, seed=1))
    assert triples(ds.train_x) == [(str(d / "images" / r), y, c) for r, y, c in split["train"][-5:]]
    assert triples(ds.val) == [(str(d / "images" / r), y, c) for r, y, c in split["val"][:5]]
    assert json.loads(cache_file(d, split, 1, 1).read_text())["source"] == "CoOp pickle shot_1-seed_1.pkl"


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))  # would create a file if the pickle were trusted


def test_unsafe_or_mismatched_pickles_are_ignored(dtd, fake_dassl, caplog):
    root, d, split = dtd
    (d / "split_fewshot").mkdir()
    marker = d / "pwned"
    with open(d / "split_fewshot" / "shot_2-seed_2.pkl", "wb") as f:
        pickle.dump({"train": [_Payload(str(marker))], "val": []}, f)
    stranger = [fake_dassl("/x/dtd/images/banded/not_in_split.jpg", 0, "banded")]
    with open(d / "split_fewshot" / "shot_1-seed_2.pkl", "wb") as f:
        pickle.dump({"train": stranger, "val": []}, f, protocol=pickle.HIGHEST_PROTOCOL)
    with caplog.at_level(logging.WARNING):
        two = DescribableTextures(make_cfg(root, num_shots=2, seed=2))
        one = DescribableTextures(make_cfg(root, num_shots=1, seed=2))
    assert not marker.exists()
    assert "cannot read it safely" in caplog.text and "do not match" in caplog.text
    assert triples(two.train_x) == triples(expected_picks(d, split, 2, 2)[0])
    assert triples(one.train_x) == triples(expected_picks(d, split, 1, 2)[0])


# --- NUM_SHOTS above the smallest class -------------------------------------------------------------------------------
def test_more_shots_than_a_class_has_warns_once_and_records_the_actual_counts(dtd, caplog):
    root, d, split = dtd
    split["train"] = [e for e in split["train"] if not (e[2] == "bubbly" and int(e[0][-8:-4]) >= 2)]
    write_split(d / "split_zhou_DescribableTextures.json", split)  # bubbly: 2 training images, the others 6
    with caplog.at_level(logging.WARNING):
        ds = DescribableTextures(make_cfg(root, num_shots=4, seed=1))
    assert ds.shots_per_class == {"banded": 4, "blotchy": 4, "braided": 4, "bubbly": 2, "zigzagged": 4}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "NUM_SHOTS is 4" in warnings[0] and "1 of 5 classes" in warnings[0] and '"bubbly" with 2' in warnings[0]
    assert "train on 2 images each, not 4" in warnings[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ds = DescribableTextures(make_cfg(root, num_shots=64, seed=1))
    assert ds.shots_per_class == {"banded": 6, "blotchy": 6, "braided": 6, "bubbly": 2, "zigzagged": 6}
    assert len(ds.train_x) == 26
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "5 of 5 classes" in warnings[0] and "2 to 6 images" in warnings[0]


def test_enough_shots_give_no_warning_and_counts_follow_base_new_subsampling(dtd, caplog):
    root, _, _ = dtd
    with caplog.at_level(logging.WARNING):
        ds = DescribableTextures(make_cfg(root, num_shots=6, seed=2, subsample="new"))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert ds.shots_per_class == {"bubbly": 6, "zigzagged": 6}  # labels 3, 4 relabelled 0, 1
    full = DescribableTextures(make_cfg(root, num_shots=-1))
    assert full.shots_per_class == {c: 6 for c in CLASSES}


def test_shots_per_class_keeps_classes_that_share_a_name_apart():
    data = [Datum(f"/d/{i}.jpg", y, 0, "crane" if y < 2 else "heron") for i, y in enumerate([0, 0, 1, 2, 2, 2])]
    assert DatasetBase(train_x=data).shots_per_class == {"crane (0)": 2, "crane (1)": 1, "heron": 3}
