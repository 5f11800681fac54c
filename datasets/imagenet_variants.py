"""The ImageNet test sets used for domain generalisation, CoOp's ``ImageNetV2``, ``ImageNetSketch``, ``ImageNetA``
and ``ImageNetR``. Test only: ``train_x`` is the test list itself so that ``classnames`` works (CoOp); NUM_SHOTS is
ignored. Each folder holds its own copy of ImageNet's ``classnames.txt``; image listings are sorted.

- ImageNetV2 (``imagenetv2/imagenetv2-matched-frequency-format-val/<i>/``): folder ``i`` has label ``i`` and the
  i-th name of ``classnames.txt`` (1000 classes).
- ImageNet-Sketch (``imagenet-sketch/images/<wnid>/``): 1000 classes, labels in sorted wnid order.
- ImageNet-A (``imagenet-adversarial/imagenet-a/<wnid>/``) and ImageNet-R (``imagenet-rendition/imagenet-r/<wnid>/``):
  their 200 classes, labelled 0..199 in sorted wnid order, named from the 1000-class ``classnames.txt``. Files next to
  the folders (``README.txt``) are ignored.
"""
import os

from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset
from .imagenet import folder_entries, read_classnames, sorted_class_folders


class ImageNetTestSet(BenchmarkDataset):
    """A test-only ImageNet variant whose class folders, sorted, are labelled 0.. (Sketch, A, R)."""

    test_only = True

    def create_split(self) -> dict:
        names_file = os.path.join(self.dataset_dir, "classnames.txt")
        folders = sorted_class_folders(self.image_dir)
        return {"train": [], "val": [],
                "test": folder_entries(self.image_dir, folders, read_classnames(names_file), names_file)}


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetTestSet):
    dataset_dir = "imagenetv2"
    image_dir = "imagenetv2-matched-frequency-format-val"
    stem = "imagenetv2"

    def create_split(self) -> dict:
        names_file = os.path.join(self.dataset_dir, "classnames.txt")
        by_position = {str(i): name for i, name in enumerate(read_classnames(names_file).values())}
        folders = [str(i) for i in range(len(by_position))]
        return {"train": [], "val": [], "test": folder_entries(self.image_dir, folders, by_position, names_file)}


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetTestSet):
    dataset_dir = "imagenet-sketch"
    image_dir = "images"
    stem = "imagenet_sketch"


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetTestSet):
    dataset_dir = "imagenet-adversarial"
    image_dir = "imagenet-a"
    stem = "imagenet_a"


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetTestSet):
    dataset_dir = "imagenet-rendition"
    image_dir = "imagenet-r"
    stem = "imagenet_r"
