"""One consistent checkpoint per epoch for all of a trainer's registered modules.

Layout (Dassl's, so ``--model-dir`` reads it as before)::

    <dir>/<module>/model.pth.tar-<E>      one file per registered module, written atomically
    <dir>/<module>/model-best.pth.tar     best-validation model (``TEST.FINAL_MODEL best_val``)
    <dir>/checkpoints.json                the manifest, rewritten last: the epochs complete for every module

Epoch ``E`` is saved by writing every module's file, then the manifest naming ``E``; a run killed between two files
therefore resumes from the previous complete epoch, never from a mix. The manifest also records the trainer, the
modules, the best validation result and epoch (``best_val``), the resolved config the checkpoint was trained with
and any config change allowed on resume. A folder without a manifest (an older run, released weights) counts the
epochs present for every module as complete.

Each module file says what it is: ``trainer``, ``module``, ``modules`` (all registered names) and ``shapes`` (the
shape of every saved tensor), so loading it into another trainer or module is refused with both sides named.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, Iterable, List, Optional

import torch
import torch.nn as nn

from engine.utils.checkpoint import CheckpointError, atomic_write_text, checkpoint_epochs

logger = logging.getLogger(__name__)

MANIFEST_FILE = "checkpoints.json"
BEST_FILE = "model-best.pth.tar"
FORMAT = 2  # 1: Dassl-style files without identity or manifest
PARTIAL_FLAG = "--allow-partial-load (config MODEL.ALLOW_PARTIAL_LOAD True)"


class CheckpointMismatchError(CheckpointError):
    """A checkpoint of another trainer or module, or whose keys or shapes differ from the model's."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where one was asked for."""


def module_path(directory: str, name: str, epoch: int) -> str:
    return os.path.join(directory, name, f"model.pth.tar-{epoch}")


# ---- identity ---------------------------------------------------------------------------------------------------
def identity(trainer: str, modules: List[str], name: str, state_dict: Dict[str, torch.Tensor]) -> dict:
    """What a module file stores about itself."""
    return {"format": FORMAT, "trainer": trainer, "module": name, "modules": list(modules),
            "shapes": {k: list(v.shape) for k, v in state_dict.items()}}


def check_identity(ckpt: dict, trainer: str, modules: List[str], name: str, path: str, allow_partial: bool) -> None:
    """Refuse a file saved by another trainer or for another module (files without identity pass: their keys are
    checked after the trainer's mapping, see :func:`matching_state`)."""
    saved = ckpt.get("trainer")
    if saved is None or (saved == trainer and ckpt.get("module") == name):
        return
    msg = (f"{path} holds the \"{ckpt.get('module')}\" module of a {saved} run (modules {ckpt.get('modules')}); "
           f"this run is {trainer} and loads its \"{name}\" module (modules {list(modules)}).")
    if not allow_partial:
        raise CheckpointMismatchError(f"{msg} Use --trainer {saved} to evaluate that run, or pass {PARTIAL_FLAG} to "
                                      "load only the keys that match.")
    logger.warning("%s Loading the keys that match (MODEL.ALLOW_PARTIAL_LOAD).", msg)


def non_persistent_buffers(module: nn.Module) -> set:
    """Dotted names of buffers left out of ``state_dict`` (class-set-dependent: rebuilt, never loaded)."""
    names = set()
    for prefix, m in module.named_modules():
        for b in getattr(m, "_non_persistent_buffers_set", ()):
            names.add(f"{prefix}.{b}" if prefix else b)
    return names


def _listed(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def matching_state(module: nn.Module, state_dict: Dict[str, torch.Tensor], what: str, allow_partial: bool,
                   ignore_missing=lambda key: False) -> Dict[str, torch.Tensor]:
    """The entries of ``state_dict`` to load into ``module``, whose keys and shapes must match exactly.

    Saved values of non-persistent buffers (e.g. an official CoOp checkpoint's ``token_prefix``) are dropped:
    they depend on the class set and are rebuilt. Any other missing or unexpected key, or a shape mismatch, raises
    :class:`CheckpointMismatchError` naming both sides, unless ``allow_partial`` (then only matching keys load).
    """
    own = module.state_dict()
    rebuilt = non_persistent_buffers(module)
    unexpected = [k for k in state_dict if k not in own and k not in rebuilt]
    missing = [k for k in own if k not in state_dict and not ignore_missing(k)]
    mismatched = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)}
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"the model has keys the checkpoint lacks: {_listed(missing)}")
        if unexpected:
            parts.append(f"the checkpoint has keys the model lacks: {_listed(unexpected)}")
        if mismatched:
            parts.append("shapes differ (checkpoint vs model): "
                         + _listed(f"{k} {list(a)} vs {list(b)}" for k, (a, b) in mismatched.items()))
        msg = f"The checkpoint does not fit {what}: " + "; ".join(parts) + "."
        if not allow_partial:
            raise CheckpointMismatchError(f"{msg} Check --trainer and its settings (e.g. N_CTX, PROMPT_DEPTH), or "
                                          f"pass {PARTIAL_FLAG} to load only the matching keys.")
        logger.warning("%s Loading the matching keys only (MODEL.ALLOW_PARTIAL_LOAD).", msg)
    return {k: v for k, v in state_dict.items() if k in own and k not in mismatched}


# ---- the manifest -----------------------------------------------------------------------------------------------
def new_manifest(trainer: str, modules: List[str]) -> dict:
    return {"format": FORMAT, "trainer": trainer, "modules": list(modules), "epochs": [], "best": None,
            "config": None, "config_changes": []}


def read_manifest(directory: str) -> Optional[dict]:
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("epochs"), list):
            raise ValueError("not a checkpoint manifest")
        return manifest
    except (OSError, ValueError) as e:
        logger.warning("Ignoring the unreadable %s (%s); counting the epochs saved for every module instead.",
                       path, e)
        return None


def write_manifest(directory: str, manifest: dict) -> None:
    atomic_write_text(json.dumps(manifest, indent=1) + "\n", os.path.join(directory, MANIFEST_FILE))


def complete_epochs(directory: str, modules: List[str], manifest: Optional[dict]) -> List[int]:
    """Epochs, ascending, whose files exist for every module (and that the manifest, if any, declares complete)."""
    if not modules:
        return []
    on_disk = set(checkpoint_epochs(os.path.join(directory, modules[0])))
    for name in modules[1:]:
        on_disk &= set(checkpoint_epochs(os.path.join(directory, name)))
    if manifest is not None:
        on_disk &= set(manifest["epochs"])
    return sorted(on_disk)


def prune(directory: str, manifest: dict, modules: List[str], keep_last: int, protect: tuple = ()) -> None:
    """Keep the newest ``keep_last`` complete epochs (and ``protect``); older module files go. The manifest is
    rewritten first, so no epoch it lists ever lacks a file."""
    epochs = sorted(manifest["epochs"])
    if keep_last <= 0 or not epochs:
        return
    kept = set(epochs[-keep_last:]) | set(protect)
    if len(kept & set(epochs)) < len(epochs):
        manifest["epochs"] = [e for e in epochs if e in kept]
        write_manifest(directory, manifest)
    for name in modules:
        for e in checkpoint_epochs(os.path.join(directory, name)):
            if e < epochs[-1] and e not in kept:
                os.remove(module_path(directory, name, e))
