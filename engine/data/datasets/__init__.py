"""Dassl's dataset API: ``from engine.data.datasets import DATASET_REGISTRY, Datum, DatasetBase``."""
from engine.registry import DATASET_REGISTRY

from .base_dataset import DatasetBase, DatasetError, Datum, MissingDataError

__all__ = ["DATASET_REGISTRY", "DatasetBase", "DatasetError", "Datum", "MissingDataError"]
