"""Hand-written prompt templates (CoOp's ``CUSTOM_TEMPLATES``, the APLe draft's set and the ImageNet ensembles).

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

# The APLe draft's own per-dataset templates for its zero-shot teacher (docs/APLE.md); they differ from CoOp's on
# OxfordPets, OxfordFlowers, FGVCAircraft, DescribableTextures and Food101. Unlisted datasets: "a photo of a {}.".
APLE_DRAFT_TEMPLATES = {
    "OxfordPets": "a type of pet, a photo of a {}.",
    "OxfordFlowers": "a type of flower, a photo of a {}.",
    "FGVCAircraft": "a type of aircraft, a photo of a {}.",
    "DescribableTextures": "a texture of {}.",
    "Food101": "a type of food, a photo of {}.",
    "EuroSAT": "a centered satellite photo of {}.",
    "UCF101": "a photo of a person doing {}.",
}

TEMPLATE_SETS = {"coop": CUSTOM_TEMPLATES, "aple_draft": APLE_DRAFT_TEMPLATES}

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


def dataset_template(dataset_name: str, template_set: str = "coop") -> str:
    """The hand-written template of a dataset in ``template_set`` (``TEMPLATE_SETS``; CoOp's by default), and
    ``"a photo of a {}."`` for datasets the set does not list."""
    if template_set not in TEMPLATE_SETS:
        raise ValueError(f'Unknown template set "{template_set}"; choose one of {", ".join(TEMPLATE_SETS)}.')
    return TEMPLATE_SETS[template_set].get(dataset_name, DEFAULT_TEMPLATE)


def config_template(cfg) -> str:
    """``DATASET.TEMPLATE`` when the config sets one, else the dataset's hand-written template."""
    return cfg.DATASET.get("TEMPLATE", "") or dataset_template(cfg.DATASET.NAME)
