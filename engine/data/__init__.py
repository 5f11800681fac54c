"""Data (Dassl's ``dassl.data``): the data manager, transforms and the dataset base classes."""
from .data_manager import DataManager, DatasetWrapper, ImageReadError, build_data_loader, build_dataset, read_image
from .transforms import build_transform

__all__ = ["DataManager", "DatasetWrapper", "ImageReadError", "build_data_loader", "build_dataset",
           "read_image", "build_transform"]
