"""Benchmarks. Importing this package registers every dataset module in it with ``DATASET_REGISTRY``.

Command-line modules (``show``, ``download``, ...) are skipped: they import what they need themselves.
"""
import importlib
import pkgutil

_COMMANDS = {"show", "download", "toy_world", "sources", "layout"}

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in _COMMANDS and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")
