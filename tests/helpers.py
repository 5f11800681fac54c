"""Generated data and tiny models for the tests (nothing is downloaded or committed as images).

``make_color_dataset(root)`` writes a small image-folder benchmark - one class per colour name, noisy solid-colour
images - in CoOp's layout (``<root>/test_colors/images/<class>/<i>.png`` + ``split_zhou_TestColors.json``), and
``TestColors`` reads it through the shared ``BenchmarkDataset`` like any real benchmark.
"""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

import trainers  # noqa: F401  (registers every trainer)
from datasets.base import BenchmarkDataset
from engine.registry import DATASET_REGISTRY, TRAINER_REGISTRY
from trainers.facts import facts_of

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_VIT = "random:" + os.path.join(HERE, "fixtures", "tiny_vit.json")
TINY_RN = "random:" + os.path.join(HERE, "fixtures", "tiny_rn.json")

COLORS = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
    "purple": (140, 30, 180), "orange": (240, 140, 20), "white": (240, 240, 240), "black": (15, 15, 15),
}


@DATASET_REGISTRY.register(force=True)
class TestColors(BenchmarkDataset):
    dataset_dir = "test_colors"
    image_dir = "images"
    split_file = "split_zhou_TestColors.json"
    stem = "test_colors"


def make_color_dataset(root: str, n_classes: int = 6, n_train: int = 8, n_val: int = 2, n_test: int = 4,
                       size: int = 32, seed: int = 0, classnames=None) -> str:
    """Write the dataset under ``root`` (once) and return the dataset folder. ``classnames`` replaces the colour
    names (class ``i`` keeps the ``i``-th colour, cyclically), e.g. to build a trainer on a fixture's classes."""
    folder = os.path.join(root, TestColors.dataset_dir)
    split_path = os.path.join(folder, TestColors.split_file)
    if os.path.isfile(split_path):
        return folder
    rng = np.random.default_rng(seed)
    split = {"train": [], "val": [], "test": []}
    names = list(classnames) if classnames is not None else list(COLORS)[:n_classes]
    colours = list(COLORS.values())
    for label, name in enumerate(names):
        rgb = colours[label % len(colours)]
        os.makedirs(os.path.join(folder, "images", name), exist_ok=True)
        counts = (("train", n_train), ("val", n_val), ("test", n_test))
        i = 0
        for part, n in counts:
            for _ in range(n):
                pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
                rel = f"{name}/{i}.png"
                Image.fromarray(pixels).save(os.path.join(folder, "images", rel))
                split[part].append([rel, label, name])
                i += 1
    with open(split_path, "w") as f:
        json.dump(split, f)
    return folder


TINY_OPTS = [
    "INPUT.SIZE", "(32, 32)", "INPUT.INTERPOLATION", "bicubic",
    "INPUT.PIXEL_MEAN", "[0.48145466, 0.4578275, 0.40821073]", "INPUT.PIXEL_STD", "[0.26862954, 0.26130258, 0.27577711]",
    "INPUT.TRANSFORMS", "('random_resized_crop', 'random_flip', 'normalize')",
    "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "16",
    "OPTIM.NAME", "sgd", "OPTIM.LR", "0.002", "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.WARMUP_EPOCH", "1",
    "OPTIM.WARMUP_TYPE", "constant", "OPTIM.WARMUP_CONS_LR", "1e-5", "TRAIN.PRINT_FREQ", "100",
]


# Deep-prompt trainers at depths that fit the 3-block tiny ViT (their defaults go deeper than it has blocks): each
# trainer's own FACTS.tiny_opts.
TINY_VIT_DEPTHS = {name: list(facts_of(TRAINER_REGISTRY.get(name)).tiny_opts)
                   for name in ("MaPLe", "IVLP", "VPT", "RESTORE")}


def tiny_cfg(root: str, output_dir: str, trainer: str = "CoOp", backbone: str = TINY_VIT, seed: int = 1,
             opts=(), freeze: bool = True):
    """A resolved config for a tiny run on ``TestColors`` (the dataset is generated if absent)."""
    from engine.config import build_cfg

    make_color_dataset(root)
    all_opts = ["DATASET.NAME", "TestColors", "OPTIM.MAX_EPOCH", "2", *TINY_OPTS, *opts]
    return build_cfg("", "", all_opts, root=root, output_dir=output_dir, seed=seed, trainer=trainer,
                     backbone=backbone, freeze=freeze)
