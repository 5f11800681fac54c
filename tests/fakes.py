"""Tiny on-disk copies of the 15 benchmarks' layouts, for tests (nothing is downloaded).

Each ``make_<stem>(root, ...)`` writes the raw files CoOp's loaders read (images as 4x4 JPEGs, and the naming files:
``classnames.txt``, ``cat_to_name.json``, ``imagelabels.mat``, ``variants.txt``, ``ucfTrainTestlist/``,
``ClassName.txt``, ``annotations/*.txt``, devkit ``.mat`` files) under ``root`` and returns the dataset folder.
No split file is written, so a dataset built on it rebuilds its split; :func:`write_split` writes one (a stand-in for
CoOp's released ``split_zhou_*.json``). :func:`make_cfg` builds the config a dataset class takes.

    from tests.fakes import make_oxford_pets, make_cfg
    make_oxford_pets(tmp_path)
    pets = OxfordPets(make_cfg(tmp_path, num_shots=2, seed=1))
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Dict, Iterable, Sequence

import numpy as np
from PIL import Image
from scipy.io import savemat

from engine.config import get_cfg_default


def make_cfg(root, name: str = "", num_shots: int = -1, seed: int = 1, subsample: str = "all"):
    """The config fields a dataset reads: ``DATASET.{ROOT, NAME, NUM_SHOTS, SUBSAMPLE_CLASSES}`` and ``SEED``."""
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    return cfg


def write_image(path, size: int = 4) -> None:
    """A tiny image whose colour is derived from its path (JPEG for .jpg/.JPEG, PNG otherwise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h = zlib.crc32(str(path.name).encode())
    colour = (h & 255, (h >> 8) & 255, (h >> 16) & 255)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.new("RGB", (size, size), colour).save(path, fmt)


def write_lines(path, lines: Iterable[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def write_split(path, split: Dict[str, list]) -> None:
    """Write a CoOp-format split JSON (indented like CoOp's ``write_json``)."""
    Path(path).write_text(json.dumps(split, indent=4))


def _folder_dataset(image_dir: Path, classes: Sequence[str], per_class: int, ext: str = ".jpg") -> None:
    for c in classes:
        for i in range(per_class):
            write_image(image_dir / c / f"{c}_{i:04d}{ext}")


# --- the 11 benchmarks -----------------------------------------------------------------------------------------------
PETS_BREEDS = ("Abyssinian", "american_bulldog", "Bengal", "great_pyrenees", "Siamese")


def make_oxford_pets(root, breeds: Sequence[str] = PETS_BREEDS, n_trainval: int = 6, n_test: int = 3) -> Path:
    """``images/<Breed>_<n>.jpg`` and ``annotations/{trainval,test}.txt`` (``<image> <class_id> <species> <id>``)."""
    d = Path(root) / "oxford_pets"
    lists = {"trainval": [], "test": []}
    for class_id, breed in enumerate(breeds, start=1):
        species = 1 if breed[0].isupper() else 2
        for n in range(1, n_trainval + n_test + 1):
            write_image(d / "images" / f"{breed}_{n}.jpg")
            lists["trainval" if n <= n_trainval else "test"].append(f"{breed}_{n} {class_id} {species} {class_id}")
    for name, lines in lists.items():
        write_lines(d / "annotations" / f"{name}.txt", lines)
    return d


CALTECH_FOLDERS = ("BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion", "airplanes")


def make_caltech101(root, folders: Sequence[str] = CALTECH_FOLDERS, per_class: int = 10) -> Path:
    d = Path(root) / "caltech-101"
    _folder_dataset(d / "101_ObjectCategories", folders, per_class)
    return d


def make_dtd(root, classes: Sequence[str] = ("banded", "blotchy", "braided", "bubbly", "zigzagged"),
             per_class: int = 10) -> Path:
    d = Path(root) / "dtd"
    _folder_dataset(d / "images", classes, per_class)
    return d


def make_food101(root, classes: Sequence[str] = ("apple_pie", "baby_back_ribs", "caesar_salad", "waffles"),
                 per_class: int = 10) -> Path:
    d = Path(root) / "food-101"
    _folder_dataset(d / "images", classes, per_class)
    return d


def make_eurosat(root, classes: Sequence[str] = ("AnnualCrop", "Forest", "Highway", "SeaLake"),
                 per_class: int = 10) -> Path:
    d = Path(root) / "eurosat"
    _folder_dataset(d / "2750", classes, per_class)
    return d


CARS_NAMES = ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Tesla Model S Sedan 2012",
              "smart fortwo Convertible 2012")


def _cars_annotations(fnames, labels) -> np.ndarray:
    annos = np.zeros((1, len(fnames)), dtype=[("bbox_x1", "O"), ("class", "O"), ("fname", "O")])
    for i, (fname, label) in enumerate(zip(fnames, labels)):
        annos[0, i] = (np.array([[1]]), np.array([[label]], dtype=np.uint8), np.array([fname]))
    return annos


def make_stanford_cars(root, class_names: Sequence[str] = CARS_NAMES, n_train: int = 6, n_test: int = 3) -> Path:
    """``cars_{train,test}/<n>.jpg``, ``devkit/cars_meta.mat`` (``class_names``), ``devkit/cars_train_annos.mat``,
    ``cars_test_annos_withlabels.mat`` (``annotations`` with 1-based ``class`` and ``fname``)."""
    d = Path(root) / "stanford_cars"
    (d / "devkit").mkdir(parents=True, exist_ok=True)
    names = np.empty((1, len(class_names)), dtype=object)
    for i, n in enumerate(class_names):
        names[0, i] = n
    savemat(d / "devkit" / "cars_meta.mat", {"class_names": names})
    for folder, per_class, mat in (("cars_train", n_train, d / "devkit" / "cars_train_annos.mat"),
                                   ("cars_test", n_test, d / "cars_test_annos_withlabels.mat")):
        fnames, labels = [], []
        for k in range(per_class * len(class_names)):
            fnames.append(f"{k + 1:05d}.jpg")
            labels.append(k % len(class_names) + 1)  # interleaved classes, as in the real lists
            write_image(d / folder / fnames[-1])
        savemat(mat, {"annotations": _cars_annotations(fnames, labels)})
    return d


FLOWER_NAMES = {"1": "pink primrose", "2": "hard-leaved pocket orchid", "3": "canterbury bells", "4": "sweet pea"}


def make_oxford_flowers(root, image_labels: Sequence[int] = (3, 1, 2, 4) * 10,
                        cat_to_name: Dict[str, str] = FLOWER_NAMES) -> Path:
    """``jpg/image_<00001>.jpg`` (image i has 1-based label ``image_labels[i-1]``), ``imagelabels.mat``,
    ``cat_to_name.json``."""
    d = Path(root) / "oxford_flowers"
    for i in range(len(image_labels)):
        write_image(d / "jpg" / f"image_{i + 1:05d}.jpg")
    savemat(d / "imagelabels.mat", {"labels": np.array([list(image_labels)], dtype=np.uint8)})
    (d / "cat_to_name.json").write_text(json.dumps(cat_to_name))
    return d


AIRCRAFT_VARIANTS = ("707-320", "A300B4", "Cessna 172", "DHC-1")


def make_fgvc_aircraft(root, variants: Sequence[str] = AIRCRAFT_VARIANTS, per_split: int = 4) -> Path:
    """``images/<id>.jpg``, ``variants.txt``, ``images_variant_{train,val,test}.txt`` (``<id> <variant>``)."""
    d = Path(root) / "fgvc_aircraft"
    write_lines(d / "variants.txt", variants)
    image_id = 1000000
    for split in ("train", "val", "test"):
        lines = []
        for k in range(per_split * len(variants)):
            image_id += 7
            write_image(d / "images" / f"{image_id}.jpg")
            lines.append(f"{image_id} {variants[k % len(variants)]}")
        write_lines(d / f"images_variant_{split}.txt", lines)
    return d


SUN_CLASSES = ("/a/abbey", "/a/apartment_building/outdoor", "/b/bakery/shop", "/c/campus", "/y/youth_hostel")


def make_sun397(root, class_paths: Sequence[str] = SUN_CLASSES, n_train: int = 6, n_test: int = 3) -> Path:
    """``SUN397/<letter>/<class>/sun_<n>.jpg``, ``ClassName.txt``, ``Training_01.txt``, ``Testing_01.txt``."""
    d = Path(root) / "sun397"
    write_lines(d / "ClassName.txt", class_paths)
    lists = {"Training_01.txt": [], "Testing_01.txt": []}
    for c in class_paths:
        for n in range(n_train + n_test):
            rel = f"{c}/sun_{zlib.crc32(f'{c}{n}'.encode()):010d}.jpg"
            write_image(d / "SUN397" / rel[1:])
            lists["Training_01.txt" if n < n_train else "Testing_01.txt"].append(rel)
    for name, lines in lists.items():
        write_lines(d / name, lines)
    return d


UCF_ACTIONS = ("ApplyEyeMakeup", "Basketball", "BlowDryHair", "YoYo", "PlayingDaf")


def make_ucf101(root, actions: Sequence[str] = UCF_ACTIONS, n_train: int = 6, n_test: int = 3) -> Path:
    """``UCF-101-midframes/<Renamed_Action>/v_<Action>_gXX_cYY.jpg`` and ``ucfTrainTestlist/{classInd,
    trainlist01,testlist01}.txt``."""
    import re

    d = Path(root) / "ucf101"
    lists = d / "ucfTrainTestlist"
    write_lines(lists / "classInd.txt", [f"{i} {a}" for i, a in enumerate(actions, start=1)])
    train, test = [], []
    for i, action in enumerate(actions, start=1):
        renamed = "_".join(re.findall("[A-Z][^A-Z]*", action))
        for n in range(n_train + n_test):
            video = f"v_{action}_g{n + 1:02d}_c01"
            write_image(d / "UCF-101-midframes" / renamed / f"{video}.jpg")
            if n < n_train:
                train.append(f"{action}/{video}.avi {i}")
            else:
                test.append(f"{action}/{video}.avi")
    write_lines(lists / "trainlist01.txt", train)
    write_lines(lists / "testlist01.txt", test)
    return d


# --- ImageNet and its variants ---------------------------------------------------------------------------------------
IMAGENET_CLASSES = {"n01440764": "tench", "n01443537": "goldfish", "n01484850": "great white shark",
                    "n01491361": "tiger shark", "n01494475": "hammerhead shark"}


def write_classnames(d: Path, classes: Dict[str, str]) -> None:
    write_lines(d / "classnames.txt", [f"{wnid} {name}" for wnid, name in classes.items()])


def make_imagenet(root, classes: Dict[str, str] = IMAGENET_CLASSES, n_train: int = 6, n_val: int = 3) -> Path:
    """``images/{train,val}/<wnid>/<wnid>_<n>.JPEG`` and ``classnames.txt``."""
    d = Path(root) / "imagenet"
    write_classnames(d, classes)
    for split, n in (("train", n_train), ("val", n_val)):
        _folder_dataset(d / "images" / split, list(classes), n, ext=".JPEG")
    return d


def make_imagenetv2(root, classes: Dict[str, str] = IMAGENET_CLASSES, per_class: int = 3) -> Path:
    """``imagenetv2-matched-frequency-format-val/<i>/<hash>.jpeg`` for i = 0..len(classes)-1, ``classnames.txt``."""
    d = Path(root) / "imagenetv2"
    write_classnames(d, classes)
    for i in range(len(classes)):
        for n in range(per_class):
            name = f"{zlib.crc32(f'{i}-{n}'.encode()):x}.jpeg"
            write_image(d / "imagenetv2-matched-frequency-format-val" / str(i) / name)
    return d


def make_imagenet_sketch(root, classes: Dict[str, str] = IMAGENET_CLASSES, per_class: int = 3) -> Path:
    d = Path(root) / "imagenet-sketch"
    write_classnames(d, classes)
    _folder_dataset(d / "images", list(classes), per_class, ext=".JPEG")
    return d


def _subset_variant(root, folder: str, image_folder: str, classes: Dict[str, str], subset: Sequence[str],
                    per_class: int) -> Path:
    """ImageNet-A/-R: ``<image_folder>/<wnid>/`` for a subset of the classes, a ``README.txt`` beside them, and the
    full ``classnames.txt``."""
    d = Path(root) / folder
    write_classnames(d, classes)
    _folder_dataset(d / image_folder, subset, per_class)
    write_lines(d / image_folder / "README.txt", ["not a class"])
    return d


def make_imagenet_a(root, classes: Dict[str, str] = IMAGENET_CLASSES,
                    subset: Sequence[str] = ("n01494475", "n01443537", "n01491361"), per_class: int = 3) -> Path:
    return _subset_variant(root, "imagenet-adversarial", "imagenet-a", classes, subset, per_class)


def make_imagenet_r(root, classes: Dict[str, str] = IMAGENET_CLASSES,
                    subset: Sequence[str] = ("n01484850", "n01440764"), per_class: int = 3) -> Path:
    return _subset_variant(root, "imagenet-rendition", "imagenet-r", classes, subset, per_class)


BUILDERS = {
    "imagenet": make_imagenet, "caltech101": make_caltech101, "oxford_pets": make_oxford_pets,
    "stanford_cars": make_stanford_cars, "oxford_flowers": make_oxford_flowers, "food101": make_food101,
    "fgvc_aircraft": make_fgvc_aircraft, "sun397": make_sun397, "dtd": make_dtd, "eurosat": make_eurosat,
    "ucf101": make_ucf101, "imagenetv2": make_imagenetv2, "imagenet_sketch": make_imagenet_sketch,
    "imagenet_a": make_imagenet_a, "imagenet_r": make_imagenet_r,
}


def make_dataset(stem: str, root) -> Path:
    """Build the tiny layout of the benchmark whose config is ``configs/datasets/<stem>.yaml``."""
    return BUILDERS[stem](root)
