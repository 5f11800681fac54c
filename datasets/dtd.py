"""Describable Textures (47 classes), CoOp's ``DescribableTextures``.

Layout: ``dtd/images/<class>/<image>.jpg``, ``split_zhou_DescribableTextures.json``. Class name: the folder name.
Rebuilt split: 50/20/30 per class.
"""
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, split_folders


@DATASET_REGISTRY.register()
class DescribableTextures(BenchmarkDataset):
    dataset_dir = "dtd"
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"
    stem = "dtd"

    def create_split(self) -> dict:
        return split_folders(self.image_dir)
