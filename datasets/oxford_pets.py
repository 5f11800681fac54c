"""Oxford-IIIT Pets (37 breeds), CoOp's ``OxfordPets``.

Layout: ``oxford_pets/images/<Breed>_<n>.jpg``, ``annotations/{trainval,test}.txt``, ``split_zhou_OxfordPets.json``.
Class name: the image name without its trailing number, lowercased (``Abyssinian_100`` -> ``abyssinian``,
``american_bulldog_10`` -> ``american_bulldog``); label: the annotation's class id - 1.
Rebuilt split: the official trainval/test lists, with 20% of trainval per class carved out as val.
"""
import os

from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, read_lines, split_trainval


def read_pets_annotations(path: str) -> list:
    """``[relpath, label, breed]`` for each line ``<image> <class_id> <species> <breed_id>`` of a Pets list."""
    entries = []
    for line in read_lines(path):
        if line.startswith("#"):
            continue
        imname, class_id = line.split(" ")[:2]
        breed = "_".join(imname.split("_")[:-1]).lower()
        entries.append([f"{imname}.jpg", int(class_id) - 1, breed])
    return entries


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    dataset_dir = "oxford_pets"
    image_dir = "images"
    split_file = "split_zhou_OxfordPets.json"
    stem = "oxford_pets"

    def create_split(self) -> dict:
        anno_dir = os.path.join(self.dataset_dir, "annotations")
        trainval = read_pets_annotations(os.path.join(anno_dir, "trainval.txt"))
        test = read_pets_annotations(os.path.join(anno_dir, "test.txt"))
        train, val = split_trainval(trainval)
        return {"train": train, "val": val, "test": test}
