"""Stanford Cars (196 classes), CoOp's ``StanfordCars``.

Layout: ``stanford_cars/{cars_train,cars_test}/<n>.jpg``, ``devkit/{cars_train_annos,cars_meta}.mat``,
``cars_test_annos_withlabels.mat``, ``split_zhou_StanfordCars.json``. Split paths are relative to the dataset folder
(``cars_train/00001.jpg``). Class name: the devkit name with the year moved to the front
(``Tesla Model S Sedan 2012`` -> ``2012 Tesla Model S Sedan``); label: the annotation's class - 1.
Rebuilt split: the official train list with 20% per class carved out as val; the labelled test list as test.
"""
import os

from scipy.io import loadmat

from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, split_trainval


def year_first(name: str) -> str:
    words = name.split(" ")
    return " ".join([words[-1]] + words[:-1])


def read_cars_annotations(image_folder: str, anno_file: str, class_names: list) -> list:
    """``[<image_folder>/<fname>, class - 1, year-first class name]`` for each annotation of a devkit ``.mat``."""
    entries = []
    for anno in loadmat(anno_file)["annotations"][0]:
        label = int(anno["class"][0, 0]) - 1
        entries.append([f"{image_folder}/{anno['fname'][0]}", label, year_first(class_names[label])])
    return entries


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    dataset_dir = "stanford_cars"
    image_dir = ""
    split_file = "split_zhou_StanfordCars.json"
    stem = "stanford_cars"

    def create_split(self) -> dict:
        root = self.dataset_dir
        class_names = [str(c[0]) for c in loadmat(os.path.join(root, "devkit", "cars_meta.mat"))["class_names"][0]]
        trainval = read_cars_annotations("cars_train", os.path.join(root, "devkit", "cars_train_annos.mat"),
                                         class_names)
        test = read_cars_annotations("cars_test", os.path.join(root, "cars_test_annos_withlabels.mat"), class_names)
        train, val = split_trainval(trainval)
        return {"train": train, "val": val, "test": test}
