"""Oxford Flowers 102, CoOp's ``OxfordFlowers``.

Layout: ``oxford_flowers/jpg/image_<00001>.jpg``, ``imagelabels.mat`` (1-based label of image i),
``cat_to_name.json`` (``{"1": "pink primrose", ...}``), ``split_zhou_OxfordFlowers.json``.
Class name: ``cat_to_name.json[str(label)]``; label: the .mat label - 1.
Rebuilt split: 50/20/30 per class, classes in order of first appearance in ``imagelabels.mat`` (CoOp's order).
"""
import json
import os
from collections import defaultdict

from scipy.io import loadmat

from engine.data.datasets import DatasetError
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, split_by_class


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    dataset_dir = "oxford_flowers"
    image_dir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    stem = "oxford_flowers"

    def create_split(self) -> dict:
        labels = loadmat(os.path.join(self.dataset_dir, "imagelabels.mat"))["labels"][0]
        names_file = os.path.join(self.dataset_dir, "cat_to_name.json")
        with open(names_file, encoding="utf-8") as f:
            lab2cname = json.load(f)
        by_label = defaultdict(list)
        for i, label in enumerate(labels):
            by_label[int(label)].append(f"image_{i + 1:05d}.jpg")
        missing = sorted(set(map(str, by_label)) - set(lab2cname), key=int)
        if missing:
            raise DatasetError(f"{names_file} has no name for labels {', '.join(missing)}.")
        return split_by_class((label - 1, lab2cname[str(label)], relpaths) for label, relpaths in by_label.items())
