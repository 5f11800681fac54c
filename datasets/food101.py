"""Food-101 (101 classes), CoOp's ``Food101``.

Layout: ``food-101/images/<class>/<image>.jpg``, ``split_zhou_Food101.json``. Class name: the folder name.
Rebuilt split: 50/20/30 per class.
"""
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, split_folders


@DATASET_REGISTRY.register()
class Food101(BenchmarkDataset):
    dataset_dir = "food-101"
    image_dir = "images"
    split_file = "split_zhou_Food101.json"
    stem = "food101"

    def create_split(self) -> dict:
        return split_folders(self.image_dir)
