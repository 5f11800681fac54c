"""Caltech-101 (100 classes), CoOp's ``Caltech101``.

Layout: ``caltech-101/101_ObjectCategories/<class>/<image>.jpg``, ``split_zhou_Caltech101.json``.
``BACKGROUND_Google`` and ``Faces_easy`` are dropped; four folders are renamed (``airplanes`` -> ``airplane``,
``Faces`` -> ``face``, ``Leopards`` -> ``leopard``, ``Motorbikes`` -> ``motorbike``); the rest keep their folder name.
Rebuilt split: 50/20/30 per class.
"""
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, split_folders

IGNORED = ("BACKGROUND_Google", "Faces_easy")
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(BenchmarkDataset):
    dataset_dir = "caltech-101"
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    stem = "caltech101"

    def create_split(self) -> dict:
        return split_folders(self.image_dir, ignored=IGNORED, renames=NEW_CNAMES)
