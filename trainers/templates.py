"""Hand-written prompt templates (CoOp's ``CUSTOM_TEMPLATES`` and the ImageNet ensembles).

The 80 ImageNet templates come from open_clip's copy of OpenAI's list; ``IMAGENET_TEMPLATES_SELECT`` are the 7
that CoOp's ZeroshotCLIP2 ensembles with the per-dataset template.
"""
from __future__ import annotations

from typing import List

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

DEFAULT_TEMPLATE = "a photo of a {}."

CUSTOM_TEMPLATES = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
}

IMAGENET_TEMPLATES: List[str] = [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]

IMAGENET_TEMPLATES_SELECT = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def dataset_template(dataset_name: str) -> str:
    """The hand-written template of a dataset (``"a photo of a {}."`` for datasets CoOp did not list)."""
    return CUSTOM_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


def config_template(cfg) -> str:
    """``DATASET.TEMPLATE`` when the config sets one, else the dataset's hand-written template."""
    return cfg.DATASET.get("TEMPLATE", "") or dataset_template(cfg.DATASET.NAME)
