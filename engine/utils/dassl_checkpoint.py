"""Reading checkpoints written by Dassl (CoOp, CoCoOp, MaPLe, RESTORE, LAMM, Nemesis releases) without running code.

Dassl's ``save_checkpoint`` stores the scheduler's ``state_dict()``, which for the warm-up schedulers holds the
``successor`` scheduler OBJECT (a ``CosineAnnealingLR`` with its ``SGD`` optimiser; docs/OFFICIAL_CODE.md).
``torch.load(weights_only=True)`` refuses such a file, and a plain ``torch.load`` would execute whatever the pickle
names. :func:`load_dassl_checkpoint` takes the middle road:

- it still runs torch's ``weights_only`` unpickler (tensors, storages, plain containers, nothing callable);
- through ``torch.serialization.safe_globals`` it admits a fixed allow-list of extra names, the optimiser and
  scheduler classes Dassl pickles (:data:`DASSL_OBJECTS`) and ``collections.defaultdict`` (optimiser state), each
  mapped to an INERT stand-in (:class:`InertObject`, a plain attribute bag; ``defaultdict`` -> a plain ``dict``), so
  no method of the original class (``__init__``, ``__setstate__``) ever runs;
- every other global (``os.system``, ``builtins.eval``, any other class) is refused as before, and the refusal is
  raised as :class:`~engine.utils.checkpoint.UnsafeCheckpointError` naming the file and the global.

Why ``safe_globals`` with stand-ins rather than a ``pickle.Unpickler`` subclass: torch's ``weights_only`` unpickler
already handles both the zip and the legacy formats, persistent storage loading and ``map_location``; a second
unpickler would re-implement all of it. Mapping each admitted name to a stand-in (the ``(object, "module.Name")``
form of ``safe_globals``) keeps the allow-list explicit and the objects inert. Only ``state_dict``, ``epoch`` and
``val_result`` are returned: the optimiser and scheduler states of another codebase are never restored.
"""
from __future__ import annotations

import pickle
from typing import Dict

import torch

from .checkpoint import CheckpointError, UnsafeCheckpointError, load_checkpoint

# Classes a Dassl checkpoint pickles as objects: the warm-up scheduler's successor and the optimiser it references
# (dassl/optim/lr_scheduler.py, dassl/optim/optimizer.py), under their names in torch 1.x and 2.x.
DASSL_OBJECTS = (
    "torch.optim.lr_scheduler.CosineAnnealingLR", "torch.optim.lr_scheduler.StepLR",
    "torch.optim.lr_scheduler.MultiStepLR", "torch.optim.lr_scheduler.ExponentialLR",
    "torch.optim.lr_scheduler._LRScheduler", "torch.optim.lr_scheduler.LRScheduler",
    "torch.optim.sgd.SGD", "torch.optim.adam.Adam", "torch.optim.adamw.AdamW", "torch.optim.rmsprop.RMSprop",
    "torch.optim.radam.RAdam", "torch.optim.optimizer._RequiredParameter",
    "dassl.optim.lr_scheduler.ConstantWarmupScheduler", "dassl.optim.lr_scheduler.LinearWarmupScheduler",
    "dassl.optim.radam.RAdam", "dassl.optim.radam.PlainRAdam", "dassl.optim.radam.AdamW",
)
KEPT_KEYS = ("state_dict", "epoch", "val_result")


class InertObject:
    """A pickled object of an allow-listed class, kept as data: ``qualified_name`` and its pickled ``state``."""

    qualified_name = ""

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<inert {self.qualified_name}>"


def _plain_dict(*_args) -> dict:
    """Stands in for ``collections.defaultdict`` (and its ``dict`` factory): an empty plain dict to fill."""
    return {}


def _allow_list():
    stand_ins = [(type(name.rsplit(".", 1)[1], (InertObject,), {"qualified_name": name}), name)
                 for name in DASSL_OBJECTS]
    return stand_ins + [(_plain_dict, "collections.defaultdict"), (_plain_dict, "builtins.dict")]


def load_dassl_checkpoint(fpath: str, map_location="cpu") -> Dict:
    """``{"state_dict", "epoch", "val_result"}`` of a Dassl checkpoint, read with the allow-list (module docstring).

    Raises :class:`UnsafeCheckpointError` when the file names anything outside the allow-list.
    """
    try:
        with torch.serialization.safe_globals(_allow_list()):
            ckpt = torch.load(fpath, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = str(e).splitlines()
        reason = next((ln.strip() for ln in lines if "GLOBAL" in ln or "global" in ln), lines[0] if lines else "")
        raise UnsafeCheckpointError(
            f"Refusing {fpath}: it pickles something outside the allow-list of Dassl's optimiser and scheduler "
            f"types ({reason}). Nothing from it was run. Only load files from sources you trust; "
            "if this one is, re-save its tensors with the tool that made it.") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{fpath} is not a Dassl checkpoint: no \"state_dict\" dictionary in it.")
    return {k: ckpt.get(k) for k in KEPT_KEYS}


def load_checkpoint_or_dassl(fpath: str, map_location="cpu") -> Dict:
    """:func:`~engine.utils.checkpoint.load_checkpoint`, and for a file it refuses only because it pickles objects,
    :func:`load_dassl_checkpoint` (evaluation of released Dassl checkpoints; never used to resume training)."""
    try:
        return load_checkpoint(fpath, map_location=map_location)
    except UnsafeCheckpointError:
        return load_dassl_checkpoint(fpath, map_location=map_location)
