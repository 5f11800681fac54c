"""UCF101 middle frames (101 actions), CoOp's ``UCF101``.

Layout: ``ucf101/UCF-101-midframes/<Renamed_Action>/<video>.jpg`` (CoOp's middle-frame zip),
``ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt``, ``split_zhou_UCF101.json``.
Class name: the CamelCase action split at capitals and joined by ``_`` (``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup``),
which is also the frame folder name; label: ``classInd.txt`` id - 1. Rebuilt split: split 01's train list with 20% per
class carved out as val, its test list as test.
"""
import os
import re

from engine.data.datasets import DatasetError
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, read_lines, split_trainval


def split_camel_case(action: str) -> str:
    """``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup`` (CoOp: the words found by ``[A-Z][^A-Z]*``, joined by ``_``)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    dataset_dir = "ucf101"
    image_dir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    stem = "ucf101"

    def create_split(self) -> dict:
        lists = os.path.join(self.dataset_dir, "ucfTrainTestlist")
        cname2lab = {}
        for line in read_lines(os.path.join(lists, "classInd.txt")):
            class_id, action = line.split(" ")
            cname2lab[action] = int(class_id) - 1
        trainval = self.read_list(os.path.join(lists, "trainlist01.txt"), cname2lab)
        test = self.read_list(os.path.join(lists, "testlist01.txt"), cname2lab)
        train, val = split_trainval(trainval)
        return {"train": train, "val": val, "test": test}

    @staticmethod
    def read_list(path: str, cname2lab: dict) -> list:
        entries = []
        for line in read_lines(path):
            action, video = line.split(" ")[0].split("/")
            if action not in cname2lab:
                raise DatasetError(f'{path}: action "{action}" is not in classInd.txt.')
            renamed = split_camel_case(action)
            entries.append([f"{renamed}/{video.replace('.avi', '.jpg')}", cname2lab[action], renamed])
        return entries
