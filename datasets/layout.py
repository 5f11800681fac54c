"""Where each of CoOp's 15 benchmarks lives under the data root, and what must be there.

Folder and file names are those of CoOp's DATASETS.md (KaiyangZhou/CoOp), so a data root prepared
for CoOp, CoCoOp, MaPLe or PromptSRC works here unchanged.

Each dataset lists two kinds of paths, relative to its folder (a trailing "/" marks a folder):
- `required`: what a run reads when CoOp's `split_zhou_*.json` is present (the configuration
  whose numbers are comparable with published ones), plus that split file;
- `optional`: only read to rebuild a missing split file (annotations, partition lists, devkits).

A folder counts as present when it exists and is not empty; a file when it exists and is not empty.
The data-root argument everywhere is the `--root` / `DATASET.ROOT` folder (CoOp's `$DATA`).
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass


class UnknownDatasetError(ValueError):
    """A dataset name that is none of the 15 benchmarks; the message lists the valid names."""


@dataclass(frozen=True)
class Layout:
    """One benchmark's place on disk."""

    name: str  # CoOp's config stem and the download command's name, e.g. "oxford_pets"
    registered: str  # DATASET.NAME, e.g. "OxfordPets"
    folder: str  # folder under the data root, e.g. "oxford_pets"
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    image_dir: str = ""  # folder the split file's paths are relative to ("" = the dataset folder)

    @property
    def split_file(self) -> str:
        """CoOp's split file name, or "" for datasets without one."""
        return next((p for p in self.required if p.startswith("split_zhou_")), "")


_CLASSNAMES = "classnames.txt"  # ImageNet's 1000 "wnid name" lines; every ImageNet variant needs a copy

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("imagenet", "ImageNet", "imagenet", ("images/train/", "images/val/", _CLASSNAMES)),
        Layout("caltech101", "Caltech101", "caltech-101",
               ("101_ObjectCategories/", "split_zhou_Caltech101.json"), image_dir="101_ObjectCategories"),
        Layout("oxford_pets", "OxfordPets", "oxford_pets",
               ("images/", "split_zhou_OxfordPets.json"), optional=("annotations/",), image_dir="images"),
        # Stanford Cars' split paths ("cars_train/00001.jpg") are relative to the dataset folder.
        Layout("stanford_cars", "StanfordCars", "stanford_cars",
               ("cars_train/", "cars_test/", "split_zhou_StanfordCars.json"),
               optional=("devkit/", "cars_test_annos_withlabels.mat")),
        Layout("oxford_flowers", "OxfordFlowers", "oxford_flowers",
               ("jpg/", "split_zhou_OxfordFlowers.json"),
               optional=("imagelabels.mat", "cat_to_name.json"), image_dir="jpg"),
        Layout("food101", "Food101", "food-101", ("images/", "split_zhou_Food101.json"), image_dir="images"),
        # No split JSON: CoOp reads the official FGVC Aircraft lists directly.
        Layout("fgvc_aircraft", "FGVCAircraft", "fgvc_aircraft",
               ("images/", "variants.txt", "images_variant_train.txt",
                "images_variant_val.txt", "images_variant_test.txt")),
        Layout("sun397", "SUN397", "sun397", ("SUN397/", "split_zhou_SUN397.json"),
               optional=("ClassName.txt", "Training_01.txt", "Testing_01.txt"), image_dir="SUN397"),
        Layout("dtd", "DescribableTextures", "dtd", ("images/", "split_zhou_DescribableTextures.json"),
               image_dir="images"),
        Layout("eurosat", "EuroSAT", "eurosat", ("2750/", "split_zhou_EuroSAT.json"), image_dir="2750"),
        Layout("ucf101", "UCF101", "ucf101", ("UCF-101-midframes/", "split_zhou_UCF101.json"),
               optional=("ucfTrainTestlist/",), image_dir="UCF-101-midframes"),
        Layout("imagenetv2", "ImageNetV2", "imagenetv2",
               ("imagenetv2-matched-frequency-format-val/", _CLASSNAMES)),
        Layout("imagenet_sketch", "ImageNetSketch", "imagenet-sketch", ("images/", _CLASSNAMES)),
        Layout("imagenet_a", "ImageNetA", "imagenet-adversarial", ("imagenet-a/", _CLASSNAMES)),
        Layout("imagenet_r", "ImageNetR", "imagenet-rendition", ("imagenet-r/", _CLASSNAMES)),
    )
}


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_ALIASES = {
    _key(alias): layout.name
    for layout in LAYOUTS.values()
    for alias in (layout.name, layout.registered, layout.folder)
}


def find_layout(name: str) -> Layout:
    """The layout for a config stem ("oxford_pets"), a DATASET.NAME ("OxfordPets") or a folder name
    ("caltech-101"), ignoring case, "-" and "_". Unknown names raise `UnknownDatasetError`."""
    stem = _ALIASES.get(_key(name))
    if stem is not None:
        return LAYOUTS[stem]
    close = difflib.get_close_matches(_key(name), list(_ALIASES), n=1, cutoff=0.6)
    hint = f" Did you mean '{_ALIASES[close[0]]}'?" if close else ""
    raise UnknownDatasetError(
        f"Unknown dataset '{name}'.{hint} Valid names: {', '.join(LAYOUTS)}."
    )


def is_present(path: str) -> bool:
    """True for a non-empty folder (path ends with "/") or a non-empty file."""
    if path.endswith("/"):
        return os.path.isdir(path) and any(os.scandir(path))
    return os.path.isfile(path) and os.path.getsize(path) > 0


def _missing(root: str | os.PathLike, layout: Layout, paths: tuple[str, ...]) -> list[str]:
    base = os.path.join(os.path.expanduser(os.fspath(root)), layout.folder)
    full = [os.path.join(base, rel) for rel in paths]
    return [path for path in full if not is_present(path)]


def missing_paths(root: str | os.PathLike, name: str) -> list[str]:
    """Full paths of the required files and folders (folders end with "/") absent under `root`."""
    layout = find_layout(name)
    return _missing(root, layout, layout.required)


def missing_optional(root: str | os.PathLike, name: str) -> list[str]:
    """Full paths of the optional (split-rebuilding) files and folders absent under `root`."""
    layout = find_layout(name)
    return _missing(root, layout, layout.optional)


def missing_split_files(root: str | os.PathLike, name: str) -> list[str]:
    """Full paths of the images listed in the dataset's split file that do not exist.

    Empty when the dataset has no split file or it is absent. Catches truncated extractions and
    copies whose file names differ from the originals. Raises `ValueError` for an unreadable split.
    """
    return listed_but_absent(root, find_layout(name))


def listed_but_absent(root: str | os.PathLike, layout: Layout) -> list[str]:
    """`missing_split_files` for a `Layout` object."""
    base = os.path.join(os.path.expanduser(os.fspath(root)), layout.folder)
    split_path = os.path.join(base, layout.split_file)
    if not layout.split_file or not os.path.isfile(split_path):
        return []
    try:
        with open(split_path, encoding="utf-8") as f:
            split = json.load(f)
        listed = [entry[0] for part in ("train", "val", "test") for entry in split[part]]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise ValueError(f"{split_path} is not a readable CoOp split file ({type(err).__name__}: {err}); "
                         f"delete it and rerun 'python -m datasets.download {layout.name} --root {root}'.") from err
    image_dir = os.path.join(base, layout.image_dir)
    return [path for path in dict.fromkeys(os.path.join(image_dir, rel) for rel in listed)
            if not os.path.isfile(path)]


def fetch_command(root: str | os.PathLike, name: str) -> str:
    """The shell command that downloads and prepares `name` under `root`."""
    return f"python -m datasets.download {find_layout(name).name} --root {os.fspath(root)}"
