"""SUN397 (397 scene classes), CoOp's ``SUN397``.

Layout: ``sun397/SUN397/<letter>/<class>[/<sub>]/<image>.jpg``, ``ClassName.txt`` (``/a/abbey`` per line; label =
line index), ``Training_01.txt``/``Testing_01.txt`` (``/a/abbey/sun_x.jpg``), ``split_zhou_SUN397.json``.
Class name: the class path without its letter, parts reversed (``/a/apartment_building/outdoor`` ->
``outdoor apartment_building``). Rebuilt split: partition 01's training list with 20% per class carved out as val,
its testing list as test.
"""
import os

from engine.data.datasets import DatasetError
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, read_lines, split_trainval


def sun_classname(class_path: str) -> str:
    """``a/apartment_building/outdoor`` -> ``outdoor apartment_building``."""
    return " ".join(class_path.split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    dataset_dir = "sun397"
    image_dir = "SUN397"
    split_file = "split_zhou_SUN397.json"
    stem = "sun397"

    def create_split(self) -> dict:
        class_paths = [line[1:] for line in read_lines(os.path.join(self.dataset_dir, "ClassName.txt"))]
        cname2lab = {c: i for i, c in enumerate(class_paths)}
        trainval = self.read_list("Training_01.txt", cname2lab)
        test = self.read_list("Testing_01.txt", cname2lab)
        train, val = split_trainval(trainval)
        return {"train": train, "val": val, "test": test}

    def read_list(self, filename: str, cname2lab: dict) -> list:
        path = os.path.join(self.dataset_dir, filename)
        entries = []
        for line in read_lines(path):
            relpath = line[1:]
            class_path = os.path.dirname(relpath)
            if class_path not in cname2lab:
                raise DatasetError(f'{path}: class "{class_path}" of {relpath} is not in ClassName.txt.')
            entries.append([relpath, cname2lab[class_path], sun_classname(class_path)])
        return entries
