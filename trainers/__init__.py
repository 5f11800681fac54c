"""Trainers. Importing this package registers every trainer module in it with ``TRAINER_REGISTRY``."""
import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
