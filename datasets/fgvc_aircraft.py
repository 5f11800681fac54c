"""FGVC-Aircraft 2013b (100 variants), CoOp's ``FGVCAircraft``.

Layout: ``fgvc_aircraft/`` is the ``data/`` folder of fgvc-aircraft-2013b: ``images/<id>.jpg``, ``variants.txt``
(one variant per line; label = line index), ``images_variant_{train,val,test}.txt`` (``<id> <variant name>``).
Class name: the variant name (``707-320``, ``A300B4``, ...). The official train/val/test lists are the split; there
is no JSON split file, so the split is read from them on every load.
"""
import os

from engine.data.datasets import DatasetError
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, read_lines


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    dataset_dir = "fgvc_aircraft"
    image_dir = "images"
    split_file = ""
    stem = "fgvc_aircraft"

    def create_split(self) -> dict:
        variants = read_lines(os.path.join(self.dataset_dir, "variants.txt"))
        cname2lab = {c: i for i, c in enumerate(variants)}
        return {key: self.read_list(f"images_variant_{key}.txt", cname2lab) for key in ("train", "val", "test")}

    def read_list(self, filename: str, cname2lab: dict) -> list:
        path = os.path.join(self.dataset_dir, filename)
        entries = []
        for line in read_lines(path):
            image_id, _, variant = line.partition(" ")
            if variant not in cname2lab:
                raise DatasetError(f'{path}: variant "{variant}" of image {image_id} is not in variants.txt.')
            entries.append([f"{image_id}.jpg", cname2lab[variant], variant])
        return entries
