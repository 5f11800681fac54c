"""Every benchmark on a tiny generated copy of its on-disk layout: loader, CoOp's class-name rules, base/new halves,
few-shot picks, CoOp's split-building procedures, ``datasets.show`` and the error messages."""
import io
import json
import logging
import math
import os
import random
from collections import defaultdict
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import datasets  # noqa: F401  (registers the benchmarks)
from datasets import show
from datasets.base import subsample_classes
from engine.config import merge_from_file
from engine.data.datasets import DATASET_REGISTRY, DatasetError, Datum, MissingDataError
from tests import fakes
from tests.fakes import make_cfg, make_dataset, write_split

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "datasets"

# stem: (registered name, class names in label order, (#train, #val, #test) on the fake layout, split file or None)
EXPECTED = {
    "oxford_pets": ("OxfordPets", ["abyssinian", "american_bulldog", "bengal", "great_pyrenees", "siamese"],
                    (25, 5, 15), "split_zhou_OxfordPets.json"),
    "caltech101": ("Caltech101", ["face", "leopard", "motorbike", "accordion", "airplane"], (25, 10, 15),
                   "split_zhou_Caltech101.json"),
    "dtd": ("DescribableTextures", ["banded", "blotchy", "braided", "bubbly", "zigzagged"], (25, 10, 15),
            "split_zhou_DescribableTextures.json"),
    "food101": ("Food101", ["apple_pie", "baby_back_ribs", "caesar_salad", "waffles"], (20, 8, 12),
                "split_zhou_Food101.json"),
    "eurosat": ("EuroSAT", ["Annual Crop Land", "Forest", "Highway or Road", "Sea or Lake"], (20, 8, 12),
                "split_zhou_EuroSAT.json"),
    "stanford_cars": ("StanfordCars", ["2000 AM General Hummer SUV", "2012 Acura RL Sedan",
                                       "2012 Tesla Model S Sedan", "2012 smart fortwo Convertible"], (20, 4, 12),
                      "split_zhou_StanfordCars.json"),
    "oxford_flowers": ("OxfordFlowers", ["pink primrose", "hard-leaved pocket orchid", "canterbury bells",
                                         "sweet pea"], (20, 8, 12), "split_zhou_OxfordFlowers.json"),
    "fgvc_aircraft": ("FGVCAircraft", ["707-320", "A300B4", "Cessna 172", "DHC-1"], (16, 16, 16), None),
    "sun397": ("SUN397", ["abbey", "outdoor apartment_building", "shop bakery", "campus", "youth_hostel"],
               (25, 5, 15), "split_zhou_SUN397.json"),
    "ucf101": ("UCF101", ["Apply_Eye_Makeup", "Basketball", "Blow_Dry_Hair", "Yo_Yo", "Playing_Daf"], (25, 5, 15),
               "split_zhou_UCF101.json"),
    "imagenet": ("ImageNet", ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark"],
                 (30, 15, 15), "split_ImageNet.json"),
    "imagenetv2": ("ImageNetV2", ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark"],
                   (15, 0, 15), None),
    "imagenet_sketch": ("ImageNetSketch", ["tench", "goldfish", "great white shark", "tiger shark",
                                           "hammerhead shark"], (15, 0, 15), None),
    "imagenet_a": ("ImageNetA", ["goldfish", "tiger shark", "hammerhead shark"], (9, 0, 9), None),
    "imagenet_r": ("ImageNetR", ["tench", "great white shark"], (6, 0, 6), None),
}
TEST_ONLY = ("imagenet_a", "imagenet_r", "imagenet_sketch", "imagenetv2")  # a tuple: collection order is fixed
STEMS = sorted(EXPECTED)


def load(stem, root, **kw):
    """Build a dataset the way a run does: the dataset YAML names the registered class."""
    cfg = make_cfg(root, **kw)
    merge_from_file(cfg, str(CONFIGS / f"{stem}.yaml"))
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


def triples(items):
    return [(d.impath, d.label, d.classname) for d in items]


def test_every_coop_config_stem_has_a_config_and_a_registered_dataset():
    assert set(STEMS) <= {p.stem for p in CONFIGS.glob("*.yaml")}
    assert set(fakes.BUILDERS) == set(STEMS)
    for stem, (name, *_rest) in EXPECTED.items():
        assert DATASET_REGISTRY.get(name).stem == stem


@pytest.mark.parametrize("stem", STEMS)
def test_loads_with_coop_class_names(stem, tmp_path, caplog):
    name, classnames, (n_train, n_val, n_test), split_file = EXPECTED[stem]
    d = make_dataset(stem, tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = load(stem, tmp_path)
    assert type(ds).__name__ == name
    assert ds.classnames == classnames and ds.num_classes == len(classnames)
    assert ds.lab2cname == dict(enumerate(classnames))
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (n_train, n_val, n_test)
    for item in ds.train_x + ds.val + ds.test:
        assert os.path.isfile(item.impath) and item.impath.startswith(str(d))
        assert classnames[item.label] == item.classname
    if split_file:  # rebuilt from the raw files: written, and flagged as not CoOp's released split
        assert (d / split_file).is_file() and str(d / split_file) in caplog.text
        again = load(stem, tmp_path)  # now read back from the file
        assert triples(again.train_x) == triples(ds.train_x) and triples(again.test) == triples(ds.test)
    else:
        assert not list(d.glob("split*.json")) and "NOT CoOp" not in caplog.text
    if stem == "imagenet":
        assert ds.val == ds.test  # CoOp: ImageNet's val images are the test set and the val set
    if stem in TEST_ONLY:
        assert ds.train_x == ds.test and ds.val == []


@pytest.mark.parametrize("stem", STEMS)
def test_base_and_new_halves(stem, tmp_path):
    _, classnames, _, _ = EXPECTED[stem]
    make_dataset(stem, tmp_path)
    m = math.ceil(len(classnames) / 2)
    base, new = load(stem, tmp_path, subsample="base"), load(stem, tmp_path, subsample="new")
    assert base.classnames == classnames[:m] and new.classnames == classnames[m:]
    for ds in (base, new):
        for items in (ds.train_x, ds.val, ds.test):
            assert all(ds.classnames[x.label] == x.classname for x in items)
    full = load(stem, tmp_path)
    assert len(base.test) + len(new.test) == len(full.test)


def coop_picks(train, val, num_shots, seed):
    """CoOp's draw: ``random.seed(seed)``, then train k per class, then val min(k, 4) per class (global random)."""
    state = random.getstate()
    random.seed(seed)
    out = []
    for source, k in ((train, num_shots), (val, min(num_shots, 4))):
        groups = defaultdict(list)
        for x in source:
            groups[x.label].append(x)
        out.append([x for g in groups.values() for x in (random.sample(g, k) if len(g) >= k else g)])
    random.setstate(state)
    return out


def reference_split(stem, d):
    """The split CoOp's loader would read: the JSON file, or FGVC-Aircraft's official lists parsed here."""
    if stem == "fgvc_aircraft":
        variants = (d / "variants.txt").read_text().splitlines()
        split = {}
        for key in ("train", "val", "test"):
            rows = [line.split(" ", 1) for line in (d / f"images_variant_{key}.txt").read_text().splitlines()]
            split[key] = [[f"{i}.jpg", variants.index(v), v] for i, v in rows]
        return split
    return json.loads((d / EXPECTED[stem][3]).read_text())


@pytest.mark.parametrize("stem", sorted(set(STEMS) - set(TEST_ONLY)))
def test_fewshot_picks_match_coop(stem, tmp_path):
    d = make_dataset(stem, tmp_path)
    ds = load(stem, tmp_path, num_shots=2, seed=2)
    split = reference_split(stem, d)
    train, val = ([Datum(os.path.join(ds.image_dir, r), y, 0, c) for r, y, c in split[k]] for k in ("train", "val"))
    want_train, want_val = coop_picks(train, val, 2, 2)
    assert triples(ds.train_x) == triples(want_train) and len(ds.train_x) == 2 * len(EXPECTED[stem][1])
    if stem == "imagenet":
        assert ds.val == ds.test  # ImageNet: no val subset is drawn; val is the full test set
    else:
        assert triples(ds.val) == triples(want_val)
    base = load(stem, tmp_path, num_shots=2, seed=2, subsample="base")
    assert triples(base.train_x) == triples(subsample_classes(want_train, subsample="base")[0])


@pytest.mark.parametrize("stem", TEST_ONLY)
def test_test_only_sets_ignore_num_shots(stem, tmp_path):
    make_dataset(stem, tmp_path)
    assert triples(load(stem, tmp_path, num_shots=1).test) == triples(load(stem, tmp_path).test)


# --- CoOp's procedures for building a missing split, with a local RNG seeded 1 -------------------------------------
def with_global_seed(fn):
    state = random.getstate()
    random.seed(1)
    try:
        return fn()
    finally:
        random.setstate(state)


def coop_split_trainval(trainval, p_val=0.2):
    """CoOp's ``OxfordPets.split_trainval`` on [relpath, label, classname] entries, with the global random."""
    tracker = defaultdict(list)
    for idx, item in enumerate(trainval):
        tracker[item[1]].append(idx)
    train, val = [], []
    for idxs in tracker.values():
        n_val = round(len(idxs) * p_val)
        random.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def test_rebuilt_pets_split_is_coops_procedure_seeded_1(tmp_path):
    d = fakes.make_oxford_pets(tmp_path)
    load("oxford_pets", tmp_path)
    written = json.loads((d / "split_zhou_OxfordPets.json").read_text())
    lines = (d / "annotations" / "trainval.txt").read_text().splitlines()
    trainval = [[f"{ln.split()[0]}.jpg", int(ln.split()[1]) - 1, ln.split()[0].rsplit("_", 1)[0].lower()]
                for ln in lines]
    train, val = with_global_seed(lambda: coop_split_trainval(trainval))
    assert written["train"] == train and written["val"] == val and len(written["test"]) == 15


def test_rebuilt_folder_split_is_coops_50_20_30_seeded_1(tmp_path):
    d = fakes.make_dtd(tmp_path, per_class=11)  # 11 images: round(5.5) = 6 train (banker's rounding), 2 val, 3 test
    load("dtd", tmp_path)
    written = json.loads((d / "split_zhou_DescribableTextures.json").read_text())

    def coop():
        out = {"train": [], "val": [], "test": []}
        for label, c in enumerate(sorted(os.listdir(d / "images"))):
            ims = [f"{c}/{f}" for f in sorted(os.listdir(d / "images" / c))]
            random.shuffle(ims)
            out["train"] += [[p, label, c] for p in ims[:6]]
            out["val"] += [[p, label, c] for p in ims[6:8]]
            out["test"] += [[p, label, c] for p in ims[8:]]
        return out

    assert written == with_global_seed(coop)


def test_released_split_is_read_as_is(tmp_path):
    d = fakes.make_oxford_pets(tmp_path)
    split = {"train": [["Bengal_1.jpg", 0, "bengal"], ["Siamese_2.jpg", 1, "siamese"]],
             "val": [["Bengal_2.jpg", 0, "bengal"]], "test": [["Siamese_3.jpg", 1, "siamese"]]}
    write_split(d / "split_zhou_OxfordPets.json", split)
    ds = load("oxford_pets", tmp_path)
    assert ds.classnames == ["bengal", "siamese"]
    assert triples(ds.val) == [(str(d / "images" / "Bengal_2.jpg"), 0, "bengal")]


# --- datasets.show ----------------------------------------------------------------------------------------------------
def test_show_prints_the_subset_as_json(tmp_path):
    fakes.make_oxford_pets(tmp_path)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = show.main(["--root", str(tmp_path), "--dataset-config-file", str(CONFIGS / "oxford_pets.yaml"),
                        "--num-shots", "2", "--seed", "3", "--subsample", "new"])
    assert rc == 0
    shown = json.loads(out.getvalue())
    ds = load("oxford_pets", tmp_path, num_shots=2, seed=3, subsample="new")
    assert shown["classnames"] == ["great_pyrenees", "siamese"]
    assert shown["train"] == [[os.path.basename(x.impath), x.label, x.classname] for x in ds.train_x]
    assert len(shown["train"]) == 4 and len(shown["test"]) == 6


def test_show_reports_errors_in_one_line(tmp_path, capsys):
    rc = show.main(["--root", str(tmp_path), "--dataset-config-file", str(CONFIGS / "dtd.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "dataset folder not found" in err and "python -m datasets.download dtd" in err


# --- errors -----------------------------------------------------------------------------------------------------------
def test_missing_dataset_folder_names_path_and_command(tmp_path):
    with pytest.raises(MissingDataError) as e:
        load("oxford_pets", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "oxford_pets") in msg
    assert f"python -m datasets.download oxford_pets --root {tmp_path}" in msg


def test_missing_split_and_raw_files_names_both(tmp_path):
    d = fakes.make_oxford_pets(tmp_path)
    (d / "annotations" / "test.txt").unlink()
    with pytest.raises(MissingDataError) as e:
        load("oxford_pets", tmp_path)
    msg = str(e.value)
    assert str(d / "split_zhou_OxfordPets.json") in msg and str(d / "annotations" / "test.txt") in msg
    assert "python -m datasets.download oxford_pets" in msg


def test_missing_image_named_in_one_error(tmp_path):
    d = fakes.make_caltech101(tmp_path)
    load("caltech101", tmp_path)
    split = json.loads((d / "split_zhou_Caltech101.json").read_text())
    gone = d / "101_ObjectCategories" / split["test"][-1][0]
    gone.unlink()
    with pytest.raises(MissingDataError) as e:
        load("caltech101", tmp_path)
    assert str(gone) in str(e.value) and "python -m datasets.download caltech101" in str(e.value)


def test_missing_image_folder(tmp_path):
    d = fakes.make_eurosat(tmp_path)
    (d / "2750").rename(d / "EuroSAT_RGB")
    with pytest.raises(MissingDataError, match="image folder not found: .*2750"):
        load("eurosat", tmp_path)


def test_malformed_split_file(tmp_path):
    d = fakes.make_dtd(tmp_path)
    (d / "split_zhou_DescribableTextures.json").write_text('{"train": [["a.jpg", "zero", "x"]], "val": [], '
                                                           '"test": []}')
    with pytest.raises(DatasetError, match='entry 0 of "train"'):
        load("dtd", tmp_path)
    (d / "split_zhou_DescribableTextures.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load("dtd", tmp_path)


def test_empty_root_and_unknown_class_folder(tmp_path):
    with pytest.raises(DatasetError, match="DATASET.ROOT is empty"):
        load("dtd", "")
    d = fakes.make_imagenet_sketch(tmp_path)
    fakes.write_image(d / "images" / "n09999999" / "x.JPEG")
    with pytest.raises(DatasetError, match="no class name for the folder .*n09999999"):
        load("imagenet_sketch", tmp_path)
