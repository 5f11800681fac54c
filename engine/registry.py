"""Name -> class registries (Dassl's ``Registry`` semantics, case-insensitive lookup).

Usage, exactly as with Dassl::

    @TRAINER_REGISTRY.register()            # key = class name
    class CoOp(TrainerX): ...

    @TRAINER_REGISTRY.register("RESTORE")   # explicit key
    class RestoreTrainer(TrainerX): ...

Registration happens when a module is imported; ``trainers/__init__.py`` and
``datasets/__init__.py`` import every module of their package.
"""
from __future__ import annotations

import difflib
from typing import Callable, Dict, List, Optional


class Registry:
    def __init__(self, name: str):
        self._name = name
        self._obj_map: Dict[str, object] = {}

    def _do_register(self, name: str, obj: object, force: bool = False) -> None:
        clash = self._lookup_key(name)
        if clash is not None and not force:
            raise KeyError(
                f'An object named "{name}" is already registered in the {self._name} registry '
                f'(as "{clash}"); pass force=True to replace it.'
            )
        if clash is not None:
            del self._obj_map[clash]
        self._obj_map[name] = obj

    def register(self, obj=None, name: Optional[str] = None, force: bool = False) -> Callable:
        """Register ``obj`` (or decorate). ``register("NAME")`` registers under an explicit key."""
        if isinstance(obj, str):
            name, obj = obj, None
        if obj is None:
            def deco(cls):
                self._do_register(name or cls.__name__, cls, force=force)
                return cls
            return deco
        self._do_register(name or obj.__name__, obj, force=force)
        return obj

    def _lookup_key(self, name: str) -> Optional[str]:
        if name in self._obj_map:
            return name
        lowered = name.lower()
        for key in self._obj_map:
            if key.lower() == lowered:
                return key
        return None

    def get(self, name: str):
        key = self._lookup_key(name)
        if key is None:
            raise KeyError(unknown_name_message(self._name, name, self.registered_names()))
        return self._obj_map[key]

    def registered_names(self) -> List[str]:
        return list(self._obj_map.keys())

    def __contains__(self, name: str) -> bool:
        return self._lookup_key(name) is not None

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, {sorted(self._obj_map)})"


def unknown_name_message(kind: str, name: str, available: List[str]) -> str:
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    close += [a for a in available if a.lower().startswith(name.lower()[:3]) and a not in close][:2]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f'Unknown {kind} "{name}".{hint} Available: {", ".join(sorted(available)) or "(none)"}.'


def check_availability(requested: str, available: List[str]) -> None:
    """Dassl's helper: raise ``ValueError`` with the closest valid name when ``requested`` is unknown."""
    if requested not in available:
        raise ValueError(unknown_name_message("name", requested, available))


TRAINER_REGISTRY = Registry("trainer")
DATASET_REGISTRY = Registry("dataset")
EVALUATOR_REGISTRY = Registry("evaluator")
