"""The shared base of every benchmark: CoOp's split files, few-shot subsets and base/new class halves.

A benchmark subclass supplies only paths and naming rules::

    @DATASET_REGISTRY.register()
    class OxfordPets(BenchmarkDataset):
        dataset_dir = "oxford_pets"                # folder under DATASET.ROOT
        image_dir = "images"                       # split paths are relative to <dataset_dir>/<image_dir>
        split_file = "split_zhou_OxfordPets.json"  # in <dataset_dir>; "" = build the split on every load
        stem = "oxford_pets"                       # configs/datasets/<stem>.yaml, and the download command

        def create_split(self) -> dict:            # {"train"|"val"|"test": [[relpath, label, classname], ...]}
            ...

``BenchmarkDataset(cfg)`` then does what every CoOp dataset did (``KaiyangZhou/CoOp`` ``datasets/oxford_pets.py``:
``OxfordPets.read_split``, ``subsample_classes``; docs/OFFICIAL_CODE.md):

1. Read ``split_file``. If it is missing, build the split with ``create_split`` (CoOp's procedure), write it, and
   warn that it is not CoOp's released split, so results are not comparable with published ones.
2. If ``DATASET.NUM_SHOTS = k >= 1``: keep ``k`` training items per class, then ``min(k, 4)`` validation items per
   class, both drawn from ONE ``random.Random(SEED)`` in that order. CoOp draws the same way from Python's global
   ``random`` right after ``random.seed(SEED)``, so the subsets are CoOp's own. They are cached as JSON in
   ``<dataset_dir>/split_fewshot/`` with paths relative to the dataset folder, keyed by the split's SHA-256, the
   shots and the seed: a moved ROOT still finds them, a changed split never serves stale ones. A class with fewer
   than ``k`` training items keeps all of them (Dassl); one warning says so, and ``shots_per_class`` (recorded in
   results.json) holds the actual count of every class.
3. Keep the base or new half of the classes (``DATASET.SUBSAMPLE_CLASSES``, :func:`subsample_classes`).

Missing folders, files and images raise :class:`MissingDataError` with one message that names the expected path
and the download command ``python -m datasets.download <stem> --root <ROOT>``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import random
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from engine.data.datasets import DatasetBase, DatasetError, Datum, MissingDataError
from engine.utils.checkpoint import atomic_write_text

from .layout import UnknownDatasetError, missing_paths

log = logging.getLogger(__name__)

SPLIT_KEYS = ("train", "val", "test")
SUBSAMPLE_CHOICES = ("all", "base", "new")
VAL_MAX_SHOTS = 4  # CoOp's few-shot val: min(k, 4) per class
SPLIT_SEED = 1  # seed of the local RNG that builds a missing split (see split_by_class)
FEWSHOT_CACHE_FORMAT = 1
IMAGES_CHECKED_PER_LIST = 200

Entry = list  # [relpath, label, classname]
Split = Dict[str, List[Entry]]


# ---------------------------------------------------------------------------------------------------------------------
# Base / new classes
# ---------------------------------------------------------------------------------------------------------------------
def subsample_classes(*datasets: Sequence[Datum], subsample: str = "all") -> List[List[Datum]]:
    """CoOp's ``OxfordPets.subsample_classes``: keep the base or the new half of the classes, relabelled from 0.

    The classes are the sorted unique labels of the FIRST list (train); with ``n`` of them and ``m = ceil(n / 2)``,
    ``base`` keeps ``labels[:m]`` and ``new`` keeps ``labels[m:]``. Kept items get label = rank among the kept
    labels, and the same selection applies to every list passed (train, val, test). ``all`` returns the lists
    unchanged. E.g. 37 Pets classes -> 19 base, 18 new.
    """
    if subsample not in SUBSAMPLE_CHOICES:
        raise DatasetError(f'DATASET.SUBSAMPLE_CLASSES must be one of {", ".join(SUBSAMPLE_CHOICES)}; '
                           f'got "{subsample}".')
    if subsample == "all":
        return [list(d) for d in datasets]
    labels = sorted({item.label for item in datasets[0]}) if datasets else []
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabel = {old: new for new, old in enumerate(selected)}
    return [
        [Datum(item.impath, relabel[item.label], item.domain, item.classname) for item in d if item.label in relabel]
        for d in datasets
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Split files: {"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}
# ---------------------------------------------------------------------------------------------------------------------
def check_split(obj, source: str) -> Split:
    """Validate a split: lists under ``train``/``val``/``test`` of ``[str, int, str]`` entries (tuples become lists).
    Returns it; a malformed one raises one :class:`DatasetError` naming ``source`` and the first bad entry."""
    if not isinstance(obj, dict) or any(not isinstance(obj.get(k), list) for k in SPLIT_KEYS):
        raise DatasetError(f"{source} must be a JSON object with lists under \"train\", \"val\" and \"test\" "
                           f"(CoOp's split_zhou_*.json format). Delete it and re-download or rebuild it.")
    split = {}
    for key in SPLIT_KEYS:
        rows = [list(r) if type(r) is tuple else r for r in obj[key]]
        bad = next((i for i, r in enumerate(rows) if not (type(r) is list and len(r) == 3 and type(r[0]) is str
                                                          and type(r[1]) is int and type(r[2]) is str)), None)
        if bad is not None:
            raise DatasetError(f"{source}: entry {bad} of \"{key}\" is {rows[bad]!r}; every entry must be "
                               f"[relative_image_path, integer_label, classname].")
        split[key] = rows
    return split


def read_split(path: str) -> Split:
    """Read and validate a split JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"Split file {path} is not valid JSON ({e}). Delete it and download it again.") from None
    return check_split(obj, f"Split file {path}")


def format_rows(obj: Dict[str, list]) -> str:
    """A dict of lists as JSON text with one list item per line (readable, diffable, compact for 1.3M entries)."""
    blocks = []
    for key, items in obj.items():
        rows = ",\n    ".join(json.dumps(row, ensure_ascii=False) for row in items)
        blocks.append(f"  {json.dumps(key)}: [\n    {rows}\n  ]" if rows else f"  {json.dumps(key)}: []")
    return "{\n" + ",\n".join(blocks) + "\n}\n"


def split_sha256(split: Split) -> str:
    """SHA-256 of the split's canonical JSON: the identity of a split, whatever file it came from."""
    canonical = json.dumps([split[k] for k in SPLIT_KEYS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------------------
# Building a missing split with CoOp's procedures
# ---------------------------------------------------------------------------------------------------------------------
def listdir_nohidden(path: str, dirs_only: bool = False) -> List[str]:
    """Sorted names in ``path`` that do not start with ``.`` (Dassl's ``listdir_nohidden``, always sorted).

    CoOp listed files in filesystem order before shuffling; sorting here makes a rebuilt split depend only on the
    files, not on the filesystem. Raises ``FileNotFoundError`` (with ``filename``) when ``path`` is missing.
    """
    with os.scandir(path) as it:
        names = [e.name for e in it if not e.name.startswith(".") and (e.is_dir() or not dirs_only)]
    return sorted(names)


def split_by_class(classes: Iterable[Tuple[int, str, List[str]]], p_trn: float = 0.5, p_val: float = 0.2,
                   seed: int = SPLIT_SEED) -> Split:
    """Cut each class ``(label, classname, relpaths)`` into train/val/test, in the order given.

    CoOp's ``DescribableTextures.read_and_split_data`` and ``OxfordFlowers.read_data``: shuffle the class's images,
    then ``n_train = round(n * p_trn)``, ``n_val = round(n * p_val)``, the rest is test (Python's ``round``).
    CoOp shuffled with the global ``random`` of whichever run first built the split (seed 1 in its scripts, then its
    few-shot draw continued the same stream); here a local ``random.Random(seed)`` does it, so the split depends
    only on the files. A rebuilt split is still not CoOp's released JSON (different file order and draw).
    """
    rng = random.Random(seed)
    split = {k: [] for k in SPLIT_KEYS}
    for label, classname, relpaths in classes:
        relpaths = list(relpaths)
        rng.shuffle(relpaths)
        n_train, n_val = round(len(relpaths) * p_trn), round(len(relpaths) * p_val)
        if n_train < 1 or n_val < 1 or len(relpaths) - n_train - n_val < 1:
            raise DatasetError(f'Class "{classname}" has {len(relpaths)} images, too few for a '
                               f"{p_trn:.0%}/{p_val:.0%}/{1 - p_trn - p_val:.0%} train/val/test split.")
        split["train"] += [[p, label, classname] for p in relpaths[:n_train]]
        split["val"] += [[p, label, classname] for p in relpaths[n_train:n_train + n_val]]
        split["test"] += [[p, label, classname] for p in relpaths[n_train + n_val:]]
    return split


def split_folders(image_dir: str, ignored: Iterable[str] = (), renames: Optional[Dict[str, str]] = None,
                  seed: int = SPLIT_SEED) -> Split:
    """50/20/30 per class from ``image_dir/<class>/<image>`` (Caltech101, DTD, EuroSAT, Food101).

    Class folders are sorted and labelled 0.. in that order after dropping ``ignored``; a folder's classname is
    ``renames.get(folder, folder)``. Relpaths are ``<folder>/<image>``.
    """
    renames = renames or {}
    folders = [f for f in listdir_nohidden(image_dir, dirs_only=True) if f not in set(ignored)]
    classes = ((label, renames.get(folder, folder),
                [f"{folder}/{name}" for name in listdir_nohidden(os.path.join(image_dir, folder))])
               for label, folder in enumerate(folders))
    return split_by_class(classes, seed=seed)


def split_trainval(trainval: List[Entry], p_val: float = 0.2, seed: int = SPLIT_SEED) -> Tuple[List[Entry],
                                                                                                 List[Entry]]:
    """Carve a per-class validation set out of an official trainval list (CoOp's ``OxfordPets.split_trainval``).

    Labels are visited in first-appearance order; each label's entry indices are shuffled and the first
    ``round(n * p_val)`` go to val, the rest to train. Same local-RNG note as :func:`split_by_class`.
    Used by Pets, Cars, SUN397 and UCF101.
    """
    rng = random.Random(seed)
    by_label = defaultdict(list)
    for idx, entry in enumerate(trainval):
        by_label[entry[1]].append(idx)
    train, val = [], []
    for label, idxs in by_label.items():
        n_val = round(len(idxs) * p_val)
        if n_val < 1:
            raise DatasetError(f'Class "{trainval[idxs[0]][2]}" has {len(idxs)} trainval images, too few to '
                               f"carve a {p_val:.0%} validation set.")
        rng.shuffle(idxs)
        val += [trainval[i] for i in idxs[:n_val]]
        train += [trainval[i] for i in idxs[n_val:]]
    return train, val


def read_lines(path: str) -> List[str]:
    """Non-empty stripped lines of a text file."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------------------------------
# CoOp's few-shot pickles (split_fewshot/shot_K-seed_S.pkl), read without running arbitrary code
# ---------------------------------------------------------------------------------------------------------------------
class _PickledDatum:
    """Receives the attributes of a pickled ``dassl`` ``Datum`` (``_impath``, ``_label``, ``_classname``)."""


class _DatumOnlyUnpickler(pickle.Unpickler):
    """Unpickles containers of Dassl ``Datum`` objects and nothing else (Python docs, "Restricting Globals").

    Every global a pickle names goes through ``find_class``; only Dassl's ``Datum`` is allowed, and it becomes an
    inert attribute holder, so no code from the file can run.
    """

    ALLOWED = {("dassl.data.datasets.base_dataset", "Datum"), ("dassl.data.datasets", "Datum")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return _PickledDatum
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CoOp few-shot file never contains")


def _match_pickled(items, entries: List[Entry]) -> Optional[List[Entry]]:
    """The split entries that pickled datums (absolute paths from another machine) stand for, or None.

    A datum matches the entry whose relpath is the tail of its path and whose label and classname are equal.
    """
    table = {e[0]: e for e in entries}
    depths = sorted({e[0].count("/") + 1 for e in entries}, reverse=True)
    matched = []
    for item in items:
        impath = getattr(item, "_impath", None)
        if not isinstance(impath, str):
            return None
        parts = impath.replace("\\", "/").split("/")
        entry = next((table[t] for t in ("/".join(parts[-d:]) for d in depths) if t in table), None)
        if entry is None or entry[1] != getattr(item, "_label", None) or entry[2] != getattr(item, "_classname", None):
            return None
        matched.append(entry)
    return matched


def read_coop_fewshot_pickle(path: str, split: Split) -> Optional[Dict[str, List[Entry]]]:
    """CoOp's cached subset ``{"train": [...], "val": [...]}`` as split entries, if it is safe and fits ``split``.

    Returns None (after a warning) when the file cannot be read safely or names images that are not in the split's
    train/val lists with the same label and classname.
    """
    try:
        with open(path, "rb") as f:
            data = _DatumOnlyUnpickler(f).load()
    except Exception as e:  # any unreadable or refused pickle is ignored, never executed
        log.warning("Ignoring %s: cannot read it safely (%s).", path, e)
        return None
    wanted = ("train", "val") if split["val"] else ("train",)
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in wanted):
        log.warning("Ignoring %s: it does not hold CoOp's {\"train\": [...], \"val\": [...]} lists.", path)
        return None
    out = {k: _match_pickled(data[k], split[k]) if k in wanted else [] for k in ("train", "val")}
    if any(v is None for v in out.values()):
        log.warning("Ignoring %s: its images do not match the current split file.", path)
        return None
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------------------------------------------------
class BenchmarkDataset(DatasetBase):
    """One CoOp benchmark; see the module docstring. Class attributes are relative names, instance attributes
    of the same names (``dataset_dir``, ``image_dir``, ``split_path``, ``split_fewshot_dir``) absolute paths."""

    dataset_dir = ""
    image_dir = ""
    split_file = ""
    stem = ""
    test_only = False  # ImageNet variants: only "test"; train_x = test so classnames work (CoOp)
    val_is_test = False  # ImageNet: the val images are the test set and also serve as val (CoOp)

    def __init__(self, cfg):
        if not cfg.DATASET.ROOT:
            raise DatasetError(f"DATASET.ROOT is empty: pass --root DATA, the folder that holds "
                               f"{type(self).dataset_dir}/.")
        self.root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = os.path.join(self.root, type(self).dataset_dir)
        self.image_dir = os.path.normpath(os.path.join(self.dataset_dir, type(self).image_dir))
        self.split_path = os.path.join(self.dataset_dir, self.split_file) if self.split_file else ""
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.require_dir(self.dataset_dir, "dataset folder")
        self.require_dir(self.image_dir, "image folder")

        split = self.load_split()
        train, val, test = (self.to_datums(split[k]) for k in SPLIT_KEYS)
        subsample = cfg.DATASET.SUBSAMPLE_CLASSES
        if self.test_only:
            (test,) = subsample_classes(test, subsample=subsample)
            train, val = test, []
        else:
            if cfg.DATASET.NUM_SHOTS >= 1:
                train, val = self.fewshot(split, train, val, cfg.DATASET.NUM_SHOTS, cfg.SEED)
            train, val, test = subsample_classes(train, val, test, subsample=subsample)
            if self.val_is_test:
                val = test
        self.check_images(train, val, test)
        super().__init__(train_x=train, val=val, test=test)
        if not self.test_only and cfg.DATASET.NUM_SHOTS >= 1:
            self.warn_short_classes(cfg.DATASET.NUM_SHOTS)

    @property
    def shots_per_class(self) -> Dict[str, int]:
        """Training items per class (see ``DatasetBase``); ``{}`` for a test-only set, which has no training data."""
        return {} if self.test_only else super().shots_per_class

    def warn_short_classes(self, num_shots: int) -> None:
        """One warning when some classes have fewer than ``num_shots`` training items (they train on all of them)."""
        counts = self.shots_per_class
        short = {name: n for name, n in counts.items() if n < num_shots}
        if not short:
            return
        smallest = min(short, key=short.get)
        low, high = short[smallest], max(short.values())
        log.warning("%s: DATASET.NUM_SHOTS is %d, but %d of %d classes have fewer training images (smallest: "
                    "\"%s\" with %d), so those classes train on %s images each, not %d. results.json records "
                    "the actual counts under \"shots_per_class\". Lower NUM_SHOTS to at most %d for a balanced "
                    "%d-shot subset.", self.name, num_shots, len(short), len(counts), smallest, low,
                    low if low == high else f"{low} to {high}", num_shots, low, low)

    # ---- what a subclass provides -------------------------------------------------------------------------------
    def create_split(self) -> Split:
        """Build ``{"train", "val", "test"}`` entries from the raw files (CoOp's procedure for this benchmark)."""
        raise MissingDataError(f"{self.name}: split file {self.split_path} not found, and {self.name} has no "
                               f"procedure to rebuild it. {self.download_hint()}")

    def created_split_warning(self) -> str:
        """Printed when ``split_file`` had to be built from the raw files."""
        return (f"{self.name}: {self.split_path} was missing and has been rebuilt from the raw files with CoOp's "
                f"procedure. It is NOT CoOp's released split (different file order and random draw), so results "
                f"are not comparable with published numbers. For comparable results, delete it and get CoOp's "
                f"file: {self.download_command()}")

    # ---- paths and messages ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    def download_command(self) -> str:
        return f"python -m datasets.download {self.stem} --root {self.root}"

    def download_hint(self) -> str:
        missing = self.missing_layout_paths()
        more = ", ..." if len(missing) > 4 else ""
        listed = f"Missing under ROOT: {', '.join(missing[:4])}{more}. " if missing else ""
        return f"{listed}Download or repair it with: {self.download_command()}"

    def missing_layout_paths(self) -> List[str]:
        """Paths CoOp's layout requires (``datasets.layout``) that are absent; [] for a benchmark it does not list."""
        try:
            return missing_paths(self.root, self.stem)
        except UnknownDatasetError:
            return []

    def require_dir(self, path: str, what: str) -> None:
        if not os.path.isdir(path):
            raise MissingDataError(f"{self.name}: {what} not found: {path} (DATASET.ROOT = {self.root}). "
                                   f"{self.download_hint()}")

    def to_datums(self, entries: List[Entry]) -> List[Datum]:
        return [Datum(os.path.join(self.image_dir, rel), label, 0, cname) for rel, label, cname in entries]

    # ---- split ---------------------------------------------------------------------------------------------------
    def load_split(self) -> Split:
        """The split file's entries; a missing file is rebuilt with :meth:`create_split`, written and warned about.
        Benchmarks without a split file (``split_file = ""``) build it from their official lists on every load."""
        if self.split_path and os.path.isfile(self.split_path):
            log.info("Reading split from %s", self.split_path)
            return read_split(self.split_path)
        try:
            split = check_split(self.create_split(), f"{self.name}.create_split()")
        except FileNotFoundError as e:
            if isinstance(e, MissingDataError):
                raise
            missing = e.filename or str(e)
            lead = f"split file {self.split_path} not found, and it" if self.split_path else "its split"
            raise MissingDataError(f"{self.name}: {lead} cannot be built because {missing} is missing. "
                                   f"{self.download_hint()}") from None
        if self.split_path:
            log.warning(self.created_split_warning())
            self.write_or_warn(self.split_path, format_rows(split))
        return split

    # ---- few-shot subsets ----------------------------------------------------------------------------------------
    def fewshot(self, split: Split, train: List[Datum], val: List[Datum], num_shots: int,
                seed: int) -> Tuple[List[Datum], List[Datum]]:
        """The cached ``num_shots``-shot train/val subsets for ``seed``, drawn and cached on first use.

        Lookup order: this project's JSON cache (keyed by split hash, shots, seed); CoOp's own
        ``shot_K-seed_S.pkl`` if present, readable safely and consistent with the split (it is then converted to
        JSON); otherwise :meth:`sample_fewshot`. A negative seed draws unseeded and caches nothing.
        """
        if seed < 0:
            log.warning("%s: SEED is %d, so the %d-shot subset is drawn unseeded and not cached (it cannot be "
                        "reproduced). Pass --seed 1, 2 or 3 as CoOp's scripts do.", self.name, seed, num_shots)
            return self.sample_fewshot(train, val, num_shots, random.Random())
        digest = split_sha256(split)
        path = os.path.join(self.split_fewshot_dir, f"shot_{num_shots}-seed_{seed}-split_{digest[:12]}.json")
        header = {"format": FEWSHOT_CACHE_FORMAT, "dataset": self.name, "split_sha256": digest,
                  "num_shots": num_shots, "seed": seed}
        cached = self.read_fewshot_cache(path, header)
        if cached is not None:
            log.info("Loading few-shot subset from %s", path)
            return cached
        coop_pkl = os.path.join(self.split_fewshot_dir, f"shot_{num_shots}-seed_{seed}.pkl")
        imported = read_coop_fewshot_pickle(coop_pkl, split) if os.path.isfile(coop_pkl) else None
        if imported is not None:
            log.info("Using CoOp's few-shot subset %s (checked against the split).", coop_pkl)
            train, val = self.to_datums(imported["train"]), self.to_datums(imported["val"])
            source = f"CoOp pickle {os.path.basename(coop_pkl)}"
        else:
            train, val = self.sample_fewshot(train, val, num_shots, random.Random(seed))
            source = "sampled"
        log.info("Saving few-shot subset to %s", path)
        self.write_or_warn(path, json.dumps({**header, "source": source, "train": self.to_cache_entries(train),
                                             "val": self.to_cache_entries(val)}, ensure_ascii=False))
        return train, val

    def sample_fewshot(self, train: List[Datum], val: List[Datum], num_shots: int,
                       rng: random.Random) -> Tuple[List[Datum], List[Datum]]:
        """``k`` train items per class, then ``min(k, 4)`` val items per class, from one ``rng`` (CoOp's order)."""
        train = self.generate_fewshot_dataset(train, num_shots=num_shots, rng=rng)
        val = self.generate_fewshot_dataset(val, num_shots=min(num_shots, VAL_MAX_SHOTS), rng=rng)
        return train, val

    def to_cache_entries(self, items: List[Datum]) -> List[Entry]:
        """``[path relative to the dataset folder, label, classname]`` with ``/`` separators."""
        return [[os.path.relpath(d.impath, self.dataset_dir).replace(os.sep, "/"), d.label, d.classname]
                for d in items]

    def read_fewshot_cache(self, path: str, header: dict) -> Optional[Tuple[List[Datum], List[Datum]]]:
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if any(data.get(k) != v for k, v in header.items()):
                raise ValueError("its header does not match this split, shot count and seed")
            lists = check_split({**data, "test": []}, path)
        except (ValueError, DatasetError, AttributeError) as e:
            log.warning("Ignoring few-shot cache %s (%s); drawing the subset again.", path, e)
            return None
        return tuple([Datum(os.path.join(self.dataset_dir, rel), label, 0, cname) for rel, label, cname in lists[k]]
                     for k in ("train", "val"))

    # ---- disk checks and writes ------------------------------------------------------------------------------
    def check_images(self, *lists: List[Datum]) -> None:
        """Fail with one message if images the split names are missing (a spread sample of each list is checked;
        the loader reports any other missing file by path)."""
        missing, checked = [], 0
        for items in lists:
            step = max(1, len(items) // IMAGES_CHECKED_PER_LIST)
            sample = list(items[::step]) + list(items[-1:])
            checked += len(sample)
            missing += [d.impath for d in sample if not os.path.isfile(d.impath)]
        if missing:
            shown = ", ".join(sorted(set(missing))[:3])
            raise MissingDataError(f"{self.name}: {len(missing)} of {checked} images checked are missing under "
                                   f"{self.image_dir}, e.g. {shown}. The image folder is incomplete or does not "
                                   f"match the split file. {self.download_hint()}")

    def write_or_warn(self, path: str, text: str) -> None:
        """Write a derived file; a read-only dataset folder only costs the cache (the content is deterministic)."""
        try:
            atomic_write_text(text, path)
        except OSError as e:
            log.warning("Could not write %s (%s); continuing without caching it.", path, e)
