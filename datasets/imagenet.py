"""ImageNet-1k, CoOp's ``ImageNet``.

Layout: ``imagenet/images/{train,val}/<wnid>/<image>.JPEG`` and ``imagenet/classnames.txt`` (``<wnid> <name>`` per
line: CLIP's cleaned class names). Labels: position of the wnid among the sorted class folders; class name: from
``classnames.txt``. As in CoOp, the val images are the test set and also serve as val; few-shot sampling draws only
from train.

CoOp released no ImageNet split: it pickled ``preprocessed.pkl`` from ``os.listdir`` order, which depends on the
filesystem, so its few-shot subsets cannot be regenerated elsewhere (KaiyangZhou/CoOp#88). This project stores
``split_ImageNet.json`` built from SORTED listings instead, and reads CoOp's ``split_fewshot/shot_K-seed_S.pkl`` when
present (see ``datasets.base``) to reuse CoOp's exact subsets.
"""
import os
from collections import OrderedDict
from typing import Dict, List, Sequence

from engine.data.datasets import DatasetError
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, listdir_nohidden, read_lines


def read_classnames(path: str) -> "OrderedDict[str, str]":
    """``{folder: classname}`` in file order from lines ``<folder> <class name words...>``."""
    classnames = OrderedDict()
    for line in read_lines(path):
        folder, _, name = line.partition(" ")
        classnames[folder] = name
    return classnames


def folder_entries(image_dir: str, folders: Sequence[str], names: Dict[str, str], names_file: str,
                   prefix: str = "") -> List[list]:
    """``[<prefix><folder>/<image>, i, names[folder]]`` for the i-th folder of ``folders``, images sorted."""
    entries = []
    for label, folder in enumerate(folders):
        if folder not in names:
            raise DatasetError(f"{names_file} has no class name for the folder {os.path.join(image_dir, folder)}.")
        for image in listdir_nohidden(os.path.join(image_dir, folder)):
            entries.append([f"{prefix}{folder}/{image}", label, names[folder]])
    return entries


def sorted_class_folders(image_dir: str) -> List[str]:
    return listdir_nohidden(image_dir, dirs_only=True)


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    dataset_dir = "imagenet"
    image_dir = "images"
    split_file = "split_ImageNet.json"
    stem = "imagenet"
    val_is_test = True

    def create_split(self) -> dict:
        names_file = os.path.join(self.dataset_dir, "classnames.txt")
        names = read_classnames(names_file)
        split = {"val": []}
        for key, folder in (("train", "train"), ("test", "val")):
            split_dir = os.path.join(self.image_dir, folder)
            split[key] = folder_entries(split_dir, sorted_class_folders(split_dir), names, names_file,
                                        prefix=f"{folder}/")
        return split

    def created_split_warning(self) -> str:
        return (f"ImageNet: built {self.split_path} from sorted file listings. CoOp released no ImageNet split and "
                f"its own file order was filesystem-dependent, so few-shot subsets differ from CoOp's unless CoOp's "
                f"split_fewshot/shot_K-seed_S.pkl files are placed in {self.split_fewshot_dir}.")
