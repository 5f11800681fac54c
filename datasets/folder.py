"""Your own images as a benchmark: ``DATASET.NAME Folder`` (``configs/datasets/folder.yaml``).

``DATASET.ROOT`` (``--root``) is either

- a folder of class folders, ``<ROOT>/<class>/<image>``: classes are the sub-folders in sorted order, labelled
  0..; a class's name is the folder name with ``_`` read as a space, or the name given in an optional
  ``<ROOT>/classnames.txt`` (lines ``<folder> <class name>``, as CoOp's ImageNet file);
- or a CSV or JSON list of images, ``<ROOT> = list.csv`` with rows ``path,label`` (a header row ``path,label`` is
  allowed) or ``list.json`` holding ``[[path, label], ...]``: paths relative to the list's folder (or absolute),
  labels are class names (sorted, labelled 0..; ``classnames.txt`` next to the list may rename them).

Ambiguous classes are refused (a ``DatasetError`` naming the folders): two classes whose names are equal as CLIP's
tokenizer reads them (case, ``_`` and spacing ignored; e.g. folders ``a_b`` and ``a b``, or ``classnames.txt``
giving two folders the same name), and a ``classnames.txt`` line for a folder (or list label) that does not exist.

The split: a ``split_zhou_*.json`` file in the dataset folder (the folder itself, or the list's folder) is used
when present (CoOp's format, paths relative to the dataset folder). Otherwise CoOp's rule for folder benchmarks
(DTD, Caltech101: 50% train, 20% val, 30% test per class, shuffled with ``random.Random(SPLIT_SEED)`` over the
sorted files, :func:`datasets.base.split_by_class`) builds one. Images that training could not read (the one policy
of :func:`engine.data.data_manager.read_image`: corrupt, truncated, not an image, a decompression bomb) are left out
of a built split, with a warning naming them. The built split is written as ``split_zhou_Folder.json`` in the
dataset folder (so every later run, evaluation and prediction on this folder reuses exactly the same train/val/test
images, even after images are added) and copied into the run's output directory as a record of what the run
used; a read-only dataset folder keeps it in the output directory only (and a run with the same output directory
reuses it).
Images found on disk but missing from a reused split are reported (delete the split file to split again).

Few-shot subsets (cached in ``<dataset folder>/split_fewshot/``), base/new halves, missing-image errors and
``python -m datasets.show`` behave as for every benchmark (:class:`datasets.base.BenchmarkDataset`). The
hand-written template is ``DATASET.TEMPLATE`` ("a photo of a {}." in ``folder.yaml``).
"""
from __future__ import annotations

import csv
import glob
import json
import logging
import os
import shutil
from typing import Dict, List, Tuple

from engine.data.data_manager import ImageReadError, read_image
from engine.data.datasets import DatasetError, MissingDataError
from engine.registry import DATASET_REGISTRY

from .base import SPLIT_SEED, BenchmarkDataset, format_rows, listdir_nohidden, read_lines, read_split, split_by_class

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CLASSNAMES_FILE = "classnames.txt"
BUILT_SPLIT_FILE = "split_zhou_Folder.json"
NOT_CLASS_FOLDERS = {"split_fewshot"}


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def readable(path: str) -> bool:
    """Whether training and evaluation can read the image: the same policy, :func:`read_image` (a full decode;
    corrupt, truncated, non-image files and decompression bombs are not readable)."""
    try:
        read_image(path)
        return True
    except ImageReadError:
        return False


def normalized_classname(name: str) -> str:
    """The class name as CLIP's text encoder sees it: ``_`` read as a space, whitespace collapsed, lower case (the
    tokenizer's ``whitespace_clean(basic_clean(text)).lower()``, open_clip ``tokenizer.py``,
    ``SimpleTokenizer.encode``); two classes equal here get the same prompts and cannot be told apart."""
    return " ".join(name.replace("_", " ").split()).lower()


def check_distinct_classes(classes: Dict[str, str], where: str) -> None:
    """Refuse classes ``{folder or label: class name}`` whose names are equal after normalisation."""
    groups: Dict[str, List[str]] = {}
    for key, name in classes.items():
        groups.setdefault(normalized_classname(name), []).append(key)
    clashes = [keys for keys in groups.values() if len(keys) > 1]
    if clashes:
        shown = "; ".join(" and ".join(f'"{k}"' for k in keys) + f' are all "{classes[keys[0]]}"' for keys in clashes)
        raise DatasetError(f"Folder: classes with the same name in {where} (compared as CLIP reads them: case, '_' "
                           f"and spacing ignored): {shown}. CLIP cannot tell them apart; rename the folders or give "
                           f"them distinct names in {CLASSNAMES_FILE}.")


def read_classnames(path: str) -> Dict[str, str]:
    """``classnames.txt``: ``{folder or label: class name}`` from lines ``<key> <class name>``."""
    names = {}
    for i, line in enumerate(read_lines(path), 1):
        key, _, name = line.partition(" ")
        if not name.strip():
            raise DatasetError(f"{path}, line {i}: expected '<folder> <class name>', got {line!r}.")
        names[key] = name.strip()
    return names


def read_image_list(path: str) -> List[Tuple[str, str]]:
    """``[(path, label), ...]`` from a CSV (``path,label`` rows, optional header) or JSON (``[[path, label], ...]``)."""
    if path.lower().endswith(".json"):
        with open(path, encoding="utf-8") as f:
            try:
                rows = json.load(f)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path} is not valid JSON ({e}).") from None
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
        if rows and [c.strip().lower() for c in rows[0]] == ["path", "label"]:
            rows = rows[1:]
    bad = next((r for r in rows if not (isinstance(r, (list, tuple)) and len(r) == 2)), None) if isinstance(
        rows, list) else rows
    if bad is not None:
        raise DatasetError(f"{path}: every entry must be [path, label]; found {bad!r}.")
    return [(str(p).strip(), str(label).strip()) for p, label in rows]


@DATASET_REGISTRY.register()
class Folder(BenchmarkDataset):
    """A folder of class folders, or a CSV/JSON image list; see the module docstring."""

    dataset_dir = ""
    image_dir = ""
    stem = "folder"

    def __init__(self, cfg):
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT)) if cfg.DATASET.ROOT else ""
        self.list_file = root if os.path.isfile(root) else ""
        self.output_dir = cfg.OUTPUT_DIR
        if root and not os.path.exists(root):
            raise MissingDataError(f"Folder: DATASET.ROOT {root} does not exist. Pass --root with the folder that "
                                   f"holds one sub-folder of images per class, or a CSV/JSON list of path,label.")
        if self.list_file:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.DATASET.ROOT = os.path.dirname(root)
        self.split_file = self.find_split_file(os.path.dirname(root) if self.list_file else root)
        super().__init__(cfg)

    @staticmethod
    def find_split_file(folder: str) -> str:
        """The name of the one ``split_zhou_*.json`` in ``folder`` (the built one if several), or the built name."""
        found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(folder), "split_zhou_*.json")))
        others = [f for f in found if f != BUILT_SPLIT_FILE]
        if len(others) > 1:
            raise DatasetError(f"Folder: {folder} holds several split files ({', '.join(others)}); keep one.")
        return others[0] if others else BUILT_SPLIT_FILE

    # ---- messages ------------------------------------------------------------------------------------------
    def download_command(self) -> str:
        return "(your own data: nothing to download)"

    def download_hint(self) -> str:
        return ("Check --root: it must be the folder that holds one sub-folder of images per class, or a CSV/JSON "
                "list of path,label.")

    def created_split_warning(self) -> str:
        return (f"Folder: no split file in {os.path.normpath(self.dataset_dir)}; built a 50/20/30 train/val/test split per class "
                f"(seed {SPLIT_SEED}) and saved it as {self.split_path}. Later runs reuse it.")

    # ---- the split -------------------------------------------------------------------------------------------
    def load_split(self):
        record = os.path.join(self.output_dir, BUILT_SPLIT_FILE) if self.output_dir else ""
        self.built = False
        if self.split_file == BUILT_SPLIT_FILE and not os.path.isfile(self.split_path) and record and \
                os.path.isfile(record):
            log.info("Reading split from %s (the dataset folder has none)", record)
            split = read_split(record)
        else:
            split = super().load_split()
        if not self.built:
            self.report_unused(split)
            check_distinct_classes(self.split_classes(split), self.split_path)
        if record and os.path.abspath(record) != os.path.abspath(self.split_path) and not os.path.isfile(record):
            if os.path.isfile(self.split_path):
                os.makedirs(self.output_dir, exist_ok=True)
                shutil.copyfile(self.split_path, record)
            else:  # the dataset folder is read-only: the run's folder keeps the split
                self.write_or_warn(record, format_rows(split))
        return split

    def create_split(self) -> dict:
        self.built = True
        items = self.list_items() if self.list_file else self.folder_items()
        names = read_classnames(os.path.join(self.dataset_dir, CLASSNAMES_FILE)) if os.path.isfile(
            os.path.join(self.dataset_dir, CLASSNAMES_FILE)) else {}
        keys = sorted(items)
        self.check_classnames(names)
        check_distinct_classes({key: names.get(key, key.replace("_", " ")) for key in keys},
                               self.list_file or self.dataset_dir)
        if len(keys) < 2:
            raise DatasetError(f"Folder: found {len(keys)} class(es) under {self.list_file or self.dataset_dir}; "
                               f"a classifier needs at least 2 (one sub-folder of images per class).")
        unreadable = []
        classes = []
        for label, key in enumerate(keys):
            good = []
            for rel in items[key]:
                (good if readable(os.path.join(self.image_dir, rel)) else unreadable).append(rel)
            classes.append((label, names.get(key, key.replace("_", " ")), good))
        if unreadable:
            shown = ", ".join(unreadable[:5]) + (", ..." if len(unreadable) > 5 else "")
            log.warning("Folder: left %d unreadable image(s) out of the split (corrupt or not images): %s",
                        len(unreadable), shown)
        return split_by_class(classes)

    def check_classnames(self, names: Dict[str, str]) -> None:
        """Refuse ``classnames.txt`` lines whose folder (or list label) does not exist."""
        if self.list_file:
            known = {label for _, label in read_image_list(self.list_file)}
        else:
            known = set(listdir_nohidden(self.image_dir, dirs_only=True))
        unknown = sorted(set(names) - known)
        if unknown:
            what = "label in " + self.list_file if self.list_file else "class folder in " + self.image_dir
            raise DatasetError(f"Folder: {os.path.join(self.dataset_dir, CLASSNAMES_FILE)} names "
                               f"{', '.join(repr(k) for k in unknown)}, which is no {what}. Fix the folder "
                               "name in those lines, or remove them.")

    def folder_items(self) -> Dict[str, List[str]]:
        """``{class folder: [relpath, ...]}`` of the image files in each class folder (sorted)."""
        folders = [f for f in listdir_nohidden(self.image_dir, dirs_only=True) if f not in NOT_CLASS_FOLDERS]
        items = {f: [f"{f}/{n}" for n in listdir_nohidden(os.path.join(self.image_dir, f)) if is_image(n)]
                 for f in folders}
        empty = [f for f, rels in items.items() if not rels]
        if empty:
            log.warning("Folder: ignoring sub-folders without images: %s", ", ".join(empty))
        return {f: rels for f, rels in items.items() if rels}

    def list_items(self) -> Dict[str, List[str]]:
        """``{label: [relpath, ...]}`` from the image list (paths made relative to the list's folder)."""
        items: Dict[str, List[str]] = {}
        for path, label in read_image_list(self.list_file):
            full = path if os.path.isabs(path) else os.path.join(self.image_dir, path)
            if not os.path.isfile(full):
                raise MissingDataError(f"Folder: {self.list_file} names {path}, which does not exist ({full}).")
            items.setdefault(label, []).append(os.path.relpath(full, self.image_dir).replace(os.sep, "/"))
        return {k: sorted(v) for k, v in items.items()}

    def split_classes(self, split) -> Dict[str, str]:
        """``{class folder (or "label N" for an image list): class name}`` of a split's items."""
        classes = {}
        for key in ("train", "val", "test"):
            for rel, label, name in split[key]:
                classes[f"label {label}" if self.list_file else rel.split("/")[0]] = name
        return classes

    def report_unused(self, split) -> None:
        """Warn when class folders hold readable images that the (reused) split does not list."""
        if self.list_file:
            return
        listed = {rel for key in ("train", "val", "test") for rel, _, _ in split[key]}
        on_disk = {rel for rels in self.folder_items().values() for rel in rels}
        extra = [rel for rel in sorted(on_disk - listed) if readable(os.path.join(self.image_dir, rel))]
        if extra:
            log.warning("Folder: %d image(s) in the class folders are not in the split %s and are not used (e.g. "
                        "%s): images added since the split was built need a new one (delete the file to split "
                        "again).", len(extra), self.split_path,
                        ", ".join(extra[:3]))
