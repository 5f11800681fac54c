"""Checkpoint files: Dassl's names and layout, written atomically, loaded with ``weights_only=True``.

Layout (as Dassl): ``<dir>/<model_name>/model.pth.tar-<epoch>`` plus a text file ``<dir>/<model_name>/checkpoint``
naming the newest file, and ``model-best.pth.tar`` for best-val models. A checkpoint is a dict of tensors and
plain Python values: ``state_dict``, ``epoch`` (number of finished epochs), ``optimizer``, ``scheduler``,
``val_result`` and ``rng``.
"""
from __future__ import annotations

import glob
import os
import pickle
import re
import tempfile
from typing import Optional

import torch

from engine.errors import UserError

# Temporary files of atomic writes, ``.tmp-<target name>.<random>.part`` next to their target; a killed writer may
# leave one behind, and clean-up removes only names of exactly this form (:func:`temp_target`).
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?P<target>[^/]+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + r"\Z")


def temp_target(name: str) -> Optional[str]:
    """The target file name of an atomic writer's temporary file ``name``, or None if ``name`` is not one."""
    m = _TEMP_NAME.match(name)
    return m.group("target") if m else None


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message says which file and what to do."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable checkpoint (truncated, empty, not a torch file)."""


class FileWriteError(UserError, OSError):
    """A file could not be written (a full disk, a read-only folder, a quota); the file it was to replace is
    untouched. An ``OSError`` too, so callers that tolerate a failed write (a read-only folder) keep doing so."""


class UnsafeCheckpointError(CheckpointError):
    """The file is intact but ``weights_only=True`` refuses it: it pickles objects other than tensors and plain
    values (e.g. a Dassl checkpoint's scheduler state)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_file(path: str):
    """``mkstemp`` next to ``path``, named ``.tmp-<name>.<random>.part``, with the mode a plain ``open`` would give
    (mkstemp's is 0600, which a group on a shared cluster cannot read); returns ``(fd, temporary path)``."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{name}.", suffix=TEMP_SUFFIX, dir=directory)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def write_error(path: str, error: BaseException) -> FileWriteError:
    """One line saying that ``path`` could not be written and what to do. ``error`` is the ``OSError``, or the
    ``RuntimeError`` that ``torch.save`` raises when its own writer fails (e.g. on a full disk)."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else (str(error).strip().splitlines()
                                                                                    or [type(error).__name__])[0]
    out = FileWriteError(f"Cannot write {path} ({reason}); is the disk full or the folder read-only? Nothing "
                         "was overwritten: free space (or fix the folder) and rerun the same command.")
    out.errno = getattr(error, "errno", None)
    return out


def _atomic_write(path: str, mode: str, write, check=None) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, flush it to disk, ``check(temporary path)`` if
    given, then rename it over ``path``; on any failure (``check`` raising included) the temporary file is removed
    and ``path`` is untouched. A failed write (``OSError``, or ``torch.save``'s ``RuntimeError``) raises
    :class:`FileWriteError`; what ``check`` raises is raised as it is."""
    try:
        fd, tmp = _temp_file(path)
    except OSError as e:
        raise write_error(path, e) from e
    refused = None
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            try:
                check(tmp)
            except BaseException as e:
                refused = e
        if refused is None:
            os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, (OSError, RuntimeError)) and not isinstance(e, FileWriteError):
            raise write_error(path, e) from e
        raise
    if refused is not None:
        os.remove(tmp)
        raise refused


def atomic_torch_save(obj, path: str, check=None) -> None:
    """``torch.save(obj, path)``, atomically; ``check(temporary path)``, when given, may refuse the file by raising
    (``path`` is then untouched)."""
    _atomic_write(path, "wb", lambda f: torch.save(obj, f), check)


def atomic_write_text(text: str, path: str) -> None:
    """Write ``text`` to ``path`` (UTF-8), atomically."""
    _atomic_write(path, "w", lambda f: f.write(text))


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path``, atomically."""
    _atomic_write(path, "wb", lambda f: f.write(data))


def save_checkpoint(state: dict, save_dir: str, is_best: bool = False, model_name: str = "") -> str:
    """Dassl's ``save_checkpoint``: ``model.pth.tar-<epoch>`` (or ``model_name``), atomically."""
    fname = model_name or f"model.pth.tar-{state['epoch']}"
    fpath = os.path.join(save_dir, fname)
    try:
        atomic_torch_save(state, fpath)
        atomic_write_text(fname + "\n", os.path.join(save_dir, "checkpoint"))
        if is_best:
            atomic_torch_save(state, os.path.join(save_dir, "model-best.pth.tar"))
    except FileWriteError as e:
        out = FileWriteError(f"{e} The run resumes from its last complete epoch, which is intact.")
        out.errno = e.errno
        raise out from e
    return fpath


def load_checkpoint(fpath: str, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``.

    Raises ``CheckpointError`` for a missing file, ``UnsafeCheckpointError`` when ``weights_only`` refuses an
    intact file (it pickles objects), and ``CorruptCheckpointError`` for anything unreadable (truncated, empty).
    """
    if not os.path.isfile(fpath):
        raise CheckpointError(f"Checkpoint not found: {fpath}")
    try:
        return torch.load(fpath, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e) and "Weights only" not in str(e):
            raise CorruptCheckpointError(f"Checkpoint {fpath} is corrupt ({e}).") from None
        raise UnsafeCheckpointError(
            f"Cannot load {fpath} safely: it pickles objects that weights_only=True refuses ({str(e).splitlines()[0]}). "
            "Checkpoints of this project hold only tensors and plain values; a Dassl/CoOp checkpoint also pickles "
            "its scheduler. If you trust the file, re-save only its tensors: ckpt = torch.load(path, "
            "weights_only=False); torch.save({'state_dict': ckpt['state_dict'], 'epoch': ckpt['epoch']}, path)."
        ) from None
    except Exception as e:  # noqa: BLE001 - truncated zip, EOF, bad magic number: the file is damaged
        raise CorruptCheckpointError(
            f"Checkpoint {fpath} is unreadable ({type(e).__name__}: {e}); it is probably truncated (a run killed "
            "while writing it) or not a torch file.") from None


def checkpoint_epochs(model_dir: str) -> list:
    """Epochs of the ``model.pth.tar-<epoch>`` files in ``model_dir``, ascending."""
    epochs = []
    for p in glob.glob(os.path.join(model_dir, "model.pth.tar-*")):
        m = re.search(r"model\.pth\.tar-(\d+)$", p)
        if m:
            epochs.append(int(m.group(1)))
    return sorted(epochs)


def latest_checkpoint(model_dir: str) -> Optional[str]:
    epochs = checkpoint_epochs(model_dir)
    return os.path.join(model_dir, f"model.pth.tar-{epochs[-1]}") if epochs else None


def prune_checkpoints(model_dir: str, keep_last: int, protect: tuple = ()) -> None:
    """Delete all but the newest ``keep_last`` periodic checkpoints (never those in ``protect``)."""
    if keep_last <= 0:
        return
    epochs = checkpoint_epochs(model_dir)
    for e in epochs[:-keep_last]:
        if e not in protect:
            os.remove(os.path.join(model_dir, f"model.pth.tar-{e}"))


def load_pretrained_weights(model: torch.nn.Module, weight_path: str) -> tuple:
    """Load weights by name and shape, skipping the rest (Dassl's helper). Returns (loaded, skipped) key lists."""
    ckpt = load_checkpoint(weight_path)
    state = ckpt.get("state_dict", ckpt)
    own = model.state_dict()
    loaded, skipped = [], []
    new_state = {}
    for k, v in state.items():
        k = k[7:] if k.startswith("module.") else k
        if k in own and own[k].shape == v.shape:
            new_state[k] = v
            loaded.append(k)
        else:
            skipped.append(k)
    own.update(new_state)
    model.load_state_dict(own)
    return loaded, skipped
