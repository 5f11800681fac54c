"""EuroSAT RGB (10 classes), CoOp's ``EuroSAT``.

Layout: ``eurosat/2750/<Class>/<Class>_<n>.jpg``, ``split_zhou_EuroSAT.json``. Class names are CoOp's descriptive
names (``AnnualCrop`` -> ``Annual Crop Land``, ``SeaLake`` -> ``Sea or Lake``, ...). Rebuilt split: 50/20/30 per class.
"""
from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset, split_folders

NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(BenchmarkDataset):
    dataset_dir = "eurosat"
    image_dir = "2750"
    split_file = "split_zhou_EuroSAT.json"
    stem = "eurosat"

    def create_split(self) -> dict:
        return split_folders(self.image_dir, renames=NEW_CNAMES)
